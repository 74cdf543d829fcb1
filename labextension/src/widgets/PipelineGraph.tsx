/**
 * The pipeline view in the main area, beside its notebook: the DAG with pan (drag), zoom
 * (wheel, + and -, buttons), fit, each step's last run as the node's colour and icon, the step
 * of the notebook's active cell highlighted, and a click (or Enter) on a node selects the
 * step's first cell. Names never shrink below MIN_FONT_PX on screen: the zoom stops there.
 */
import { MainAreaWidget, ReactWidget } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { Notebook } from '@jupyterlab/notebook';
import * as React from 'react';

import {
  DAG_LINE_HEIGHT,
  DAG_PADDING,
  edgePath,
  fitTransform,
  IDagLayout,
  IViewTransform,
  layoutDag,
  zoomAt,
  zoomLimits
} from '../dag';
import { NotebookSession } from '../session';
import { stepColor, tagGraph } from '../steps';
import { ICompileResult, IStepRun } from '../tokens';
import { pipelineIcon } from './icons';

/** The names' font size in the graph (style/base.css .cp-GraphText-name). */
export const NAME_FONT_PX = 13;
/** The least size a name is drawn at on screen, whatever the zoom. */
export const MIN_FONT_PX = 11;
const LIMITS = zoomLimits(NAME_FONT_PX, MIN_FONT_PX);
const CHAR_WIDTH = 7.6; // at NAME_FONT_PX
const ICON_ROOM = 20;
const ZOOM_STEP = 1.25;

/** The icon a step's last run shows on its node (with the status as the node's colour). */
export const STATUS_ICONS: Record<string, string> = {
  Pending: '…',
  Running: '▶',
  Succeeded: '✓',
  Failed: '✕',
  Cancelled: '⊘'
};

export interface IPipelineGraphProps {
  result: ICompileResult | null;
  /** The notebook's steps in order (for their colours). */
  steps: ReadonlyArray<string>;
  /** The `after:` edges as the tags say them, drawn while compile errors exist. */
  tagAfter: ReadonlyMap<string, ReadonlyArray<string>>;
  /** The newest run's steps, whose status the nodes show. */
  stepRuns: Record<string, IStepRun>;
  /** The step of the notebook's active cell, highlighted. */
  selected: string | null;
  onSelectStep: (name: string) => void;
}

type Direction = 'TB' | 'LR';

function useViewSize(
  ref: React.RefObject<HTMLDivElement>
): { width: number; height: number } | null {
  const [size, setSize] = React.useState<{
    width: number;
    height: number;
  } | null>(null);
  React.useEffect(() => {
    const node = ref.current;
    if (!node) {
      return;
    }
    const observer = new ResizeObserver(() => {
      const { clientWidth: width, clientHeight: height } = node;
      if (width > 0 && height > 0) {
        setSize(old =>
          old && old.width === width && old.height === height
            ? old
            : { width, height }
        );
      }
    });
    observer.observe(node);
    return () => observer.disconnect();
  }, [ref]);
  return size;
}

/** The graph, laid out both ways; the view starts with the one that shows it bigger. */
function useLayouts(
  props: IPipelineGraphProps
): Record<Direction, IDagLayout> | null {
  const { result, tagAfter } = props;
  return React.useMemo(() => {
    if (!result || !result.steps.length) {
      return null;
    }
    // while errors exist the compiled steps lose their edges: the tags still have them
    const options = {
      tagAfter: result.errors.length ? tagAfter : undefined,
      charWidth: CHAR_WIDTH,
      iconRoom: ICON_ROOM,
      compact: true
    };
    return {
      TB: layoutDag(result.steps, { ...options, rankdir: 'TB' }),
      LR: layoutDag(result.steps, { ...options, rankdir: 'LR' })
    };
  }, [result, tagAfter]);
}

export function PipelineGraph(props: IPipelineGraphProps): React.ReactElement {
  const viewRef = React.useRef<HTMLDivElement>(null);
  const size = useViewSize(viewRef);
  const layouts = useLayouts(props);
  const [direction, setDirection] = React.useState<Direction | null>(null);
  const [transform, setTransform] = React.useState<IViewTransform | null>(null);
  // fit again when the graph or the view changes, until the person pans or zooms
  const [autoFit, setAutoFit] = React.useState(true);
  const drag = React.useRef<{ x: number; y: number; moved: boolean } | null>(
    null
  );

  const chosen: Direction =
    direction ??
    (layouts && size
      ? fitTransform(layouts.LR, size, LIMITS).scale >
        fitTransform(layouts.TB, size, LIMITS).scale + 0.05
        ? 'LR'
        : 'TB'
      : 'TB');
  const layout = layouts?.[chosen] ?? null;

  const fit = React.useCallback(() => {
    if (layout && size) {
      setTransform(fitTransform(layout, size, LIMITS));
    }
  }, [layout, size]);

  React.useEffect(() => {
    if (autoFit || !transform) {
      fit();
    }
  }, [fit, autoFit]);

  const zoom = (factor: number, point?: { x: number; y: number }) => {
    if (!transform || !size) {
      return;
    }
    setAutoFit(false);
    setTransform(
      zoomAt(
        transform,
        factor,
        point ?? { x: size.width / 2, y: size.height / 2 },
        LIMITS
      )
    );
  };

  if (!layout) {
    return (
      <div className="cp-Graph">
        <p className="cp-Empty">
          {props.result
            ? 'The notebook has no steps yet: tag a cell as a step in the cellpipe sidebar.'
            : 'Compiling…'}
        </p>
      </div>
    );
  }
  const errorSteps = new Set(
    (props.result?.errors ?? []).map(problem => problem.step).filter(Boolean)
  );
  const t = transform ?? { scale: 1, x: 0, y: 0 };
  return (
    <div className="cp-Graph">
      <div className="cp-GraphToolbar" role="toolbar" aria-label="Zoom">
        <button
          type="button"
          className="cp-GraphButton"
          aria-label="Zoom in"
          title="Zoom in (+)"
          onClick={() => zoom(ZOOM_STEP)}
        >
          +
        </button>
        <button
          type="button"
          className="cp-GraphButton"
          aria-label="Zoom out"
          title="Zoom out (-); names stay readable"
          onClick={() => zoom(1 / ZOOM_STEP)}
        >
          −
        </button>
        <button
          type="button"
          className="cp-GraphButton"
          aria-label="Fit the pipeline in the view"
          title="Fit (0)"
          onClick={() => {
            setAutoFit(true);
            fit();
          }}
        >
          Fit
        </button>
        <button
          type="button"
          className="cp-GraphButton"
          aria-label={
            chosen === 'TB' ? 'Lay out left to right' : 'Lay out top to bottom'
          }
          title="Turn the layout"
          onClick={() => {
            setDirection(chosen === 'TB' ? 'LR' : 'TB');
            setAutoFit(true);
          }}
        >
          {chosen === 'TB' ? '⇢' : '⇣'}
        </button>
        <span className="cp-GraphZoom" aria-live="polite">
          {Math.round(t.scale * 100)} %
        </span>
      </div>
      <div
        ref={viewRef}
        className="cp-GraphView"
        tabIndex={0}
        role="group"
        aria-label="Pipeline graph: drag to pan, the wheel or + and - to zoom, 0 to fit"
        data-scale={t.scale.toFixed(3)}
        onWheel={event => {
          const box = event.currentTarget.getBoundingClientRect();
          zoom(Math.exp(-event.deltaY * 0.0015), {
            x: event.clientX - box.left,
            y: event.clientY - box.top
          });
        }}
        onPointerDown={event => {
          if ((event.target as Element).closest('.cp-GraphNode')) {
            return;
          }
          drag.current = { x: event.clientX, y: event.clientY, moved: false };
          event.currentTarget.setPointerCapture(event.pointerId);
        }}
        onPointerMove={event => {
          const start = drag.current;
          if (!start || !transform) {
            return;
          }
          const dx = event.clientX - start.x;
          const dy = event.clientY - start.y;
          drag.current = { x: event.clientX, y: event.clientY, moved: true };
          setAutoFit(false);
          setTransform({
            ...transform,
            x: transform.x + dx,
            y: transform.y + dy
          });
        }}
        onPointerUp={() => {
          drag.current = null;
        }}
        onKeyDown={event => {
          if (event.target !== event.currentTarget) {
            return;
          }
          if (event.key === '+' || event.key === '=') {
            zoom(ZOOM_STEP);
          } else if (event.key === '-') {
            zoom(1 / ZOOM_STEP);
          } else if (event.key === '0') {
            setAutoFit(true);
            fit();
          }
        }}
      >
        <svg className="cp-GraphSvg" width="100%" height="100%">
          <defs>
            <marker
              id="cp-graph-arrow"
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
          <g transform={`translate(${t.x},${t.y}) scale(${t.scale})`}>
            {layout.edges.map(edge => (
              <path
                key={`${edge.from}\u0000${edge.to}`}
                className={`cp-GraphEdge${edge.broken ? ' cp-mod-broken' : ''}`}
                d={edgePath(edge.points)}
                markerEnd="url(#cp-graph-arrow)"
                data-from={edge.from}
                data-to={edge.to}
              >
                <title>
                  {edge.broken
                    ? `${edge.from} → ${edge.to}: ${edge.broken}`
                    : edge.values.length
                      ? `${edge.from} → ${edge.to}: ${edge.values.join(', ')}`
                      : `${edge.from} → ${edge.to}`}
                </title>
              </path>
            ))}
            {layout.nodes.map(node => {
              const run = node.missing ? undefined : props.stepRuns[node.name];
              const classes = [
                'cp-GraphNode',
                errorSteps.has(node.name) ? 'cp-mod-error' : '',
                node.missing ? 'cp-mod-missing' : '',
                props.selected === node.name ? 'cp-mod-selected' : '',
                run ? `cp-status-${run.status}` : ''
              ]
                .filter(Boolean)
                .join(' ');
              const status = run
                ? `; last run ${run.status}${run.cached ? ' (cached)' : ''}`
                : '';
              return (
                <g
                  key={node.name}
                  className={classes}
                  transform={`translate(${node.x},${node.y})`}
                  role="button"
                  tabIndex={node.missing ? -1 : 0}
                  aria-label={node.label + status}
                  aria-pressed={props.selected === node.name}
                  data-step={node.name}
                  style={
                    {
                      '--cp-node-color': `var(--cp-step-color-${stepColor(
                        node.name,
                        props.steps
                      )})`
                    } as React.CSSProperties
                  }
                  onClick={() => !node.missing && props.onSelectStep(node.name)}
                  onKeyDown={event => {
                    if (
                      !node.missing &&
                      (event.key === 'Enter' || event.key === ' ')
                    ) {
                      event.preventDefault();
                      props.onSelectStep(node.name);
                    }
                  }}
                >
                  <title>{node.label + status}</title>
                  <rect
                    className="cp-GraphBox"
                    width={node.width}
                    height={node.height}
                    rx={5}
                  />
                  <rect
                    className="cp-DagEdgeMark"
                    width={4}
                    height={node.height}
                  />
                  {node.lines.map((line, i) => (
                    <text
                      key={i}
                      className={`cp-GraphText cp-GraphText-${line.kind}`}
                      x={DAG_PADDING}
                      y={DAG_PADDING + (i + 1) * DAG_LINE_HEIGHT - 3}
                    >
                      {line.text}
                    </text>
                  ))}
                  {run && (
                    <text
                      className="cp-GraphStatusIcon"
                      x={node.width - ICON_ROOM / 2 - 2}
                      y={DAG_PADDING + DAG_LINE_HEIGHT - 3}
                      textAnchor="middle"
                      aria-hidden="true"
                    >
                      {STATUS_ICONS[run.status] ?? '?'}
                    </text>
                  )}
                </g>
              );
            })}
          </g>
        </svg>
      </div>
    </div>
  );
}

/** The step a cell belongs to in the session's notebook, or null. */
function stepOfCell(
  session: NotebookSession,
  cell: Cell | null
): string | null {
  if (!cell) {
    return null;
  }
  const place = session.pipeline.membership.cells.find(
    p => p.id === cell.model.id
  );
  return place?.role === 'step' ? (place.steps[0] ?? null) : null;
}

/** The view's content: re-rendered when the session's pipeline, runs or active cell change. */
class PipelineGraphWidget extends ReactWidget {
  constructor(
    readonly session: NotebookSession,
    private readonly _select: (name: string) => void
  ) {
    super();
    this.addClass('cp-GraphWidget');
    session.pipeline.changed.connect(this._onChanged, this);
    session.runs.changed.connect(this._onChanged, this);
    session.panel.content.activeCellChanged.connect(this._onChanged, this);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    if (!this.session.isDisposed) {
      this.session.pipeline.changed.disconnect(this._onChanged, this);
      this.session.runs.changed.disconnect(this._onChanged, this);
    }
    if (!this.session.panel.isDisposed) {
      this.session.panel.content.activeCellChanged.disconnect(
        this._onChanged,
        this
      );
    }
    super.dispose();
  }

  protected render(): React.ReactElement {
    const { pipeline, runs, panel } = this.session;
    const notebook: Notebook = panel.content;
    const newest = runs.runs[0];
    return (
      <PipelineGraph
        result={pipeline.result}
        steps={pipeline.membership.steps}
        tagAfter={this._tagAfter()}
        stepRuns={newest?.steps ?? {}}
        selected={stepOfCell(this.session, notebook.activeCell)}
        onSelectStep={this._select}
      />
    );
  }

  /** The tags' graph, kept while the cells' tags are the same (React memo on identity). */
  private _tagAfter(): ReadonlyMap<string, ReadonlyArray<string>> {
    const cells = this.session.source.cells();
    const key = JSON.stringify(cells.map(cell => [cell.type, cell.tags]));
    if (key !== this._tagKey) {
      this._tagKey = key;
      this._tagGraph = tagGraph(cells);
    }
    return this._tagGraph;
  }

  private _onChanged(): void {
    this.update();
  }

  private _tagKey = '';
  private _tagGraph: ReadonlyMap<string, ReadonlyArray<string>> = new Map();
}

/** The main-area panel of one notebook's pipeline view. */
export function createPipelinePanel(
  session: NotebookSession,
  onSelectStep: (name: string) => void
): MainAreaWidget<ReactWidget> {
  const content = new PipelineGraphWidget(session, onSelectStep);
  const panel = new MainAreaWidget<ReactWidget>({ content });
  panel.id = `cellpipe-pipeline-${session.panel.id}`;
  panel.addClass('cp-PipelinePanel');
  const name = () => session.source.path.split('/').pop() ?? '';
  panel.title.label = `Pipeline: ${name()}`;
  panel.title.caption = `cellpipe: the pipeline of ${session.source.path}`;
  panel.title.icon = pipelineIcon;
  panel.title.closable = true;
  session.panel.disposed.connect(() => panel.dispose());
  return panel;
}
