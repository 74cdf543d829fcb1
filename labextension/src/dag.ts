/**
 * The DAG's layout (pure): dagre places the steps, top to bottom; the view draws the SVG.
 */
import * as dagre from '@dagrejs/dagre';

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
}

export interface IDagEdge {
  from: string;
  to: string;
  /** Names handed from `from` to `to` along this edge. */
  values: string[];
  points: { x: number; y: number }[];
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
export function nodeLines(step: IStep): INodeLine[] {
  const lines: INodeLine[] = [{ kind: 'name', text: fit(step.name) }];
  const gpu = gpuBadge(step);
  if (gpu) {
    lines.push({ kind: 'gpu', text: fit(gpu) });
  }
  const resources = resourcesLine(step);
  if (resources) {
    lines.push({ kind: 'resources', text: fit(resources) });
  }
  if (step.receives.length) {
    lines.push({
      kind: 'receives',
      text: fit(`← ${step.receives.join(', ')}`)
    });
  }
  if (step.hands_on.length) {
    lines.push({
      kind: 'hands_on',
      text: fit(`→ ${step.hands_on.join(', ')}`)
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

/** Lay the steps out as a graph: one node per step, one edge per `after`. */
export function layoutDag(steps: ReadonlyArray<IStep>): IDagLayout {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({
    rankdir: 'TB',
    nodesep: 24,
    ranksep: 36,
    marginx: 8,
    marginy: 8
  });
  graph.setDefaultEdgeLabel(() => ({}));
  const byName = new Map(steps.map(step => [step.name, step]));
  for (const step of steps) {
    const lines = nodeLines(step);
    const longest = Math.max(...lines.map(line => line.text.length));
    const width = Math.min(
      MAX_WIDTH,
      Math.max(MIN_WIDTH, Math.ceil(longest * CHAR_WIDTH + 2 * PADDING))
    );
    const height = lines.length * LINE_HEIGHT + 2 * PADDING - 2;
    graph.setNode(step.name, { width, height });
  }
  const edges: { from: string; to: string; values: string[] }[] = [];
  for (const step of steps) {
    for (const before of step.after) {
      const source = byName.get(before);
      if (!source || before === step.name) {
        continue;
      }
      graph.setEdge(before, step.name);
      edges.push({
        from: before,
        to: step.name,
        values: step.receives.filter(name => source.hands_on.includes(name))
      });
    }
  }
  dagre.layout(graph);
  const label = graph.graph();
  return {
    width: Math.ceil(label.width ?? 0),
    height: Math.ceil(label.height ?? 0),
    nodes: steps.map(step => {
      const node = graph.node(step.name);
      return {
        name: step.name,
        x: node.x - node.width / 2,
        y: node.y - node.height / 2,
        width: node.width,
        height: node.height,
        lines: nodeLines(step),
        label: nodeLabel(step)
      };
    }),
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
