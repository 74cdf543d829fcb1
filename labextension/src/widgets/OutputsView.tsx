/**
 * Outputs rendered by JupyterLab's own output area and renderers (rendermime): the same
 * tables, plots, tracebacks and text as in the notebook. Always untrusted (`trusted: false`),
 * as JupyterLab renders a notebook it has not signed: HTML is sanitized by rendermime's
 * sanitizer, scripts do not run, JavaScript outputs are not rendered.
 */
import * as nbformat from '@jupyterlab/nbformat';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

export interface IOutputsViewProps {
  outputs: ReadonlyArray<nbformat.IOutput>;
  rendermime: IRenderMimeRegistry;
  /** What the outputs are, for people using a screen reader. */
  label: string;
}

export function OutputsView(props: IOutputsViewProps): React.ReactElement {
  const host = React.useRef<HTMLDivElement>(null);
  const { outputs, rendermime } = props;
  React.useEffect(() => {
    const node = host.current;
    if (!node) {
      return;
    }
    const model = new OutputAreaModel({
      values: outputs.map(output => ({ ...output })),
      trusted: false
    });
    const area = new OutputArea({ model, rendermime });
    area.addClass('cp-OutputArea');
    Widget.attach(area, node);
    return () => {
      area.dispose();
      model.dispose();
    };
  }, [outputs, rendermime]);
  return (
    <div
      ref={host}
      className="cp-Outputs"
      role="group"
      aria-label={props.label}
    />
  );
}
