/**
 * A tune in the main area, followed live: its trials (parameters, objective, which steps ran),
 * the objective per trial as a chart with the best so far, the best parameters and a button
 * that writes them into the notebook's parameters cells.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, ReactWidget } from '@jupyterlab/apputils';
import { Button, stopIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { errorMessage } from '../model';
import { CellPipeContext, NotebookSession } from '../session';
import { ITrial, ITune, JSONValue, ParameterType } from '../tokens';
import { objectiveChart, parameterEdits, TuneWatcher } from '../tune';
import { duration, StatusChip } from './RunsView';

/**
 * Write values into the notebook's parameters cells through the notebook's model (one undo
 * step); null when done, else why not.
 */
export function writeParameters(
  session: NotebookSession,
  values: Record<string, JSONValue>,
  types: Record<string, ParameterType>
): string | null {
  const panel = session.panel;
  if (session.isDisposed || panel.isDisposed || !panel.context.model) {
    return 'the notebook is closed: open it again to write the values';
  }
  const cells = session.source.cells();
  const { edits, problem } = parameterEdits(cells, values, types);
  if (problem) {
    return problem;
  }
  const model = panel.context.model;
  model.sharedModel.transact(() => {
    for (const edit of edits) {
      for (const cell of model.cells) {
        if (cell.id === edit.id) {
          cell.sharedModel.setSource(edit.source);
        }
      }
    }
  });
  return null;
}

function valueText(value: JSONValue | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'number' && !Number.isInteger(value)) {
    return value.toPrecision(4);
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export class TuneView extends ReactWidget {
  constructor(
    readonly watcher: TuneWatcher,
    private readonly _options: {
      /** Cancel the tune (POST /tunes/ID/cancel). */
      onCancel: () => Promise<void>;
      /** Write the best values into the parameters cells: null when done, else why not. */
      onWriteBest: (values: Record<string, JSONValue>) => string | null;
    }
  ) {
    super();
    this.addClass('cp-TuneView');
    watcher.changed.connect(() => this.update(), this);
  }

  protected render(): React.ReactElement {
    const tune = this.watcher.tune;
    const running = !this.watcher.finished;
    const searched = Object.keys(tune.search ?? {});
    return (
      <div
        className="cp-Tune"
        data-tune-id={tune.tune_id}
        data-status={tune.status}
      >
        <div className="cp-TuneHeader" role="status" aria-live="polite">
          <StatusChip status={tune.status} />
          <span className="cp-RunId">tune {tune.tune_id}</span>
          <span className="cp-RunMeta">
            {tune.objective.direction} {tune.objective.metric} ·{' '}
            {tune.algorithm} · {tune.engine} · {tune.notebook} ·{' '}
            {tune.trials.length} trial{tune.trials.length === 1 ? '' : 's'}
          </span>
          {running && (
            <Button
              small
              className="jp-mod-warn"
              onClick={() => void this._cancel()}
              aria-label={`Cancel tune ${tune.tune_id}`}
              title="Stop after the running trials; what finished is kept"
            >
              <stopIcon.react tag="span" className="cp-ButtonIcon" />
              Cancel
            </Button>
          )}
        </div>
        {(this.watcher.error || this._message) && (
          <div
            className={`cp-Status${this._message?.ok ? '' : ' cp-mod-error'}`}
            role="alert"
          >
            {this._message?.text ?? this.watcher.error}
          </div>
        )}
        <BestParameters
          tune={tune}
          onWrite={values => this._writeBest(values)}
        />
        <ObjectiveChart tune={tune} />
        <TrialsTable trials={tune.trials} searched={searched} tune={tune} />
      </div>
    );
  }

  private async _cancel(): Promise<void> {
    try {
      await this._options.onCancel();
      this._message = null;
    } catch (error) {
      this._message = {
        ok: false,
        text: `Cannot cancel: ${errorMessage(error)}`
      };
    }
    await this.watcher.refresh();
    this.update();
  }

  private _writeBest(values: Record<string, JSONValue>): void {
    const problem = this._options.onWriteBest(values);
    this._message = problem
      ? { ok: false, text: `Cannot write the values: ${problem}` }
      : {
          ok: true,
          text: 'The best values are in the parameters cell (not saved yet).'
        };
    this.update();
  }

  private _message: { ok: boolean; text: string } | null = null;
}

function BestParameters(props: {
  tune: ITune;
  onWrite: (values: Record<string, JSONValue>) => void;
}): React.ReactElement {
  const { best, objective } = props.tune;
  if (!best) {
    return (
      <p className="cp-Empty cp-TuneBest">
        No trial has reported {objective.metric} yet.
      </p>
    );
  }
  return (
    <section className="cp-TuneBest" aria-label="Best parameters">
      <table className="cp-Table">
        <caption>
          Best {objective.metric}: <strong>{valueText(best.value)}</strong>
          {best.run_id ? ` (run ${best.run_id})` : ''}
        </caption>
        <tbody>
          {Object.entries(best.parameters).map(([name, value]) => (
            <tr key={name} data-parameter={name}>
              <th scope="row">{name}</th>
              <td>
                <code>{JSON.stringify(value)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Button
        small
        onClick={() => props.onWrite(best.parameters)}
        aria-label="Write the best parameters into the parameters cell"
      >
        Write into the parameters cell
      </Button>
    </section>
  );
}

function ObjectiveChart(props: { tune: ITune }): React.ReactElement | null {
  const { tune } = props;
  const chart = React.useMemo(
    () => objectiveChart(tune.trials, tune.objective.direction),
    [tune]
  );
  if (!chart.points.length) {
    return null;
  }
  const { box } = chart;
  return (
    <figure className="cp-TuneChart">
      <svg
        width={chart.width}
        height={chart.height}
        viewBox={`0 0 ${chart.width} ${chart.height}`}
        role="img"
        aria-label={`${tune.objective.metric} per trial, best so far as a line`}
      >
        <line
          className="cp-ChartAxis"
          x1={box.left}
          x2={box.left}
          y1={box.top}
          y2={box.bottom}
        />
        <line
          className="cp-ChartAxis"
          x1={box.left}
          x2={box.right}
          y1={box.bottom}
          y2={box.bottom}
        />
        {chart.yTicks.map(tick => (
          <text
            key={tick.label + tick.y}
            className="cp-ChartLabel"
            x={box.left - 6}
            y={tick.y + 4}
            textAnchor="end"
          >
            {tick.label}
          </text>
        ))}
        <text
          className="cp-ChartLabel"
          x={(box.left + box.right) / 2}
          y={chart.height - 2}
          textAnchor="middle"
        >
          trial
        </text>
        {chart.points.length <= 30 &&
          chart.points.map(point => (
            <text
              key={`x${point.trial}`}
              className="cp-ChartLabel"
              x={point.x}
              y={box.bottom + 12}
              textAnchor="middle"
            >
              {point.trial}
            </text>
          ))}
        <path className="cp-ChartBest" d={chart.bestPath} />
        {chart.points.map(point => (
          <circle
            key={point.trial}
            className={`cp-ChartPoint${point.best ? ' cp-mod-best' : ''}`}
            cx={point.x}
            cy={point.y}
            r={point.best ? 5 : 3.5}
            data-trial={point.trial}
          >
            <title>
              trial {point.trial}: {valueText(point.value)}
            </title>
          </circle>
        ))}
      </svg>
      <figcaption className="cp-Hint">
        {tune.objective.metric} per trial (
        {tune.objective.direction === 'maximize' ? 'higher' : 'lower'} is
        better, drawn up); the line is the best so far.
      </figcaption>
    </figure>
  );
}

function TrialsTable(props: {
  tune: ITune;
  trials: ReadonlyArray<ITrial>;
  searched: string[];
}): React.ReactElement {
  const { tune, searched } = props;
  const bestRun = tune.best?.run_id ?? null;
  return (
    <table className="cp-Table cp-TrialTable">
      <caption>Trials</caption>
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">Status</th>
          {searched.map(name => (
            <th scope="col" key={name}>
              {name}
            </th>
          ))}
          <th scope="col">{tune.objective.metric}</th>
          <th scope="col">Time</th>
          <th scope="col">Steps ran</th>
        </tr>
      </thead>
      <tbody>
        {props.trials.map(trial => (
          <tr
            key={trial.trial}
            data-trial={trial.trial}
            data-status={trial.status}
            className={
              bestRun && trial.run_id === bestRun ? 'cp-mod-best' : undefined
            }
          >
            <th scope="row" title={trial.run_id ?? undefined}>
              {trial.trial}
            </th>
            <td>
              <StatusChip status={trial.status} />
              {trial.error && (
                <div className="cp-StepError" title={trial.error}>
                  {trial.error.split('\n').slice(-1)[0]}
                </div>
              )}
            </td>
            {searched.map(name => (
              <td key={name}>
                <code>{valueText(trial.parameters[name])}</code>
              </td>
            ))}
            <td>{valueText(trial.value)}</td>
            <td>{duration(trial.seconds)}</td>
            <td className="cp-StepsRan">
              {trial.steps_ran?.length
                ? trial.steps_ran.join(', ')
                : trial.status === 'Succeeded'
                  ? 'none (all reused)'
                  : ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Open (or show again) the view of a tune started from a notebook's session. */
export function openTunePanel(
  app: JupyterFrontEnd,
  context: CellPipeContext,
  tune: ITune,
  session: NotebookSession,
  types: Record<string, ParameterType>
): MainAreaWidget<TuneView> {
  const id = `cellpipe-tune-${tune.tune_id}`.replace(/[^\w-]/g, '_');
  const existing = Array.from(app.shell.widgets('main')).find(
    widget => widget.id === id
  );
  if (existing) {
    app.shell.activateById(id);
    return existing as MainAreaWidget<TuneView>;
  }
  const watcher = new TuneWatcher({
    client: context.client,
    tune,
    vocabulary: () => context.vocabulary
  });
  const content = new TuneView(watcher, {
    onCancel: async () => {
      await context.client.cancelTune(tune.tune_id);
    },
    onWriteBest: values => writeParameters(session, values, types)
  });
  const panel = new MainAreaWidget({ content });
  panel.id = id;
  panel.title.label = `Tune ${tune.tune_id}`;
  panel.title.caption = `cellpipe tune ${tune.tune_id} of ${tune.notebook}`;
  panel.title.closable = true;
  panel.disposed.connect(() => watcher.dispose());
  app.shell.add(panel, 'main', { mode: 'split-right', ref: session.panel.id });
  app.shell.activateById(id);
  watcher.start();
  return panel;
}
