/**
 * What the sidebar holds: the server's configuration and GPU types (loaded once), the user's
 * settings, and one session (pipeline, runs, cell marks) per open notebook.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { CellPipeClient } from './api';
import { DebugRuns } from './debug';
import { errorMessage, PipelineModel, RunsModel } from './model';
import { CellDecorator, PanelSource } from './notebook';
import { ExecutedNotebooks } from './outputs';
import {
  DEFAULT_SETTINGS,
  IGpuInventory,
  IServerConfig,
  ISidebarSettings,
  IVocabulary
} from './tokens';
import { vocabularyOf } from './vocabulary';

export class CellPipeContext {
  constructor(readonly client: CellPipeClient) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get settings(): ISidebarSettings {
    return this._settings;
  }

  set settings(settings: ISidebarSettings) {
    this._settings = settings;
    this._changed.emit();
  }

  /** GET /config, once it has answered. */
  get config(): IServerConfig | null {
    return this._config;
  }

  /** GET /config's vocabulary (statuses, engine kinds, builders), once it has answered. */
  get vocabulary(): IVocabulary | null {
    return vocabularyOf(this._config);
  }

  /** GET /gpus, once it has answered. */
  get gpus(): IGpuInventory | null {
    return this._gpus;
  }

  /** Why the server's configuration could not be read (the server extension missing?). */
  get error(): string | null {
    return this._error;
  }

  /** Does the server offer this capability (`builds`)? */
  can(capability: string): boolean {
    return this._config?.capabilities?.includes(capability) ?? false;
  }

  /** The engines the server runs, by name. */
  hasEngine(engine: string): boolean {
    return !!this._config && engine in this._config.engines;
  }

  async load(): Promise<void> {
    try {
      const [config, gpus] = await Promise.all([
        this.client.config(),
        this.client.gpus()
      ]);
      this._config = config;
      this._gpus = gpus;
      this._error = null;
    } catch (error) {
      this._error = `The cellpipe server extension did not answer: ${errorMessage(error)}`;
    }
    this._changed.emit();
  }

  private _settings: ISidebarSettings = { ...DEFAULT_SETTINGS };
  private _config: IServerConfig | null = null;
  private _gpus: IGpuInventory | null = null;
  private _error: string | null = null;
  private _changed = new Signal<this, void>(this);
}

/**
 * One notebook's pipeline, runs and cell marks, its runs' executed notebooks and the steps
 * debugged in its kernel; disposed with its panel.
 */
export class NotebookSession implements IDisposable {
  constructor(
    readonly panel: NotebookPanel,
    context: CellPipeContext
  ) {
    this.source = new PanelSource(panel);
    this.pipeline = new PipelineModel({
      source: this.source,
      client: context.client,
      delay: context.settings.compileDelay,
      registry: () => context.settings.registry
    });
    this.runs = new RunsModel({
      client: context.client,
      path: () => this.source.path,
      vocabulary: () => context.vocabulary
    });
    // Runs listed before /config answered are followed once its vocabulary says which ended.
    context.changed.connect(this._onContextChanged, this);
    this._context = context;
    this.decorator = new CellDecorator(
      panel,
      this.pipeline,
      this.runs,
      async (runId, step) => (await context.client.logs(runId, step)).text
    );
    this.executed = new ExecutedNotebooks(context.client);
    this.debug = new DebugRuns();
    void panel.context.ready.then(() => {
      if (!this.isDisposed) {
        void this.pipeline.compile();
        void this.runs.refresh().catch(() => undefined);
        this.runs.startPolling();
      }
    });
  }

  readonly source: PanelSource;
  readonly pipeline: PipelineModel;
  readonly runs: RunsModel;
  readonly decorator: CellDecorator;
  /** The executed notebooks of its runs (their steps' outputs), fetched as they are shown. */
  readonly executed: ExecutedNotebooks;
  /** "Debug in kernel" of its runs' failed steps, in its kernel. */
  readonly debug: DebugRuns;

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._context.changed.disconnect(this._onContextChanged, this);
    this.decorator.dispose();
    this.executed.dispose();
    this.debug.dispose();
    this.runs.dispose();
    this.pipeline.dispose();
    this.source.dispose();
  }

  private _onContextChanged(): void {
    this.runs.follow();
  }

  private _context: CellPipeContext;
  private _isDisposed = false;
}
