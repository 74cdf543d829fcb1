/**
 * The pipeline at a glance: the DAG of steps (GPU badges, what each step receives and hands
 * on, the live status of the newest run) and the compile problems, each linked to its cell.
 */
import { errorIcon, infoIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { DAG_LINE_HEIGHT, DAG_PADDING, edgePath, layoutDag } from '../dag';
import { forPeople, stepColor } from '../steps';
import { ICompileResult, IDiagnostic, IRun } from '../tokens';

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
}

export function PipelineView(props: IPipelineViewProps): React.ReactElement {
  const { result, busy, error } = props;
  const layout = React.useMemo(
    () => (result ? layoutDag(result.steps) : null),
    [result]
  );
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
      {layout && layout.nodes.length > 0 && (
        <div className="cp-Dag" role="group" aria-label="Pipeline graph">
          <svg
            width={layout.width}
            height={layout.height}
            viewBox={`0 0 ${layout.width} ${layout.height}`}
            className="cp-DagSvg"
            role="presentation"
          >
            <defs>
              <marker
                id="cp-arrow"
                viewBox="0 0 10 10"
                refX="9"
                refY="5"
                markerWidth="7"
                markerHeight="7"
                orient="auto-start-reverse"
              >
                <path d="M0,0 L10,5 L0,10 z" className="cp-DagArrow" />
              </marker>
            </defs>
            {layout.edges.map(edge => (
              <path
                key={`${edge.from}\u0000${edge.to}`}
                className="cp-DagEdge"
                d={edgePath(edge.points)}
                markerEnd="url(#cp-arrow)"
              >
                <title>
                  {edge.values.length
                    ? `${edge.from} → ${edge.to}: ${edge.values.join(', ')}`
                    : `${edge.from} → ${edge.to}`}
                </title>
              </path>
            ))}
            {layout.nodes.map(node => {
              const stepRun = props.run?.steps[node.name];
              const classes = [
                'cp-DagNode',
                errorSteps.has(node.name) ? 'cp-mod-error' : '',
                stepRun ? `cp-status-${stepRun.status}` : ''
              ].join(' ');
              return (
                <g
                  key={node.name}
                  className={classes}
                  transform={`translate(${node.x},${node.y})`}
                  role="button"
                  tabIndex={0}
                  aria-label={
                    node.label + (stepRun ? `; last run ${stepRun.status}` : '')
                  }
                  data-step={node.name}
                  style={
                    {
                      '--cp-node-color': `var(--cp-step-color-${stepColor(
                        node.name,
                        props.steps
                      )})`
                    } as React.CSSProperties
                  }
                  onClick={() => props.onSelectStep(node.name)}
                  onKeyDown={event => {
                    if (event.key === 'Enter' || event.key === ' ') {
                      event.preventDefault();
                      props.onSelectStep(node.name);
                    }
                  }}
                >
                  <title>{node.label}</title>
                  <rect
                    className="cp-DagBox"
                    width={node.width}
                    height={node.height}
                    rx={4}
                  />
                  <rect
                    className="cp-DagEdgeMark"
                    width={4}
                    height={node.height}
                  />
                  {node.lines.map((line, i) => (
                    <text
                      key={i}
                      className={`cp-DagText cp-DagText-${line.kind}`}
                      x={DAG_PADDING}
                      y={DAG_PADDING + (i + 1) * DAG_LINE_HEIGHT - 4}
                    >
                      {line.text}
                    </text>
                  ))}
                  {stepRun && (
                    <circle
                      className="cp-DagStatus"
                      cx={node.width - 9}
                      cy={9}
                      r={4}
                    />
                  )}
                </g>
              );
            })}
          </svg>
        </div>
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
                  <span>{forPeople(problem)}</span>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </div>
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
