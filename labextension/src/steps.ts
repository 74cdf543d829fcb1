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
