/**
 * Which step each cell belongs to, worked out from the tags at once (pure), so the cells'
 * coloured edges follow an edit before the debounced compile answers. The rules are the
 * converter's (converter/build.py `_group`): an untagged cell continues the role of the
 * nearest tagged cell above it, skip cells aside; code cells before any tag join the first
 * step; markdown cells are ignored.
 */
import { CellRole, readCellSettings, readStepLine } from './tags';

/** What the sidebar needs of a cell. */
export interface ICellInfo {
  id: string;
  type: string;
  tags: ReadonlyArray<string>;
  source: string;
}

/** Where a cell stands in the pipeline. */
export interface ICellPlace {
  id: string;
  /** The role it has (its own tag, or the one it continues); null: none (markdown). */
  role: Exclude<CellRole, 'continue'> | null;
  /** The steps it belongs to (role `step`), first one first. */
  steps: string[];
  /** Does this cell's own tag begin the step (rather than continue it)? */
  begins: boolean;
}

/** Each cell's place, in notebook order, and the step names in order of first appearance. */
export interface IMembership {
  cells: ICellPlace[];
  steps: string[];
}

export function cellMembership(cells: ReadonlyArray<ICellInfo>): IMembership {
  const places: ICellPlace[] = cells.map(cell => ({
    id: cell.id,
    role: null,
    steps: [],
    begins: false
  }));
  const order: string[] = [];
  let role: Exclude<CellRole, 'continue'> | null = null;
  let current: string[] = [];
  let waiting: ICellPlace[] = [];
  cells.forEach((cell, index) => {
    if (cell.type !== 'code') {
      return;
    }
    const place = places[index];
    const settings = readCellSettings(cell.tags, readStepLine(cell.source));
    if (settings.role === 'skip') {
      place.role = 'skip';
      return;
    }
    if (settings.role !== 'continue') {
      role = settings.role;
      if (role === 'step') {
        current = settings.names;
        place.begins = true;
      }
    }
    if (role === null) {
      waiting.push(place);
      return;
    }
    if (role === 'step') {
      for (const name of current) {
        if (!order.includes(name)) {
          order.push(name);
        }
      }
      for (const pending of [...waiting, place]) {
        pending.role = 'step';
        pending.steps = [...current];
      }
      waiting = [];
      return;
    }
    place.role = role;
  });
  return { cells: places, steps: order };
}

/** How many step colours the style sheet defines (style/base.css, --cp-step-color-N). */
export const STEP_COLORS = 10;

/** The colour slot of a step: its position among the notebook's steps. */
export function stepColor(name: string, steps: ReadonlyArray<string>): number {
  const index = steps.indexOf(name);
  return (index < 0 ? 0 : index) % STEP_COLORS;
}

/** What a cell's label says: `step: load data`, `imports`, `skip`, ... */
export function placeLabel(place: ICellPlace): string {
  if (place.role === null) {
    return '';
  }
  if (place.role === 'step') {
    return place.steps.join(', ');
  }
  return place.role;
}

/** Python's repr() of a string, as the CLI's messages quote step names. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of text) {
    if (ch === '\\') {
      out += '\\\\';
    } else if (ch === quote) {
      out += `\\${ch}`;
    } else if (ch === '\n') {
      out += '\\n';
    } else if (ch === '\t') {
      out += '\\t';
    } else if (ch === '\r') {
      out += '\\r';
    } else {
      out += ch;
    }
  }
  return quote + out + quote;
}

/** A problem as the CLI words it, less the notebook's name: `cell N (step 'S'): message`. */
export function forPeople(problem: {
  message: string;
  cell_index: number | null;
  step: string | null;
}): string {
  const where: string[] = [];
  if (problem.cell_index !== null) {
    let cell = `cell ${problem.cell_index + 1}`;
    if (problem.step !== null) {
      cell += ` (step ${pyRepr(problem.step)})`;
    }
    where.push(cell);
  } else if (problem.step !== null) {
    where.push(`step ${pyRepr(problem.step)}`);
  }
  return [...where, problem.message].join(': ');
}

/**
 * Each step's `after:` (or `prev:`) steps as the tags say them, read without compiling: the
 * graph the step editor checks for cycles and the pipeline view draws while compile errors
 * (a cycle, an unknown step) leave the compiled steps without their edges.
 */
export function tagGraph(
  cells: ReadonlyArray<ICellInfo>
): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const cell of cells) {
    if (cell.type !== 'code') {
      continue;
    }
    const settings = readCellSettings(cell.tags, readStepLine(cell.source));
    if (settings.role !== 'step') {
      continue;
    }
    for (const name of settings.names) {
      const after = graph.get(name) ?? [];
      for (const before of settings.after) {
        if (!after.includes(before)) {
          after.push(before);
        }
      }
      graph.set(name, after);
    }
  }
  return graph;
}

/** The steps `name` runs after, directly or through others (not `name` itself unless a cycle). */
export function upstreamOf(
  name: string,
  graph: ReadonlyMap<string, ReadonlyArray<string>>
): Set<string> {
  const seen = new Set<string>();
  const queue = [...(graph.get(name) ?? [])];
  while (queue.length) {
    const next = queue.pop()!;
    if (!seen.has(next)) {
      seen.add(next);
      queue.push(...(graph.get(next) ?? []));
    }
  }
  return seen;
}

/**
 * The steps a step named `own` may run after without making a cycle: not itself, and none
 * that already runs after it (directly or through others).
 */
export function acyclicCandidates(
  own: ReadonlyArray<string>,
  steps: ReadonlyArray<string>,
  graph: ReadonlyMap<string, ReadonlyArray<string>>
): string[] {
  const mine = new Set(own.map(name => name.trim()).filter(Boolean));
  return steps.filter(
    step =>
      !mine.has(step) &&
      ![...upstreamOf(step, graph)].some(before => mine.has(before))
  );
}

/** The step of the nearest code cell above `cellId` that belongs to one, or null. */
export function stepAbove(
  membership: IMembership,
  cellId: string
): string | null {
  const index = membership.cells.findIndex(place => place.id === cellId);
  for (let i = index - 1; i >= 0; i--) {
    const place = membership.cells[i];
    if (place.role === 'step' && place.steps.length) {
      return place.steps[0];
    }
  }
  return null;
}

/** Does any cell order its step with `after:` (or Kale's `prev:`)? */
export function usesAfter(cells: ReadonlyArray<ICellInfo>): boolean {
  return [...tagGraph(cells).values()].some(after => after.length > 0);
}

/** A piece of a message: plain text, or `cell N` (N counting from 1) to link to the cell. */
export type MessagePart = string | { cell: number; text: string };

const CELL_REFERENCE = /\bcell (\d+)\b/g;

/** Split a message or traceback so that each `cell N` in it can be a link to the cell. */
export function cellLinks(text: string): MessagePart[] {
  const parts: MessagePart[] = [];
  let last = 0;
  for (const match of text.matchAll(CELL_REFERENCE)) {
    const start = match.index ?? 0;
    if (start > last) {
      parts.push(text.slice(last, start));
    }
    parts.push({ cell: parseInt(match[1], 10), text: match[0] });
    last = start + match[0].length;
  }
  if (last < text.length) {
    parts.push(text.slice(last));
  }
  return parts;
}

/**
 * The cell (0-based index) a failed step's error points at: the notebook's frame in its
 * traceback (`File "NOTEBOOK, cell N"`), else the first `cell N` it names; null when none.
 */
export function failedCellIndex(error: string | null): number | null {
  if (!error) {
    return null;
  }
  const frame =
    /\.ipynb, cell (\d+)/.exec(error) ?? /\bcell (\d+)\b/.exec(error);
  return frame ? parseInt(frame[1], 10) - 1 : null;
}
