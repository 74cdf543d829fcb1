/**
 * Following one run: server-sent events (GET /runs/ID/events) while they flow, polling
 * GET /runs/ID (@lumino/polling) when the browser or a proxy cannot keep the stream open.
 */
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { CellPipeClient } from './api';
import { CellPipeRequestError } from './request';
import { IRun } from './tokens';
import { isFinished, VocabularySource } from './vocabulary';

/** The EventSource constructor (injected by tests; absent in some environments). */
export type EventSourceClass = new (url: string) => EventSource;

export interface IRunWatcherOptions {
  client: CellPipeClient;
  runId: string;
  /** The server's vocabulary (GET /config): which statuses are final. */
  vocabulary: VocabularySource;
  /** Default: the browser's EventSource, when there is one. Null: poll only. */
  eventSource?: EventSourceClass | null;
  /** Milliseconds between polls when polling (default 1000). */
  pollInterval?: number;
}

/** How a watcher is following its run. */
export type WatchMode = 'idle' | 'events' | 'polling' | 'ended';

export class RunWatcher implements IDisposable {
  constructor(options: IRunWatcherOptions) {
    this._client = options.client;
    this.runId = options.runId;
    this._vocabulary = options.vocabulary;
    this._pollInterval = options.pollInterval ?? 1000;
    const fallback =
      typeof EventSource === 'undefined'
        ? null
        : (EventSource as EventSourceClass);
    this._eventSourceClass =
      options.eventSource === undefined ? fallback : options.eventSource;
  }

  readonly runId: string;

  /** The run, each time it changes. */
  get updated(): ISignal<this, IRun> {
    return this._updated;
  }

  /** Once, when the run has ended (or was deleted: then with the last run seen, or null). */
  get ended(): ISignal<this, IRun | null> {
    return this._ended;
  }

  get mode(): WatchMode {
    return this._mode;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** The last run seen. */
  get run(): IRun | null {
    return this._run;
  }

  /** Start following: the event stream if the browser has one, else polling. */
  start(): void {
    if (this._isDisposed || this._started) {
      return;
    }
    this._started = true;
    if (this._eventSourceClass) {
      this._listen(this._eventSourceClass);
    } else {
      this._poll();
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._closeSource();
    this._pollHandle?.dispose();
    this._pollHandle = null;
    Signal.clearData(this);
  }

  private _listen(Source: EventSourceClass): void {
    let source: EventSource;
    try {
      source = new Source(this._client.eventsUrl(this.runId));
    } catch {
      this._poll();
      return;
    }
    this._source = source;
    this._mode = 'events';
    source.addEventListener('run', event => {
      const run = JSON.parse((event as MessageEvent).data) as IRun;
      this._receive(run);
    });
    source.addEventListener('end', () => {
      this._closeSource();
      // The last `run` event already carried the finished run; ask once in case it did not.
      if (this._run && this._isFinished(this._run)) {
        this._end(this._run);
      } else {
        this._poll();
      }
    });
    source.addEventListener('deleted', () => {
      this._closeSource();
      this._end(this._run);
    });
    source.onerror = () => {
      // A stream that broke (a proxy, a restart): poll from here on.
      if (this._mode === 'events') {
        this._closeSource();
        this._poll();
      }
    };
  }

  private _poll(): void {
    if (this._isDisposed || this._mode === 'ended' || this._pollHandle) {
      return;
    }
    this._mode = 'polling';
    this._pollHandle = new Poll<IRun | null, unknown, 'standby'>({
      auto: true,
      factory: async () => {
        try {
          const run = await this._client.getRun(this.runId);
          this._receive(run);
          return run;
        } catch (error) {
          if (error instanceof CellPipeRequestError && error.status === 404) {
            this._end(this._run);
            return null;
          }
          throw error;
        }
      },
      frequency: {
        interval: this._pollInterval,
        backoff: true,
        max: 10 * this._pollInterval
      },
      name: `cellpipe:run:${this.runId}`,
      standby: 'never'
    });
  }

  private _receive(run: IRun): void {
    if (this._isDisposed || this._mode === 'ended') {
      return;
    }
    this._run = run;
    this._updated.emit(run);
    if (this._mode === 'polling' && this._isFinished(run)) {
      this._end(run);
    }
  }

  private _isFinished(run: IRun): boolean {
    return isFinished(this._vocabulary(), run.status);
  }

  private _end(run: IRun | null): void {
    if (this._mode === 'ended' || this._isDisposed) {
      return;
    }
    this._mode = 'ended';
    this._closeSource();
    const poll = this._pollHandle;
    this._pollHandle = null;
    // Disposing a poll from inside its own factory is safe: it stops after this tick.
    poll?.dispose();
    this._ended.emit(run);
  }

  private _closeSource(): void {
    if (this._source) {
      this._source.onerror = null;
      this._source.close();
      this._source = null;
    }
  }

  private _client: CellPipeClient;
  private _vocabulary: VocabularySource;
  private _eventSourceClass: EventSourceClass | null;
  private _pollInterval: number;
  private _source: EventSource | null = null;
  private _pollHandle: Poll<IRun | null, unknown, 'standby'> | null = null;
  private _mode: WatchMode = 'idle';
  private _started = false;
  private _run: IRun | null = null;
  private _isDisposed = false;
  private _updated = new Signal<this, IRun>(this);
  private _ended = new Signal<this, IRun | null>(this);
}
