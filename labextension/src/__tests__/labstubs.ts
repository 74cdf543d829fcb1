/**
 * Stand-ins for the two JupyterLab UI packages the rendering specs need, for `jest.mock`
 * factories (`jest.mock('@jupyterlab/apputils', () => jest.requireActual('./labstubs')
 * .apputils())`): those packages load their SVG icons as modules, which jest here does not
 * map. Each renders what the real one renders for the props the widgets pass.
 */
import * as React from 'react';

/** ReactWidget: a lumino widget whose render() React draws into its node on update. */
export function apputils(): Record<string, unknown> {
  const { Widget } = jest.requireActual('@lumino/widgets');
  const { createRoot } = jest.requireActual('react-dom/client');
  class ReactWidget extends Widget {
    private _root = createRoot(this.node);
    protected render(): unknown {
      return null;
    }
    protected onUpdateRequest(): void {
      this._root.render(this.render());
    }
    dispose(): void {
      this._root.unmount();
      super.dispose();
    }
  }
  return { Dialog: {}, ReactWidget };
}

type SelectOption = string | { value: string; label: string };

/** Button, HTMLSelect (options as strings or {value, label}) and the stop icon. */
export function uiComponents(): Record<string, unknown> {
  return {
    Button: ({ small: _s, minimal: _m, ...props }: Record<string, unknown>) =>
      React.createElement('button', { type: 'button', ...props }),
    HTMLSelect: ({ options, ...props }: { options: SelectOption[] }) =>
      React.createElement(
        'select',
        props,
        options.map(option => {
          const value = typeof option === 'string' ? option : option.value;
          const label = typeof option === 'string' ? option : option.label;
          return React.createElement('option', { key: value, value }, label);
        })
      ),
    stopIcon: { react: () => null }
  };
}
