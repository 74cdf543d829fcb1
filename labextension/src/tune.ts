/**
 * Tuning from the sidebar (pure where it can be): the Tune dialog's fields read into a
 * POST /tunes request (the SPACE grammar of `cellpipe tune --search`), a tune followed live
 * (GET /tunes/ID/events, polling GET /tunes/ID where the stream breaks), the objective per
 * trial as chart geometry, and the best values written into the parameters cells as Python
 * literals (values are data: escaped, never pasted as code).
 */
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { CellPipeClient } from './api';
import { EventSourceClass } from './runwatch';
import { parseParameter } from './params';
import { cellMembership, ICellInfo } from './steps';
import {
  ICompileResult,
  ITrial,
  ITune,
  ITuneRequest,
  JSONValue,
  ParameterType,
  TuneDirection
} from './tokens';
import { isFinished, VocabularySource } from './vocabulary';

/** The search algorithms, as `cellpipe tune --algorithm` names them. */
export const ALGORITHMS = ['random', 'grid', 'bayesian', 'tpe'] as const;

/** The tuning engines (ARCHITECTURE.md's vocabulary). */
export const TUNE_ENGINES = ['local', 'katib'] as const;

/** What a range field of each type looks like (the field's placeholder). */
export const SPACE_EXAMPLES: Record<ParameterType, string> = {
  int: '1..6  or  2,4,8',
  float: '0.001..0.1:log  or  0.1..0.9:0.2',
  str: 'a,b,c',
  bool: 'true,false',
  list: '',
  dict: ''
};

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/**
 * Is `text` a SPACE of this parameter's type? Null when it is, else what is wrong, worded
 * for the person typing it. The rules are `cellpipe tune --search`'s
 * (launcher/tune_spaces.py): `..` without a comma is a range, of numbers only; anything else
 * is a list of choices, each read as `-p` reads a value of the parameter's type. The server
 * checks again; this says so before the request is sent.
 */
export function spaceProblem(
  name: string,
  type: ParameterType,
  text: string,
  algorithm: string
): string | null {
  const space = text.trim();
  if (space.includes('..') && !space.includes(',')) {
    return rangeProblem(name, type, space, algorithm);
  }
  for (const choice of space.split(',')) {
    const parsed = parseParameter(name, type, choice.trim());
    if ('error' in parsed) {
      return parsed.error;
    }
  }
  return null;
}

function rangeProblem(
  name: string,
  type: ParameterType,
  space: string,
  algorithm: string
): string | null {
  if (type !== 'int' && type !== 'float') {
    return `${name} is a ${type}: a range is for numbers; list its values (a,b,c)`;
  }
  const [bounds, ...rest] = space.split(':');
  const modifier = rest.join(':').trim();
  const [lowText, highText = ''] = bounds.split('..');
  const numbers = [
    lowText,
    highText,
    ...(modifier && modifier !== 'log' ? [modifier] : [])
  ];
  if (!numbers.every(number => NUMBER.test(number.trim()))) {
    return `${name}: '${space}' is not LOW..HIGH, LOW..HIGH:log or LOW..HIGH:STEP`;
  }
  const [low, high, step] = numbers.map(Number);
  if (type === 'int' && !numbers.map(Number).every(Number.isInteger)) {
    return `${name} is an int: give whole numbers (e.g. 1..6)`;
  }
  if (!(low < high)) {
    return `${name}: the range's low end must be below its high end`;
  }
  if (modifier === 'log' && low <= 0) {
    return `${name}: a log range needs a low end above 0`;
  }
  if (step !== undefined && step <= 0) {
    return `${name}: the step must be above 0`;
  }
  if (algorithm === 'grid' && modifier === 'log') {
    return `${name}: a grid cannot take a log range; list the values (a,b,c)`;
  }
  if (algorithm === 'grid' && type === 'float' && step === undefined) {
    return `${name}: a grid over a float range needs its step (${space}:STEP) or the values (a,b,c)`;
  }
  return null;
}

/** The direction a metric is most likely tuned in: losses and errors down, the rest up. */
export function likelyDirection(metric: string): TuneDirection {
  return /loss|error|err\b|rmse|mse|mae|perplexity/i.test(metric)
    ? 'minimize'
    : 'maximize';
}

/** The Tune dialog's fields, as typed. */
export interface ITuneForm {
  /** Parameter -> its SPACE ('' : not tuned, it keeps its default). */
  spaces: Record<string, string>;
  objective: string;
  direction: TuneDirection;
  algorithm: string;
  trials: string;
  parallel: string;
  seed: string;
  engine: string;
}

export function initialTuneForm(result: ICompileResult): ITuneForm {
  const objective = result.metrics[0] ?? '';
  return {
    spaces: Object.fromEntries(
      Object.keys(result.parameter_types).map(name => [name, ''])
    ),
    objective,
    direction: likelyDirection(objective),
    algorithm: 'random',
    trials: '12',
    parallel: '',
    seed: '',
    engine: 'local'
  };
}

/** A whole-number field: its value, undefined when empty, or a problem. */
function wholeField(
  label: string,
  text: string,
  minimum: number,
  problems: string[]
): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') {
    return undefined;
  }
  if (!INTEGER.test(trimmed) || parseInt(trimmed, 10) < minimum) {
    problems.push(`${label}: a whole number of at least ${minimum}`);
    return undefined;
  }
  return parseInt(trimmed, 10);
}

/** The form read into POST /tunes' body (less the notebook), and every problem with it. */
export function readTuneForm(
  result: ICompileResult,
  form: ITuneForm
): { request: Omit<ITuneRequest, 'path'>; problems: string[] } {
  const problems: string[] = [];
  if (result.errors.length) {
    problems.push(
      `the notebook has ${result.errors.length} compile error(s): fix them first`
    );
  }
  if (!result.metrics.includes(form.objective)) {
    problems.push(
      result.metrics.length
        ? `choose the objective among the metrics: ${result.metrics.join(', ')}`
        : 'the notebook has no metrics cell: tag a cell `metrics` to name the objective'
    );
  }
  const search: Record<string, string> = {};
  for (const [name, text] of Object.entries(form.spaces)) {
    const type = result.parameter_types[name];
    if (!type || text.trim() === '') {
      continue;
    }
    const problem = spaceProblem(name, type, text, form.algorithm);
    if (problem) {
      problems.push(problem);
    } else {
      search[name] = text.trim();
    }
  }
  if (!Object.keys(search).length && !problems.length) {
    problems.push('give at least one parameter a range to search');
  }
  const request: Omit<ITuneRequest, 'path'> = {
    objective: form.objective,
    direction: form.direction,
    search,
    algorithm: form.algorithm,
    engine: form.engine
  };
  const trials = wholeField('trials', form.trials, 1, problems);
  const parallel = wholeField('parallel', form.parallel, 1, problems);
  const seed = wholeField('seed', form.seed, 0, problems);
  if (trials !== undefined) {
    request.trials = trials;
  }
  if (parallel !== undefined) {
    request.parallel = parallel;
  }
  if (seed !== undefined) {
    request.seed = seed;
  }
  return { request, problems };
}

/**
 * A value as a Python literal of the parameter's type (what the parameters cell holds):
 * strings through JSON's escapes, which Python reads as the same text; a float stays a float.
 */
export function pythonLiteral(value: JSONValue, type?: ParameterType): string {
  if (value === null) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'number') {
    const text = String(value);
    return type === 'float' && /^[+-]?\d+$/.test(text) ? `${text}.0` : text;
  }
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(item => pythonLiteral(item)).join(', ')}]`;
  }
  const entries = Object.entries(value).map(
    ([key, item]) => `${JSON.stringify(key)}: ${pythonLiteral(item)}`
  );
  return `{${entries.join(', ')}}`;
}

/** A top-level statement of a cell: where it starts and ends, and where its comment begins. */
interface IStatement {
  start: number;
  end: number;
  /** Where a trailing `# comment` begins (end when none). */
  codeEnd: number;
}

/**
 * The cell's top-level statements, read as Python's tokenizer reads them: strings (triple
 * quoted too), brackets and backslash continuations carry a statement over lines; a comment
 * ends at its line.
 */
export function statements(source: string): IStatement[] {
  const found: IStatement[] = [];
  let start = 0;
  let depth = 0;
  let comment = -1;
  let i = 0;
  const close = (end: number) => {
    if (source.slice(start, end).trim() !== '') {
      found.push({ start, end, codeEnd: comment >= 0 ? comment : end });
    }
    start = end + 1;
    comment = -1;
  };
  while (i < source.length) {
    const ch = source[i];
    if (ch === '#') {
      comment = comment >= 0 ? comment : i;
      const newline = source.indexOf('\n', i);
      i = newline < 0 ? source.length : newline;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const triple = source.startsWith(ch.repeat(3), i);
      const quote = triple ? ch.repeat(3) : ch;
      let j = i + quote.length;
      while (j < source.length && !source.startsWith(quote, j)) {
        if (!triple && source[j] === '\n') {
          break; // an unterminated string: Python refuses it; stop at the line
        }
        j += source[j] === '\\' ? 2 : 1;
      }
      i = j + quote.length;
      continue;
    }
    if ('([{'.includes(ch)) {
      depth++;
    } else if (')]}'.includes(ch)) {
      depth = Math.max(0, depth - 1);
    } else if (ch === '\\' && source[i + 1] === '\n') {
      i += 2;
      continue;
    } else if (ch === '\n') {
      if (depth === 0) {
        close(i);
      } else {
        comment = -1; // a comment inside brackets: the statement goes on
      }
    }
    i++;
  }
  close(source.length);
  return found;
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\s*(:[^=\n]*)?=(?!=)\s*/;

/**
 * The cell's source with `name`'s last top-level assignment given `literal`, the name's
 * annotation and trailing comment kept; null when the cell does not assign it.
 */
export function replaceAssignment(
  source: string,
  name: string,
  literal: string
): string | null {
  const assignments = statements(source).filter(statement => {
    const match = ASSIGNMENT.exec(source.slice(statement.start));
    return match !== null && match[1] === name;
  });
  const last = assignments[assignments.length - 1];
  if (!last) {
    return null;
  }
  const head = ASSIGNMENT.exec(source.slice(last.start))![0];
  const valueStart = last.start + head.length;
  const code = source.slice(valueStart, last.codeEnd);
  const spacing = code.slice(code.trimEnd().length); // before the comment
  return (
    source.slice(0, valueStart) + literal + spacing + source.slice(last.codeEnd)
  );
}

/** A cell's new source. */
export interface ICellEdit {
  id: string;
  source: string;
}

/**
 * Write values into the notebook's parameters cells: each in the cell that assigns it last
 * (papermill's rule: a later value wins), else appended to the last parameters cell.
 */
export function parameterEdits(
  cells: ReadonlyArray<ICellInfo>,
  values: Record<string, JSONValue>,
  types: Record<string, ParameterType>
): { edits: ICellEdit[]; problem: string | null } {
  const places = cellMembership(cells).cells;
  const parameterCells = cells.filter(
    (cell, i) => cell.type === 'code' && places[i]?.role === 'parameters'
  );
  if (!parameterCells.length) {
    return {
      edits: [],
      problem: 'the notebook has no parameters cell to write the values into'
    };
  }
  const sources = new Map(parameterCells.map(cell => [cell.id, cell.source]));
  for (const [name, value] of Object.entries(values)) {
    const literal = pythonLiteral(value, types[name]);
    const owner = [...parameterCells]
      .reverse()
      .find(cell => replaceAssignment(sources.get(cell.id)!, name, literal));
    if (owner) {
      sources.set(
        owner.id,
        replaceAssignment(sources.get(owner.id)!, name, literal)!
      );
    } else {
      const last = parameterCells[parameterCells.length - 1].id;
      const text = sources.get(last)!;
      const glue = text === '' || text.endsWith('\n') ? '' : '\n';
      sources.set(last, `${text}${glue}${name} = ${literal}`);
    }
  }
  const edits = parameterCells
    .filter(cell => sources.get(cell.id) !== cell.source)
    .map(cell => ({ id: cell.id, source: sources.get(cell.id)! }));
  return { edits, problem: null };
}

/** A point of the objective chart: one finished trial. */
export interface IChartPoint {
  x: number;
  y: number;
  trial: number;
  value: number;
  best: boolean;
}

export interface IChart {
  width: number;
  height: number;
  points: IChartPoint[];
  /** The best value so far, trial after trial, as an SVG path (a step line). */
  bestPath: string;
  yTicks: { y: number; label: string }[];
  /** The plot area's left, right, top and bottom edges. */
  box: { left: number; right: number; top: number; bottom: number };
}

function tickLabel(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(3);
}

/**
 * The objective per trial as SVG geometry: trials along x (by number), their values along y
 * (the better end up), and the best so far as a step line.
 */
export function objectiveChart(
  trials: ReadonlyArray<ITrial>,
  direction: TuneDirection,
  width = 480,
  height = 220
): IChart {
  const box = { left: 52, right: width - 12, top: 12, bottom: height - 28 };
  const scored = trials
    .filter(
      (trial): trial is ITrial & { value: number } =>
        typeof trial.value === 'number' && Number.isFinite(trial.value)
    )
    .sort((a, b) => a.trial - b.trial);
  if (!scored.length) {
    return { width, height, points: [], bestPath: '', yTicks: [], box };
  }
  const values = scored.map(trial => trial.value);
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (low === high) {
    low -= Math.abs(low) * 0.05 || 1;
    high += Math.abs(high) * 0.05 || 1;
  }
  const first = Math.min(...scored.map(trial => trial.trial));
  const last = Math.max(...scored.map(trial => trial.trial));
  const span = Math.max(1, last - first);
  const x = (trial: number) =>
    box.left + ((trial - first) / span) * (box.right - box.left);
  // the better end is up: high values when maximizing, low ones when minimizing
  const y = (value: number) => {
    const share = (value - low) / (high - low);
    const up = direction === 'maximize' ? share : 1 - share;
    return box.bottom - up * (box.bottom - box.top);
  };
  const better = (a: number, b: number) =>
    direction === 'maximize' ? a > b : a < b;
  const bestOverall = scored.reduce(
    (found, trial) => (better(trial.value, found) ? trial.value : found),
    scored[0].value
  );
  // ties: the first trial that reached it is the best, as the tune's own `best` says
  const bestTrial = scored.find(trial => trial.value === bestOverall)!.trial;
  let best = scored[0].value;
  const path = [`M${x(first).toFixed(1)},${y(best).toFixed(1)}`];
  const points = scored.map(trial => {
    if (better(trial.value, best)) {
      best = trial.value;
      path.push(`H${x(trial.trial).toFixed(1)}`, `V${y(best).toFixed(1)}`);
    }
    return {
      x: x(trial.trial),
      y: y(trial.value),
      trial: trial.trial,
      value: trial.value,
      best: trial.trial === bestTrial
    };
  });
  path.push(`H${x(last).toFixed(1)}`);
  const yTicks = [0, 0.5, 1].map(share => {
    const value = low + share * (high - low);
    return { y: y(value), label: tickLabel(value) };
  });
  return { width, height, points, bestPath: path.join(' '), yTicks, box };
}

export interface ITuneWatcherOptions {
  client: CellPipeClient;
  tune: ITune;
  vocabulary: VocabularySource;
  /** Default: the browser's EventSource, when there is one. Null: poll only. */
  eventSource?: EventSourceClass | null;
  /** Milliseconds between polls when polling (default 1000). */
  pollInterval?: number;
}

/**
 * One tune followed until it ends: its `tune` events while the stream flows, else
 * GET /tunes/ID every second (with backoff).
 */
export class TuneWatcher implements IDisposable {
  constructor(options: ITuneWatcherOptions) {
    this._client = options.client;
    this._tune = options.tune;
    this._vocabulary = options.vocabulary;
    this._pollInterval = options.pollInterval ?? 1000;
    const browser =
      typeof EventSource === 'undefined'
        ? null
        : (EventSource as EventSourceClass);
    this._Source =
      options.eventSource === undefined ? browser : options.eventSource;
  }

  /** The tune, each time it changes. */
  get changed(): ISignal<this, ITune> {
    return this._changed;
  }

  get tune(): ITune {
    return this._tune;
  }

  /** Why the last refresh failed (null while all is well). */
  get error(): string | null {
    return this._error;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  get finished(): boolean {
    return isFinished(this._vocabulary(), this._tune.status);
  }

  start(): void {
    if (this._isDisposed || this._started) {
      return;
    }
    this._started = true;
    if (!this._Source) {
      this._startPolling();
      return;
    }
    const source = new this._Source(
      this._client.tuneEventsUrl(this._tune.tune_id)
    );
    this._source = source;
    source.addEventListener('tune', event =>
      this._receive(JSON.parse((event as MessageEvent).data) as ITune)
    );
    source.addEventListener('end', () => {
      this._closeSource();
      // the last `tune` event carried the ended tune; ask once more if it did not
      if (!this.finished) {
        this._startPolling();
      }
    });
    source.onerror = () => {
      this._closeSource(); // a proxy or a restart broke the stream: poll from here
      this._startPolling();
    };
  }

  /** Ask the server now (after a cancel, say). */
  async refresh(): Promise<void> {
    try {
      this._receive(await this._client.getTune(this._tune.tune_id));
      this._error = null;
    } catch (error) {
      this._error = error instanceof Error ? error.message : String(error);
      this._changed.emit(this._tune);
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._closeSource();
    this._poll?.dispose();
    this._poll = null;
    Signal.clearData(this);
  }

  private _startPolling(): void {
    if (this.isDisposed || this._poll || this.finished) {
      return;
    }
    this._poll = new Poll({
      auto: true,
      factory: async () => {
        await this.refresh();
        if (this.finished) {
          this._poll?.stop();
        }
      },
      frequency: {
        interval: this._pollInterval,
        backoff: true,
        max: 10 * this._pollInterval
      },
      name: `cellpipe:tune:${this._tune.tune_id}`,
      standby: 'never'
    });
  }

  private _receive(tune: ITune): void {
    if (this.isDisposed) {
      return;
    }
    this._tune = tune;
    this._changed.emit(tune);
  }

  private _closeSource(): void {
    if (this._source) {
      this._source.onerror = null;
      this._source.close();
      this._source = null;
    }
  }

  private _client: CellPipeClient;
  private _tune: ITune;
  private _vocabulary: VocabularySource;
  private _pollInterval: number;
  private _Source: EventSourceClass | null;
  private _source: EventSource | null = null;
  private _isDisposed = false;
  private _started = false;
  private _poll: Poll | null = null;
  private _error: string | null = null;
  private _changed = new Signal<this, ITune>(this);
}
