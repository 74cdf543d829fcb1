/**
 * The DAG's layout (pure): dagre places the steps, top to bottom; the view draws the SVG.
 */
import * as dagre from '@dagrejs/dagre';

import { upstreamOf } from './steps';
import { IStep } from './tokens';

/** One line of text in a node: its kind says how it is drawn. */
export interface INodeLine {
  kind: 'name' | 'gpu' | 'receives' | 'hands_on' | 'resources';
  text: string;
}

export interface IDagNode {
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  lines: INodeLine[];
  /** A screen reader's words for the node. */
  label: string;
  /** A step named by an `after:` tag that the notebook does not have. */
  missing?: boolean;
}

export interface IDagEdge {
  from: string;
  to: string;
  /** Names handed from `from` to `to` along this edge. */
  values: string[];
  points: { x: number; y: number }[];
  /** Why the edge cannot be (it closes a cycle, its step is missing), or null. */
  broken: string | null;
}

export interface IDagLayout {
  width: number;
  height: number;
  nodes: IDagNode[];
  edges: IDagEdge[];
}

const CHAR_WIDTH = 6.6; // at the view's 11-12px font; only the box sizes depend on it
const LINE_HEIGHT = 15;
const PADDING = 10;
const MIN_WIDTH = 120;
const MAX_WIDTH = 230;
const MAX_CHARS = Math.floor((MAX_WIDTH - 2 * PADDING) / CHAR_WIDTH);

/** Cut text to what fits a node, with an ellipsis. */
export function fit(text: string, chars = MAX_CHARS): string {
  return text.length <= chars ? text : text.slice(0, chars - 1) + '…';
}

/** `1 GPU`, `2 GPUs · A100`. */
export function gpuBadge(step: IStep): string | null {
  const gpu = step.resources.gpu;
  if (!gpu) {
    return null;
  }
  const count = `${gpu.count} GPU${gpu.count === 1 ? '' : 's'}`;
  return gpu.type ? `${count} · ${gpu.type}` : count;
}

function resourcesLine(step: IStep): string | null {
  const parts: string[] = [];
  const cpu = step.resources.cpu;
  const memory = step.resources.memory;
  if (cpu) {
    parts.push(`cpu ${cpu.limit ?? cpu.request}`);
  }
  if (memory) {
    parts.push(`mem ${memory.limit ?? memory.request}`);
  }
  if (step.base_image) {
    parts.push(step.base_image);
  }
  return parts.length ? parts.join(' · ') : null;
}

/** What a node shows, line by line. */
export function nodeLines(step: IStep, chars = MAX_CHARS): INodeLine[] {
  const lines: INodeLine[] = [{ kind: 'name', text: fit(step.name, chars) }];
  const gpu = gpuBadge(step);
  if (gpu) {
    lines.push({ kind: 'gpu', text: fit(gpu, chars) });
  }
  const resources = resourcesLine(step);
  if (resources) {
    lines.push({ kind: 'resources', text: fit(resources, chars) });
  }
  if (step.receives.length) {
    lines.push({
      kind: 'receives',
      text: fit(`← ${step.receives.join(', ')}`, chars)
    });
  }
  if (step.hands_on.length) {
    lines.push({
      kind: 'hands_on',
      text: fit(`→ ${step.hands_on.join(', ')}`, chars)
    });
  }
  return lines;
}

/** The words a screen reader says for a step. */
export function nodeLabel(step: IStep): string {
  const parts = [`Step ${step.name}`];
  const gpu = gpuBadge(step);
  if (gpu) {
    parts.push(gpu);
  }
  if (step.after.length) {
    parts.push(`after ${step.after.join(', ')}`);
  }
  if (step.receives.length) {
    parts.push(`receives ${step.receives.join(', ')}`);
  }
  if (step.hands_on.length) {
    parts.push(`hands on ${step.hands_on.join(', ')}`);
  }
  return parts.join('; ');
}

export interface ILayoutOptions {
  /**
   * The `after:` edges as the tags say them (steps.ts `tagGraph`), drawn instead of the
   * compiled ones: while compile errors exist the compiled steps have no edges, and the
   * graph would fall into one row.
   */
  tagAfter?: ReadonlyMap<string, ReadonlyArray<string>>;
  /** The width of a character at the view's font (6.6 at 11-12 px). */
  charWidth?: number;
  /** Room for a status icon at the right of each node (pixels). */
  iconRoom?: number;
  /** Nodes as wide as their names, their other lines cut to that width. */
  compact?: boolean;
  /** Top to bottom (the default) or left to right. */
  rankdir?: 'TB' | 'LR';
}

/** An edge's trouble: it closes a cycle, or its step does not exist. */
function brokenReason(
  from: string,
  to: string,
  known: ReadonlySet<string>,
  after: ReadonlyMap<string, ReadonlyArray<string>>
): string | null {
  if (!known.has(from)) {
    return `no step is named ${from}`;
  }
  if (upstreamOf(from, after).has(to)) {
    return `${from} and ${to} run after each other (a cycle)`;
  }
  return null;
}

/** Lay the steps out as a graph: one node per step, one edge per `after`. */
export function layoutDag(
  steps: ReadonlyArray<IStep>,
  options: ILayoutOptions = {}
): IDagLayout {
  const afterOf = (step: IStep): ReadonlyArray<string> =>
    options.tagAfter?.get(step.name) ?? step.after;
  const after = new Map(steps.map(step => [step.name, afterOf(step)]));
  const known = new Set(steps.map(step => step.name));
  const missing = [
    ...new Set(
      steps.flatMap(step => afterOf(step).filter(name => !known.has(name)))
    )
  ];
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({
    rankdir: options.rankdir ?? 'TB',
    nodesep: 24,
    ranksep: 36,
    marginx: 8,
    marginy: 8
  });
  graph.setDefaultEdgeLabel(() => ({}));
  const byName = new Map(steps.map(step => [step.name, step]));
  const charWidth = options.charWidth ?? CHAR_WIDTH;
  const iconRoom = options.iconRoom ?? 0;
  const maxWidth = MAX_WIDTH * (charWidth / CHAR_WIDTH) + iconRoom;
  const chars = Math.floor((maxWidth - iconRoom - 2 * PADDING) / charWidth);
  const sized = new Map<string, { width: number; lines: INodeLine[] }>();
  for (const step of steps) {
    let lines = nodeLines(step, chars);
    // compact: as wide as the name and GPU badge; the rest cut to that (the title has it all)
    const sizing = options.compact
      ? lines.filter(line => line.kind === 'name' || line.kind === 'gpu')
      : lines;
    const longest = Math.max(...sizing.map(line => line.text.length));
    const width = Math.min(
      maxWidth,
      Math.max(
        MIN_WIDTH,
        Math.ceil(longest * charWidth + 2 * PADDING + iconRoom)
      )
    );
    if (options.compact) {
      const room = Math.floor((width - 2 * PADDING) / CHAR_WIDTH);
      lines = lines.map(line =>
        sizing.includes(line) ? line : { ...line, text: fit(line.text, room) }
      );
    }
    sized.set(step.name, { width, lines });
    const height = lines.length * LINE_HEIGHT + 2 * PADDING - 2;
    graph.setNode(step.name, { width, height });
  }
  const linesOf = (step: IStep) => sized.get(step.name)!.lines;
  for (const name of missing) {
    graph.setNode(name, {
      width: Math.max(MIN_WIDTH, name.length * charWidth + 2 * PADDING),
      height: LINE_HEIGHT + 2 * PADDING
    });
  }
  const edges: Omit<IDagEdge, 'points'>[] = [];
  for (const step of steps) {
    for (const before of afterOf(step)) {
      if (before === step.name) {
        continue; // a step after itself: the compile error on its cell says so
      }
      const source = byName.get(before);
      graph.setEdge(before, step.name);
      edges.push({
        from: before,
        to: step.name,
        values: source
          ? step.receives.filter(name => source.hands_on.includes(name))
          : [],
        broken: brokenReason(before, step.name, known, after)
      });
    }
  }
  dagre.layout(graph);
  const label = graph.graph();
  return {
    width: Math.ceil(label.width ?? 0),
    height: Math.ceil(label.height ?? 0),
    nodes: steps
      .map(step => {
        const node = graph.node(step.name);
        return {
          name: step.name,
          x: node.x - node.width / 2,
          y: node.y - node.height / 2,
          width: node.width,
          height: node.height,
          lines: linesOf(step),
          label: nodeLabel(step)
        };
      })
      .concat(
        missing.map(name => {
          const node = graph.node(name);
          return {
            name,
            x: node.x - node.width / 2,
            y: node.y - node.height / 2,
            width: node.width,
            height: node.height,
            lines: [{ kind: 'name' as const, text: fit(name, chars) }],
            label: `No step is named ${name}`,
            missing: true
          };
        })
      ),
    edges: edges.map(edge => ({
      ...edge,
      points: (graph.edge(edge.from, edge.to).points ?? []).map(p => ({
        x: p.x,
        y: p.y
      }))
    }))
  };
}

/** An SVG path through the edge's points. */
export function edgePath(
  points: ReadonlyArray<{ x: number; y: number }>
): string {
  if (!points.length) {
    return '';
  }
  const [first, ...rest] = points;
  return (
    `M${first.x.toFixed(1)},${first.y.toFixed(1)}` +
    rest.map(p => ` L${p.x.toFixed(1)},${p.y.toFixed(1)}`).join('')
  );
}

export const DAG_LINE_HEIGHT = LINE_HEIGHT;
export const DAG_PADDING = PADDING;

/** How the view shows the graph: scale, then translate (screen pixels). */
export interface IViewTransform {
  scale: number;
  x: number;
  y: number;
}

/** The zoom range: never so small that a name is drawn under `minFontPx`. */
export interface IZoomLimits {
  min: number;
  max: number;
}

/** The least scale at which text of `fontPx` (in graph units) is drawn at `minFontPx`. */
export function zoomLimits(fontPx: number, minFontPx: number): IZoomLimits {
  return { min: minFontPx / fontPx, max: 3 };
}

function clamp(value: number, limits: IZoomLimits): number {
  return Math.min(limits.max, Math.max(limits.min, value));
}

/**
 * The transform that shows the whole graph in the view, centred, at most at 100 %; a graph
 * too big to fit at the least legible scale is shown from its top, centred across.
 */
export function fitTransform(
  graph: { width: number; height: number },
  view: { width: number; height: number },
  limits: IZoomLimits,
  margin = 16
): IViewTransform {
  const room = {
    width: Math.max(1, view.width - 2 * margin),
    height: Math.max(1, view.height - 2 * margin)
  };
  const scale = clamp(
    Math.min(
      1,
      room.width / Math.max(1, graph.width),
      room.height / Math.max(1, graph.height)
    ),
    limits
  );
  const width = graph.width * scale;
  const height = graph.height * scale;
  return {
    scale,
    x: width <= room.width ? (view.width - width) / 2 : margin,
    y: height <= room.height ? (view.height - height) / 2 : margin
  };
}

/** Zoom by `factor` about a point of the view (the pointer), which stays where it is. */
export function zoomAt(
  transform: IViewTransform,
  factor: number,
  point: { x: number; y: number },
  limits: IZoomLimits
): IViewTransform {
  const scale = clamp(transform.scale * factor, limits);
  const ratio = scale / transform.scale;
  return {
    scale,
    x: point.x - (point.x - transform.x) * ratio,
    y: point.y - (point.y - transform.y) * ratio
  };
}
