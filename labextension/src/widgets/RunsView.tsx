/**
 * This notebook's runs, newest first: status per step (live), metrics, errors, logs, cancel.
 */
import {
  Button,
  deleteIcon,
  listIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import * as React from 'react';

import { IRun, IStepRun, IVocabulary, RunStatus } from '../tokens';
import { isFinished } from '../vocabulary';

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
              {run.error}
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
                />
              ))}
            </tbody>
          </table>
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
          </div>
        </div>
      )}
    </li>
  );
}

function StepRow(props: {
  name: string;
  step: IStepRun;
  onLogs: () => void;
}): React.ReactElement {
  const { name, step } = props;
  return (
    <tr data-step={name} data-status={step.status}>
      <th scope="row" title={step.task}>
        {name}
      </th>
      <td>
        <StatusChip status={step.status} cached={step.cached} />
        {step.error && (
          <div className="cp-StepError" title={step.error}>
            {step.error.split('\n').slice(-1)[0]}
          </div>
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
  );
}
