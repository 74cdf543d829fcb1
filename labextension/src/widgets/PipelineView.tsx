/**
 * The pipeline at a glance, compact for the sidebar: its steps (GPU badges, what each step
 * receives, the newest run's status), a link to the graph in the main area
 * (PipelineGraph.tsx), and the compile problems, each linked to its cell.
 */
import { errorIcon, infoIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { gpuBadge, nodeLabel } from '../dag';
import { forPeople, stepColor } from '../steps';
import { ICompileResult, IDiagnostic, IRun } from '../tokens';
import { STATUS_ICONS } from './PipelineGraph';

export interface IPipelineViewProps {
  result: ICompileResult | null;
  busy: boolean;
  error: string | null;
  /** The notebook's steps in order (for their colours). */
  steps: ReadonlyArray<string>;
  /** The run whose step status the nodes show (the newest), if any. */
  run: IRun | null;
  onSelectStep: (name: string) => void;
  onSelectProblem: (problem: IDiagnostic) => void;
  /** Open the main-area pipeline view (the graph), when the app can. */
  onOpenView?: () => void;
}

export function PipelineView(props: IPipelineViewProps): React.ReactElement {
  const { result, busy, error } = props;
  const status = busy
    ? 'Compiling…'
    : error
      ? `Could not compile: ${error}`
      : result
        ? summary(result)
        : 'Not compiled yet.';
  const problems = result ? [...result.errors, ...result.warnings] : [];
  const errorSteps = new Set(
    (result?.errors ?? []).map(problem => problem.step).filter(Boolean)
  );
  return (
    <div className="cp-Pipeline">
      <div
        className={`cp-Status${error ? ' cp-mod-error' : ''}`}
        role="status"
        aria-live="polite"
        aria-busy={busy}
      >
        {status}
      </div>
      {props.onOpenView && (
        <button
          type="button"
          className="cp-Link cp-OpenView"
          onClick={props.onOpenView}
          aria-label="Open the pipeline view beside the notebook"
        >
          Open the pipeline view
        </button>
      )}
      {result && result.steps.length > 0 && (
        <ol className="cp-StepList" aria-label="Steps">
          {result.steps.map(step => {
            const stepRun = props.run?.steps[step.name];
            const gpu = gpuBadge(step);
            const classes = [
              'cp-StepItem',
              errorSteps.has(step.name) ? 'cp-mod-error' : '',
              stepRun ? `cp-status-${stepRun.status}` : ''
            ]
              .filter(Boolean)
              .join(' ');
            return (
              <li key={step.name}>
                <button
                  type="button"
                  className={classes}
                  data-step={step.name}
                  aria-label={
                    nodeLabel(step) +
                    (stepRun ? `; last run ${stepRun.status}` : '')
                  }
                  title={nodeLabel(step)}
                  style={
                    {
                      '--cp-node-color': `var(--cp-step-color-${stepColor(
                        step.name,
                        props.steps
                      )})`
                    } as React.CSSProperties
                  }
                  onClick={() => props.onSelectStep(step.name)}
                >
                  <span className="cp-StepIcon" aria-hidden="true">
                    {stepRun ? (STATUS_ICONS[stepRun.status] ?? '') : ''}
                  </span>
                  <span className="cp-StepName">{step.name}</span>
                  {gpu && <span className="cp-StepGpu">{gpu}</span>}
                  {step.receives.length > 0 && (
                    <span className="cp-StepReceives">
                      ← {step.receives.join(', ')}
                    </span>
                  )}
                </button>
              </li>
            );
          })}
        </ol>
      )}
      {problems.length > 0 && (
        <ul className="cp-Problems" aria-label="Compile problems">
          {problems.map((problem, i) => {
            const isError = i < (result?.errors.length ?? 0);
            const Icon = isError ? errorIcon : infoIcon;
            return (
              <li
                key={i}
                className={isError ? 'cp-Problem-error' : 'cp-Problem-warning'}
              >
                <Icon.react tag="span" className="cp-ProblemIcon" />
                {problem.cell_index !== null ? (
                  <button
                    type="button"
                    className="cp-Link"
                    onClick={() => props.onSelectProblem(problem)}
                    aria-label={`Go to cell ${problem.cell_index + 1}: ${problem.message}`}
                  >
                    {forPeople(problem)}
                  </button>
                ) : (
                  <Folded text={forPeople(problem)} />
                )}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

/** Past this many characters a message folds to its first words (open it to read it all). */
const FOLD_AT = 90;

/** A long message, folded: its beginning, and the rest when opened. */
export function Folded(props: { text: string }): React.ReactElement {
  const { text } = props;
  if (text.length <= FOLD_AT) {
    return <span>{text}</span>;
  }
  const cut = text.lastIndexOf(' ', FOLD_AT);
  return (
    <details className="cp-Fold">
      <summary>{text.slice(0, cut > 40 ? cut : FOLD_AT)} …</summary>
      <span>{text}</span>
    </details>
  );
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

function summary(result: ICompileResult): string {
  const parts = [
    plural(result.steps.length, 'step'),
    plural(Object.keys(result.parameters).length, 'parameter')
  ];
  if (result.errors.length) {
    parts.push(plural(result.errors.length, 'error'));
  }
  if (result.warnings.length) {
    parts.push(plural(result.warnings.length, 'warning'));
  }
  return `${result.pipeline}: ${parts.join(' · ')}`;
}
