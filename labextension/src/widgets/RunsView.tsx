/**
 * This notebook's runs, newest first: status per step (live), metrics, errors, logs, cancel;
 * each step's outputs (JupyterLab's renderers, untrusted), the executed notebook opened
 * read-only, and a failed step's inputs loaded into the notebook's kernel.
 */
import { INotebookContent } from '@jupyterlab/nbformat';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import {
  bugIcon,
  Button,
  deleteIcon,
  listIcon,
  notebookIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import * as React from 'react';

import { IDebugState } from '../debug';
import {
  hasExecutedNotebook,
  IExecutedState,
  outputCount,
  stepOutputs
} from '../outputs';
import { IRun, IStepRun, IVocabulary, RunStatus } from '../tokens';
import { isFinished, isLocalEngine } from '../vocabulary';
import { CellLinkedText } from './CellLinks';
import { OutputsView } from './OutputsView';

export interface IRunsViewProps {
  runs: ReadonlyArray<IRun>;
  busy: boolean;
  error: string | null;
  /** Is this run followed live (and how)? */
  following: (runId: string) => string | null;
  /**
   * The server's vocabulary (which statuses are final), null until /config has answered:
   * then a run offers neither Cancel nor Delete.
   */
  vocabulary: IVocabulary | null;
  onLogs: (run: IRun, step: string | null) => void;
  onCancel: (run: IRun) => void;
  onDelete: (run: IRun) => void;
  /**
   * JupyterLab's renderers (the same as the notebook's), null when the app has none: then
   * the steps' outputs are not shown.
   */
  rendermime?: IRenderMimeRegistry | null;
  /** The run's executed notebook as far as it is known (fetched when first asked). */
  executed?: (run: IRun) => IExecutedState;
  /** Open the executed notebook as a read-only document; absent: not offered. */
  onOpenNotebook?: (run: IRun) => void;
  /** The last "Debug in kernel" of a step, if any. */
  debugState?: (run: IRun, step: string) => IDebugState | null;
  /** Run `%cellpipe debug RUN STEP` in the notebook's kernel; absent: not offered. */
  onDebug?: (run: IRun, step: string) => void;
  /** More actions of a finished run (Serve…), after its own buttons. */
  finishedActions?: (run: IRun) => React.ReactNode;
  /** Go to cell N (counting from 1) of the notebook: each `cell N` in an error links there. */
  onCell?: (cell: number) => void;
}

/** `12.3 s`, `2 min 5 s`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

function when(created: number): string {
  return new Date(created * 1000).toLocaleString();
}

function formatMetric(value: unknown): string {
  if (typeof value === 'number' && !Number.isInteger(value)) {
    return value.toPrecision(4);
  }
  return String(value);
}

export function StatusChip(props: {
  status: RunStatus;
  cached?: boolean;
}): React.ReactElement {
  return (
    <span className={`cp-Chip cp-status-${props.status}`}>
      {props.cached && props.status === 'Succeeded' ? 'Cached' : props.status}
    </span>
  );
}

export function RunsView(props: IRunsViewProps): React.ReactElement {
  const [open, setOpen] = React.useState<string | null>(null);
  const newest = props.runs[0]?.run_id ?? null;
  const expanded = open ?? newest;
  return (
    <div className="cp-Runs" aria-busy={props.busy}>
      {props.error && (
        <div className="cp-Status cp-mod-error" role="alert">
          {props.error}
        </div>
      )}
      {props.runs.length === 0 && (
        <p className="cp-Empty">No runs of this notebook yet.</p>
      )}
      <ul className="cp-RunList" aria-label="Runs of this notebook">
        {props.runs.map(run => (
          <RunItem
            {...props}
            key={run.run_id}
            run={run}
            expanded={run.run_id === expanded}
            live={props.following(run.run_id)}
            onToggle={() => setOpen(run.run_id === expanded ? '' : run.run_id)}
          />
        ))}
      </ul>
    </div>
  );
}

function RunItem(
  props: IRunsViewProps & {
    run: IRun;
    expanded: boolean;
    live: string | null;
    onToggle: () => void;
  }
): React.ReactElement {
  const { run, expanded } = props;
  const finished = isFinished(props.vocabulary, run.status);
  const running = props.vocabulary !== null && !finished;
  const seconds = run.finished ? run.finished - run.created : null;
  const steps = Object.entries(run.steps);
  const metrics = Object.entries(run.metrics ?? {});
  const detailsId = `cp-run-${run.run_id}`;
  // `%cellpipe debug` reads what a step of a run here received (local and kfp-local runs)
  const debuggable = finished && isLocalEngine(props.vocabulary, run.engine);
  return (
    <li className="cp-Run" data-run-id={run.run_id} data-status={run.status}>
      <button
        type="button"
        className="cp-RunHeader"
        aria-expanded={expanded}
        aria-controls={detailsId}
        aria-label={`Run ${run.run_id}, ${run.engine}, ${run.status}`}
        onClick={props.onToggle}
      >
        <StatusChip status={run.status} />
        <span className="cp-RunId">{run.run_id}</span>
        <span className="cp-RunMeta">
          {run.engine} · {when(run.created)}
          {seconds !== null ? ` · ${duration(seconds)}` : ''}
        </span>
      </button>
      {expanded && (
        <div className="cp-RunDetails" id={detailsId}>
          {props.live && !finished && (
            <div className="cp-Hint">following live ({props.live})</div>
          )}
          {run.error && (
            <pre className="cp-RunError" role="alert">
              <CellLinkedText text={run.error} onCell={props.onCell} />
            </pre>
          )}
          <table className="cp-Table cp-StepTable">
            <caption>Steps</caption>
            <thead>
              <tr>
                <th scope="col">Step</th>
                <th scope="col">Status</th>
                <th scope="col">Time</th>
                <th scope="col">
                  <span className="cp-VisuallyHidden">Log</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {steps.map(([name, step]) => (
                <StepRow
                  key={name}
                  name={name}
                  step={step}
                  onLogs={() => props.onLogs(run, name)}
                  onCell={props.onCell}
                  onDebug={
                    debuggable && step.status === 'Failed' && props.onDebug
                      ? () => props.onDebug?.(run, name)
                      : null
                  }
                  debug={props.debugState?.(run, name) ?? null}
                  rendermime={props.rendermime ?? null}
                />
              ))}
            </tbody>
          </table>
          {finished && props.rendermime && props.executed && (
            <RunOutputs
              run={run}
              steps={steps.map(([name]) => name)}
              state={props.executed(run)}
              rendermime={props.rendermime}
            />
          )}
          {metrics.length > 0 && (
            <table className="cp-Table cp-Metrics">
              <caption>Metrics</caption>
              <tbody>
                {metrics.map(([name, value]) => (
                  <tr key={name} data-metric={name}>
                    <th scope="row">{name}</th>
                    <td>{formatMetric(value)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {Object.keys(run.parameters ?? {}).length > 0 && (
            <details className="cp-Params">
              <summary>Parameters</summary>
              <table className="cp-Table">
                <tbody>
                  {Object.entries(run.parameters).map(([name, value]) => (
                    <tr key={name}>
                      <th scope="row">{name}</th>
                      <td>
                        <code>{JSON.stringify(value)}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </details>
          )}
          {run.links &&
            Object.entries(run.links).map(([name, url]) => (
              <a
                key={name}
                className="cp-Link"
                href={url}
                target="_blank"
                rel="noreferrer"
              >
                Open in {name}
              </a>
            ))}
          <div className="cp-Buttons">
            <Button
              small
              minimal
              onClick={() => props.onLogs(run, null)}
              aria-label={`Show the log of run ${run.run_id}`}
            >
              <listIcon.react tag="span" className="cp-ButtonIcon" />
              Run log
            </Button>
            {finished && hasExecutedNotebook(run) && props.onOpenNotebook && (
              <Button
                small
                minimal
                onClick={() => props.onOpenNotebook?.(run)}
                aria-label={`Open the executed notebook of run ${run.run_id} (read-only)`}
                title="The notebook as it ran, with every cell's outputs (read-only)"
              >
                <notebookIcon.react tag="span" className="cp-ButtonIcon" />
                Open as notebook
              </Button>
            )}
            {running && (
              <Button
                small
                className="jp-mod-warn"
                disabled={props.busy}
                onClick={() => props.onCancel(run)}
                aria-label={`Cancel run ${run.run_id}`}
              >
                <stopIcon.react tag="span" className="cp-ButtonIcon" />
                Cancel
              </Button>
            )}
            {finished && (
              <Button
                small
                minimal
                disabled={props.busy}
                onClick={() => props.onDelete(run)}
                aria-label={`Delete run ${run.run_id}`}
              >
                <deleteIcon.react tag="span" className="cp-ButtonIcon" />
                Delete
              </Button>
            )}
            {finished && props.finishedActions?.(run)}
          </div>
        </div>
      )}
    </li>
  );
}

function StepRow(props: {
  name: string;
  step: IStepRun;
  onCell?: (cell: number) => void;
  onLogs: () => void;
  onDebug: (() => void) | null;
  debug: IDebugState | null;
  rendermime: IRenderMimeRegistry | null;
}): React.ReactElement {
  const { name, step, debug } = props;
  return (
    <>
      <tr data-step={name} data-status={step.status}>
        <th scope="row" title={step.task}>
          {name}
        </th>
        <td>
          <StatusChip status={step.status} cached={step.cached} />
          {step.error && (
            <details className="cp-StepError">
              <summary>
                <CellLinkedText
                  text={step.error.trim().split('\n').slice(-1)[0]}
                  onCell={props.onCell}
                />
              </summary>
              <pre className="cp-StepTraceback">
                <CellLinkedText text={step.error} onCell={props.onCell} />
              </pre>
            </details>
          )}
          {props.onDebug && (
            <Button
              small
              minimal
              className="cp-DebugButton"
              disabled={debug?.running ?? false}
              onClick={props.onDebug}
              aria-label={`Debug step ${name} in the notebook's kernel`}
              title={`Load what step ${name} received into the notebook's kernel (%cellpipe debug)`}
            >
              <bugIcon.react tag="span" className="cp-ButtonIcon" />
              Debug in kernel
            </Button>
          )}
        </td>
        <td>{duration(step.seconds)}</td>
        <td>
          <button
            type="button"
            className="cp-IconButton"
            onClick={props.onLogs}
            aria-label={`Show the log of step ${name}`}
            title="Log"
          >
            <listIcon.react tag="span" />
          </button>
        </td>
      </tr>
      {debug && (
        <tr className="cp-DebugRow" data-debug-step={name}>
          <td colSpan={4}>
            <DebugResult state={debug} rendermime={props.rendermime} />
          </td>
        </tr>
      )}
    </>
  );
}

/** What "Debug in kernel" ran, and what it printed (or why it could not run). */
function DebugResult(props: {
  state: IDebugState;
  rendermime: IRenderMimeRegistry | null;
}): React.ReactElement {
  const { state } = props;
  const outputs = state.result?.outputs ?? [];
  const failed = state.error !== null || state.result?.status === 'error';
  return (
    <div
      className={`cp-Debug${failed ? ' cp-mod-error' : ''}`}
      role="status"
      aria-label={`Debug of step ${state.step}`}
    >
      <div className="cp-Hint">
        {state.running ? 'Running in the kernel: ' : 'Ran in the kernel: '}
        <code>{state.magic}</code>
      </div>
      {state.error && (
        <div className="cp-StepError" role="alert">
          {state.error}
        </div>
      )}
      {outputs.length > 0 &&
        (props.rendermime ? (
          <OutputsView
            outputs={outputs}
            rendermime={props.rendermime}
            label={`What %cellpipe debug printed for step ${state.step}`}
          />
        ) : (
          <pre className="cp-DebugText">{plainText(outputs)}</pre>
        ))}
      {!state.running && state.result?.status === 'ok' && (
        <div className="cp-Hint">
          The values are in the kernel: re-run the failed cell in the notebook.
        </div>
      )}
    </div>
  );
}

function plainText(outputs: ReadonlyArray<Record<string, unknown>>): string {
  return outputs
    .map(output => {
      if (typeof output.text === 'string') {
        return output.text;
      }
      if (Array.isArray(output.traceback)) {
        return output.traceback.join('\n');
      }
      const data = output.data as Record<string, unknown> | undefined;
      return typeof data?.['text/plain'] === 'string' ? data['text/plain'] : '';
    })
    .join('');
}

/** Each step's outputs, from the run's executed notebook: a section per step, closed at first. */
function RunOutputs(props: {
  run: IRun;
  steps: string[];
  state: IExecutedState;
  rendermime: IRenderMimeRegistry;
}): React.ReactElement | null {
  const { state } = props;
  if (!hasExecutedNotebook(props.run)) {
    return null;
  }
  return (
    <div className="cp-RunOutputs">
      <div className="cp-SectionLabel">Outputs</div>
      {state.loading && <div className="cp-Hint">Loading the outputs…</div>}
      {state.error && (
        <div className="cp-StepError" role="alert">
          {state.error}
        </div>
      )}
      {state.notebook &&
        props.steps.map(name => (
          <StepOutputs
            key={name}
            name={name}
            notebook={state.notebook!}
            rendermime={props.rendermime}
          />
        ))}
    </div>
  );
}

function StepOutputs(props: {
  name: string;
  notebook: INotebookContent;
  rendermime: IRenderMimeRegistry;
}): React.ReactElement {
  const { name, notebook } = props;
  const [open, setOpen] = React.useState(false);
  const cells = React.useMemo(
    () => stepOutputs(notebook, name),
    [notebook, name]
  );
  const count = outputCount(cells);
  const shown = cells.filter(cell => cell.outputs.length > 0);
  return (
    <details
      className="cp-StepOutputs"
      data-step={name}
      open={open}
      onToggle={event => setOpen((event.target as HTMLDetailsElement).open)}
    >
      <summary aria-label={`Outputs of step ${name}: ${count}`}>
        {name}
        <span className="cp-Count">{count}</span>
      </summary>
      {open && shown.length === 0 && (
        <p className="cp-Empty">
          {cells.some(cell => cell.status === 'not run')
            ? 'Not run: no outputs.'
            : 'No outputs.'}
        </p>
      )}
      {open &&
        shown.map(cell => (
          <div
            key={cell.index}
            className="cp-OutputCell"
            data-cell-index={cell.index}
          >
            <div className="cp-Hint">
              cell {cell.index + 1}
              {cell.status && cell.status !== 'ran' ? ` · ${cell.status}` : ''}
              {cell.seconds !== null ? ` · ${duration(cell.seconds)}` : ''}
            </div>
            <OutputsView
              outputs={cell.outputs}
              rendermime={props.rendermime}
              label={`Outputs of cell ${cell.index + 1}, step ${name}`}
            />
          </div>
        ))}
    </details>
  );
}
