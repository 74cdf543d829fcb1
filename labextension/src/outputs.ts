/**
 * A run's outputs, from its executed notebook (GET /runs/ID/notebook): each step's cells with
 * their nbformat outputs, as the run view shows them; and the cache of the notebooks fetched.
 *
 * The outputs are the user's own code's, but they are treated as untrusted, as JupyterLab
 * treats a notebook it has not signed: rendered with `trusted: false` (HTML sanitized, no
 * script runs, JavaScript outputs not rendered), and `metadata.trusted` is never carried.
 */
import {
  INotebookContent,
  IOutput,
  MultilineString
} from '@jupyterlab/nbformat';
import { ISignal, Signal } from '@lumino/signaling';

import { CellPipeClient } from './api';
import { errorMessage } from './model';
import { IExecutedCellMeta, IRun } from './tokens';

/** A code cell of a step, with what it showed. */
export interface IStepCell {
  /** The cell's place in the notebook (0-based). */
  index: number;
  /** Its nbformat id, when it has one. */
  id: string | null;
  executionCount: number | null;
  /** `ran`, `failed`, `not run`, `ran, outputs not kept` (launcher/executed.py). */
  status: string;
  seconds: number | null;
  outputs: IOutput[];
}

/** Text as one string: nbformat lets a file split it into lines. */
export function joinLines(text: MultilineString | undefined): string {
  if (Array.isArray(text)) {
    return text.join('');
  }
  return typeof text === 'string' ? text : '';
}

function isJsonMime(mime: string): boolean {
  return mime === 'application/json' || /\+json$/.test(mime);
}

/**
 * An output as JupyterLab renders it from its contents API: multi-line strings joined again
 * (nbformat's reader does it on the server; a file may hold them split), JSON data as is.
 */
export function normalizeOutput(output: IOutput): IOutput {
  const kind = output.output_type;
  if (kind === 'stream') {
    return { ...output, text: joinLines(output.text as MultilineString) };
  }
  if (kind === 'display_data' || kind === 'execute_result') {
    const data: Record<string, unknown> = {};
    for (const [mime, value] of Object.entries(
      (output.data as Record<string, unknown>) ?? {}
    )) {
      data[mime] =
        Array.isArray(value) && !isJsonMime(mime)
          ? joinLines(value as string[])
          : value;
    }
    return { ...output, data: data as IOutput['data'] };
  }
  return { ...output };
}

function cellMeta(cell: { metadata?: unknown }): IExecutedCellMeta | null {
  const metadata = cell.metadata as Record<string, unknown> | undefined;
  const about = metadata?.cellpipe;
  if (about === null || typeof about !== 'object') {
    return null;
  }
  return about as IExecutedCellMeta;
}

/** The code cells step `step` ran (or was to run), in notebook order, with their outputs. */
export function stepOutputs(
  notebook: INotebookContent | null | undefined,
  step: string
): IStepCell[] {
  const cells: IStepCell[] = [];
  (notebook?.cells ?? []).forEach((cell, index) => {
    if (cell.cell_type !== 'code') {
      return;
    }
    const about = cellMeta(cell);
    if (!about || about.step !== step) {
      return;
    }
    const outputs = Array.isArray(cell.outputs)
      ? (cell.outputs as IOutput[])
      : [];
    cells.push({
      index,
      id: typeof cell.id === 'string' ? cell.id : null,
      executionCount:
        typeof cell.execution_count === 'number' ? cell.execution_count : null,
      status: typeof about.status === 'string' ? about.status : '',
      seconds: typeof about.seconds === 'number' ? about.seconds : null,
      outputs: outputs.map(normalizeOutput)
    });
  });
  return cells;
}

/** How many outputs the step's cells showed. */
export function outputCount(cells: ReadonlyArray<IStepCell>): number {
  return cells.reduce((sum, cell) => sum + cell.outputs.length, 0);
}

/**
 * The notebook as the read-only drive hands it to JupyterLab: multi-line text joined, and no
 * cell marked trusted (JupyterLab would run a trusted cell's scripts), whatever the file says.
 */
export function untrustedNotebook(
  notebook: INotebookContent
): INotebookContent {
  return {
    ...notebook,
    cells: (notebook.cells ?? []).map(cell => {
      const { trusted: _trusted, ...metadata } = (cell.metadata ??
        {}) as Record<string, unknown>;
      const copy = { ...cell, metadata } as typeof cell;
      if (cell.cell_type === 'code' && Array.isArray(cell.outputs)) {
        (copy as { outputs: IOutput[] }).outputs = (
          cell.outputs as IOutput[]
        ).map(normalizeOutput);
      }
      return copy;
    })
  };
}

/** A run's executed notebook, as far as the sidebar knows it. */
export interface IExecutedState {
  /** A request is under way. */
  loading: boolean;
  notebook: INotebookContent | null;
  /** Why there is none (the server's words), or null. */
  error: string | null;
}

/** Does the run have an executed notebook to fetch? */
export function hasExecutedNotebook(run: IRun): boolean {
  return typeof run.executed_notebook === 'string' && !!run.executed_notebook;
}

/**
 * The executed notebooks of a notebook's runs, fetched once each (when a run shows it: a run
 * that has ended and says it has one) and kept for the last few runs looked at.
 */
export class ExecutedNotebooks {
  constructor(
    private readonly _client: CellPipeClient,
    private readonly _keep = 8
  ) {}

  /** Emitted when a notebook arrives or a request fails. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * What is known of the run's notebook; asks the server for it the first time a run that has
   * one is looked at (again when the run's record names another file).
   */
  get(run: IRun): IExecutedState {
    if (!hasExecutedNotebook(run)) {
      return { loading: false, notebook: null, error: null };
    }
    const key = `${run.executed_notebook}`;
    const known = this._states.get(run.run_id);
    if (known && known.key === key) {
      // most recently used last
      this._states.delete(run.run_id);
      this._states.set(run.run_id, known);
      return known.state;
    }
    const entry = {
      key,
      state: { loading: true, notebook: null, error: null } as IExecutedState
    };
    this._states.set(run.run_id, entry);
    this._trim();
    void this._client.executedNotebook(run.run_id).then(
      notebook => this._settle(run.run_id, entry, notebook, null),
      error => this._settle(run.run_id, entry, null, errorMessage(error))
    );
    return entry.state;
  }

  /** Forget a run's notebook (the run was deleted). */
  forget(runId: string): void {
    this._states.delete(runId);
  }

  dispose(): void {
    this._states.clear();
    Signal.clearData(this);
  }

  private _settle(
    runId: string,
    entry: { key: string; state: IExecutedState },
    notebook: INotebookContent | null,
    error: string | null
  ): void {
    if (this._states.get(runId) !== entry) {
      return; // forgotten, or asked again since
    }
    entry.state = { loading: false, notebook, error };
    this._changed.emit();
  }

  private _trim(): void {
    while (this._states.size > this._keep) {
      const oldest = this._states.keys().next().value as string;
      this._states.delete(oldest);
    }
  }

  private _states = new Map<string, { key: string; state: IExecutedState }>();
  private _changed = new Signal<this, void>(this);
}
