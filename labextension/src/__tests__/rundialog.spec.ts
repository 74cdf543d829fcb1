/**
 * @jest-environment jsdom
 *
 * The Run dialog asks for what the server's vocabulary says each engine takes.
 */
import './jsdom';

import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { act } from 'react';

import { DEFAULT_SETTINGS } from '../tokens';
import {
  availableEngines,
  engineFields,
  engineLabel,
  initialEngine,
  IRunDialogOptions,
  RunDialogBody
} from '../widgets/RunDialog';
import { compileResult, config, vocabulary } from './fixtures';

// JupyterLab's UI packages load their SVG icons as modules, which jest here does not map: the
// dialog's two of their names stand in, rendering what the real ones render for these props.
jest.mock('@jupyterlab/apputils', () => {
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
});
jest.mock('@jupyterlab/ui-components', () => {
  const React = jest.requireActual('react');
  return {
    HTMLSelect: ({
      options,
      ...props
    }: {
      options: { value: string; label: string }[];
    }) =>
      React.createElement(
        'select',
        props,
        options.map(option =>
          React.createElement(
            'option',
            { key: option.value, value: option.value },
            option.label
          )
        )
      )
  };
});

/** A server with the kfp engine, and `rayjob` (another package's) as a training engine. */
function rayConfig() {
  const words = vocabulary();
  return config({
    engines: {
      ...config().engines,
      kfp: 'cellpipe.launcher.kfp_engine.KfpEngine',
      rayjob: 'ray_cellpipe.RayJobEngine'
    },
    vocabulary: {
      ...words,
      cluster_engines: [...words.cluster_engines, 'rayjob'],
      training_engines: [...words.training_engines, 'rayjob']
    }
  });
}

async function open(
  options: Partial<IRunDialogOptions>
): Promise<RunDialogBody> {
  const body = new RunDialogBody({
    result: compileResult(),
    config: null,
    gpus: null,
    settings: { ...DEFAULT_SETTINGS },
    ...options
  });
  await act(async () => {
    Widget.attach(body, document.body);
    MessageLoop.sendMessage(body, Widget.Msg.UpdateRequest);
  });
  return body;
}

async function choose(body: RunDialogBody, label: string, value: string) {
  const select = body.node.querySelector(
    `select[aria-label="${label}"]`
  ) as HTMLSelectElement;
  await act(async () => {
    select.value = value;
    select.dispatchEvent(new Event('change', { bubbles: true }));
  });
}

function close(body: RunDialogBody) {
  act(() => body.dispose());
}

const optionsOf = (body: RunDialogBody, label: string) =>
  Array.from(
    body.node.querySelectorAll(`select[aria-label="${label}"] option`)
  ).map(option => (option as HTMLOptionElement).value);

describe('the Run dialog', () => {
  it('offers no engine until /config has answered, and does not guess one', async () => {
    expect(availableEngines(null)).toEqual([]);
    expect(initialEngine([], undefined, DEFAULT_SETTINGS, null)).toBe('');
    const body = await open({ config: null });

    expect(optionsOf(body, 'Engine')).toEqual(['']);
    expect(optionsOf(body, 'Builder')).toEqual([]);
    expect(body.node.querySelector('#cp-workers')).toBeNull();
    const { request, problems } = body.getValue();
    expect(request).not.toHaveProperty('engine'); // the server's default engine
    expect(request).not.toHaveProperty('workers');
    expect(request).not.toHaveProperty('builder');
    expect(problems).toEqual([]);
    close(body);
  });

  it('asks a local run for neither builder nor workers', async () => {
    const body = await open({ config: config() });

    expect(optionsOf(body, 'Engine')).toEqual(['local', 'kfp-local']);
    expect(optionsOf(body, 'Builder')).toEqual([]);
    expect(body.node.querySelector('#cp-workers')).toBeNull();
    expect(body.getValue().request).toEqual({
      engine: 'local',
      parameters: {},
      use_cache: true
    });
    close(body);
  });

  it("offers a training engine it does not know, with workers and the server's builders", async () => {
    const body = await open({ config: rayConfig() });

    // offered, by its bare name, after the engines the vocabulary lists before it
    expect(optionsOf(body, 'Engine')).toEqual([
      'local',
      'kfp-local',
      'kfp',
      'rayjob'
    ]);
    expect(engineLabel('rayjob')).toBe('rayjob');
    expect(body.node.textContent).not.toContain('Workers');

    await choose(body, 'Engine', 'rayjob');

    expect(body.node.querySelector('#cp-workers')).not.toBeNull();
    expect(body.node.textContent).toContain('Workers');
    expect(optionsOf(body, 'Builder')).toEqual(['append', 'engine']);
    await choose(body, 'Builder', 'engine');
    const { request, problems } = body.getValue();
    expect(problems).toEqual([]);
    expect(request).toMatchObject({
      engine: 'rayjob',
      workers: 2,
      builder: 'engine'
    });
    close(body);
  });

  it('gives kfp a builder but no workers', async () => {
    const body = await open({ config: rayConfig(), engine: 'kfp' });

    expect(body.node.querySelector('#cp-workers')).toBeNull();
    expect(optionsOf(body, 'Builder')).toEqual(['append', 'engine']);
    const { request } = body.getValue();
    expect(request).toMatchObject({ engine: 'kfp', builder: 'append' });
    expect(request).not.toHaveProperty('workers');
    close(body);
  });

  it('reads engine fields from the vocabulary only', () => {
    expect(engineFields(null, 'pytorchjob')).toEqual({
      cluster: false,
      workers: false,
      builders: []
    });
    expect(engineFields(config(), 'pytorchjob')).toEqual({
      cluster: true,
      workers: true,
      builders: ['append', 'engine']
    });
    expect(engineFields(rayConfig(), 'rayjob').workers).toBe(true);
    expect(engineFields(config(), 'rayjob')).toEqual({
      cluster: false,
      workers: false,
      builders: []
    });
  });
});
