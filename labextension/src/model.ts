/**
 * The sidebar's models, one pair per notebook: the pipeline (compiled from the unsaved
 * content, debounced) and the notebook's runs (listed from the run store, followed live).
 * They know the notebook only through INotebookSource, so tests drive them without a browser.
 */
import { IDisposable } from '@lumino/disposable';
import { Debouncer, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { CellPipeClient } from './api';
import { EventSourceClass, RunWatcher } from './runwatch';
import { cellMembership, ICellInfo, IMembership } from './steps';
import {
  ICompileRequest,
  ICompileResult,
  IDiagnostic,
  IRun,
  IRunRequest,
  IStartedRun
} from './tokens';
import { isFinished, VocabularySource } from './vocabulary';

/** What the models need of a notebook. */
export interface INotebookSource {
  /** The notebook's API path (relative to the server's root). */
  readonly path: string;
  /** The notebook as nbformat JSON, unsaved edits included. */
  content(): unknown;
  /** Its cells, in order. */
  cells(): ICellInfo[];
  /** Emitted when any cell's source or tags, the cell list or the metadata change. */
  readonly changed: ISignal<unknown, void>;
}

/** A message from an error of any kind. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

function notebookRegistry(content: unknown): string | null {
  const metadata = (content as { metadata?: Record<string, unknown> })
    ?.metadata;
  const cellpipe = metadata?.cellpipe as Record<string, unknown> | undefined;
  return typeof cellpipe?.registry === 'string' ? cellpipe.registry : null;
}

export interface IPipelineModelOptions {
  source: INotebookSource;
  client: CellPipeClient;
  /** Milliseconds of quiet after an edit before compiling (default 500). */
  delay?: number;
  /** The registry from the sidebar's settings ('' for none). */
  registry?: () => string;
}

/** The notebook's pipeline, as the last compile of its current content says. */
export class PipelineModel implements IDisposable {
  constructor(options: IPipelineModelOptions) {
    this.source = options.source;
    this._client = options.client;
    this._registry = options.registry ?? (() => '');
    this._debouncer = new Debouncer(() => this.compile(), options.delay ?? 500);
    this._membership = cellMembership(this.source.cells());
    this.source.changed.connect(this._onSourceChanged, this);
  }

  readonly source: INotebookSource;

  /** Emitted whenever anything below changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last compile's answer (null before the first one). */
  get result(): ICompileResult | null {
    return this._result;
  }

  /** Why the last compile got no answer (network, server), or null. */
  get error(): string | null {
    return this._error;
  }

  /** Is a compile under way? */
  get busy(): boolean {
    return this._busy;
  }

  /** Which step each cell belongs to, from the tags as they are now. */
  get membership(): IMembership {
    return this._membership;
  }

  /** The last compile's errors and warnings, by the cell id they concern. */
  get problemsByCell(): Map<string, IDiagnostic[]> {
    const byCell = new Map<string, IDiagnostic[]>();
    const result = this._result;
    if (!result) {
      return byCell;
    }
    for (const problem of [...result.errors, ...result.warnings]) {
      if (problem.cell_id) {
        const list = byCell.get(problem.cell_id) ?? [];
        list.push(problem);
        byCell.set(problem.cell_id, list);
      }
    }
    return byCell;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Compile after the quiet period (edits in between push it back). */
  scheduleCompile(): Promise<void> {
    return this._debouncer.invoke();
  }

  /** The request body: unsaved content, and the settings' registry unless the notebook names one. */
  request(extra: Partial<ICompileRequest> = {}): ICompileRequest {
    const content = this.source.content();
    const request: ICompileRequest = { path: this.source.path, content };
    const registry = this._registry().trim();
    if (registry && !notebookRegistry(content)) {
      request.registry = registry;
    }
    return { ...request, ...extra };
  }

  /** Compile now; an answer older than the newest request is dropped. */
  async compile(): Promise<void> {
    if (this._isDisposed) {
      return;
    }
    const ticket = ++this._ticket;
    this._busy = true;
    this._changed.emit();
    try {
      const result = await this._client.compile(this.request());
      if (ticket === this._ticket && !this._isDisposed) {
        this._result = result;
        this._error = null;
      }
    } catch (error) {
      if (ticket === this._ticket && !this._isDisposed) {
        this._error = errorMessage(error);
      }
    } finally {
      if (ticket === this._ticket && !this._isDisposed) {
        this._busy = false;
        this._changed.emit();
      }
    }
  }

  /** The compiled pipeline as KFP v2 YAML, and a file name for it. */
  async pipelineYaml(): Promise<{ filename: string; yaml: string }> {
    const result = await this._client.compile(this.request({ yaml: true }));
    if (result.errors.length || !result.yaml) {
      throw new Error(
        `the notebook has ${result.errors.length} compile error(s); fix them first`
      );
    }
    return { filename: `${result.pipeline}.yaml`, yaml: result.yaml };
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._debouncer.dispose();
    this.source.changed.disconnect(this._onSourceChanged, this);
    Signal.clearData(this);
  }

  private _onSourceChanged(): void {
    this._membership = cellMembership(this.source.cells());
    this._changed.emit();
    void this.scheduleCompile();
  }

  private _client: CellPipeClient;
  private _registry: () => string;
  private _debouncer: Debouncer;
  private _membership: IMembership;
  private _result: ICompileResult | null = null;
  private _error: string | null = null;
  private _busy = false;
  private _ticket = 0;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
}

export interface IRunsModelOptions {
  client: CellPipeClient;
  /** The notebook's API path now (it changes when the notebook is renamed). */
  path: () => string;
  /**
   * The server's vocabulary (GET /config), null until it has answered: which statuses are
   * final. Until then no run is followed; follow() picks them up once it is known.
   */
  vocabulary: VocabularySource;
  /** Milliseconds between list refreshes (runs started elsewhere: the CLI); default 10 s. */
  refreshInterval?: number;
  eventSource?: EventSourceClass | null;
  pollInterval?: number;
}

/** This notebook's runs, newest first, each unfinished one followed live. */
export class RunsModel implements IDisposable {
  constructor(options: IRunsModelOptions) {
    this._client = options.client;
    this._path = options.path;
    this._vocabulary = options.vocabulary;
    this._eventSource = options.eventSource;
    this._pollInterval = options.pollInterval;
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: options.refreshInterval ?? 10000, backoff: true },
      name: 'cellpipe:runs',
      standby: 'when-hidden'
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get runs(): ReadonlyArray<IRun> {
    return this._runs;
  }

  get error(): string | null {
    return this._error;
  }

  /** Is a request (list, start, cancel, delete) under way? */
  get busy(): boolean {
    return this._busy > 0;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** The watcher following a run, while it has not ended. */
  watcher(runId: string): RunWatcher | undefined {
    return this._watchers.get(runId);
  }

  /** Start refreshing the list now and then. */
  startPolling(): void {
    void this._poll.start();
  }

  /** Load the notebook's runs, and follow the ones that have not ended. */
  async refresh(): Promise<void> {
    await this._busyWhile(async () => {
      const runs = await this._client.listRuns(this._path());
      if (this._isDisposed) {
        return;
      }
      // A run followed live may be newer than the list's copy of it.
      this._runs = runs.map(run => this._watchers.get(run.run_id)?.run ?? run);
      for (const run of this._runs) {
        this._follow(run);
      }
    });
  }

  /** Follow the runs listed that have not ended (after the vocabulary arrived). */
  follow(): void {
    if (this._isDisposed) {
      return;
    }
    for (const run of this._runs) {
      this._follow(run);
    }
  }

  /** Start a run of this notebook; it appears at the top of the list, followed live. */
  async start(request: Omit<IRunRequest, 'path'>): Promise<IStartedRun> {
    const started = await this._busyWhile(() =>
      this._client.startRun({ ...request, path: this._path() })
    );
    const { warnings: _warnings, ...run } = started;
    this._upsert(run);
    this._follow(run);
    return started;
  }

  /** Stop a run; it ends Cancelled. */
  async cancel(runId: string): Promise<void> {
    const run = await this._busyWhile(() => this._client.cancelRun(runId));
    this._upsert(run);
  }

  /** Delete a finished run (record and folder). */
  async remove(runId: string): Promise<void> {
    await this._busyWhile(() => this._client.deleteRun(runId));
    this._watchers.get(runId)?.dispose();
    this._watchers.delete(runId);
    this._runs = this._runs.filter(run => run.run_id !== runId);
    this._changed.emit();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._poll.dispose();
    for (const watcher of this._watchers.values()) {
      watcher.dispose();
    }
    this._watchers.clear();
    Signal.clearData(this);
  }

  private _follow(run: IRun): void {
    const vocabulary = this._vocabulary();
    if (
      !vocabulary ||
      isFinished(vocabulary, run.status) ||
      this._watchers.has(run.run_id)
    ) {
      return;
    }
    const watcher = new RunWatcher({
      client: this._client,
      runId: run.run_id,
      vocabulary: this._vocabulary,
      eventSource: this._eventSource,
      pollInterval: this._pollInterval
    });
    this._watchers.set(run.run_id, watcher);
    watcher.updated.connect((_, updated) => this._upsert(updated));
    watcher.ended.connect((_, last) => {
      this._watchers.delete(run.run_id);
      watcher.dispose();
      if (last === null) {
        this._runs = this._runs.filter(r => r.run_id !== run.run_id);
      }
      this._changed.emit();
    });
    watcher.start();
  }

  private _upsert(run: IRun): void {
    if (this._isDisposed) {
      return;
    }
    const index = this._runs.findIndex(r => r.run_id === run.run_id);
    if (index < 0) {
      this._runs = [run, ...this._runs];
    } else {
      this._runs = this._runs.map((r, i) => (i === index ? run : r));
    }
    this._changed.emit();
  }

  private async _busyWhile<T>(work: () => Promise<T>): Promise<T> {
    this._busy++;
    this._changed.emit();
    try {
      const result = await work();
      this._error = null;
      return result;
    } catch (error) {
      this._error = errorMessage(error);
      throw error;
    } finally {
      this._busy--;
      if (!this._isDisposed) {
        this._changed.emit();
      }
    }
  }

  private _client: CellPipeClient;
  private _path: () => string;
  private _vocabulary: VocabularySource;
  private _eventSource: EventSourceClass | null | undefined;
  private _pollInterval: number | undefined;
  private _poll: Poll;
  private _runs: IRun[] = [];
  private _watchers = new Map<string, RunWatcher>();
  private _error: string | null = null;
  private _busy = 0;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
}
