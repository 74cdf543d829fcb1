/**
 * The runs' executed notebooks as a read-only contents drive: `cellpipe-runs:RUN_ID/notebook.ipynb`
 * is run RUN_ID's executed notebook (GET /runs/ID/notebook). The file lives in CELLPIPE_HOME,
 * outside the server's root, so JupyterLab's own contents API cannot open it; a drive lets
 * JupyterLab open it as any notebook (its renderers, its toolbar), and `writable: false` makes
 * JupyterLab show it read-only ("notebook is read-only", Save disabled, no autosave). Saving,
 * renaming, deleting, copying and checkpoints are refused.
 */
import { INotebookContent } from '@jupyterlab/nbformat';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { CellPipeClient } from './api';
import { untrustedNotebook } from './outputs';

/** The drive's name: paths on it are `cellpipe-runs:RUN_ID/notebook.ipynb`. */
export const RUNS_DRIVE = 'cellpipe-runs';

/** The executed notebook's name in its run's folder (launcher/store.py EXECUTED_FILE). */
export const EXECUTED_FILE = 'notebook.ipynb';

/** A run id as the server's routes take it (server_ext/handlers.py `_RUN`). */
const RUN_ID = /^[\w.-]+$/;

/** The path JupyterLab opens for run `runId`'s executed notebook. */
export function executedNotebookPath(runId: string): string {
  if (!RUN_ID.test(runId)) {
    throw new Error(`not a run id: ${JSON.stringify(runId)}`);
  }
  return `${RUNS_DRIVE}:${runId}/${EXECUTED_FILE}`;
}

/** Is this (global) path on the runs drive, a run's executed notebook? */
export function onRunsDrive(path: string): boolean {
  return path.startsWith(`${RUNS_DRIVE}:`);
}

/** The run a local path of the drive names (`RUN_ID/notebook.ipynb`), or null. */
export function runOfPath(localPath: string): string | null {
  const parts = localPath.replace(/^\/+/, '').split('/');
  if (
    parts.length !== 2 ||
    parts[1] !== EXECUTED_FILE ||
    !RUN_ID.test(parts[0]) ||
    parts[0] === '.' ||
    parts[0] === '..'
  ) {
    return null;
  }
  return parts[0];
}

/** Why every change is refused. */
export class ReadOnlyError extends Error {
  constructor(what: string, path: string) {
    super(
      `${RUNS_DRIVE}:${path} cannot be ${what}: a run's executed notebook is read-only`
    );
    this.name = 'ReadOnlyError';
  }
}

/** What the drive needs of the REST API (CellPipeClient has it). */
export type IRunsDriveClient = Pick<
  CellPipeClient,
  'executedNotebook' | 'executedNotebookUrl' | 'getRun' | 'serverSettings'
>;

function isoTime(seconds: number | null | undefined): string {
  return new Date((seconds ?? 0) * 1000).toISOString();
}

export class RunsDrive implements Contents.IDrive {
  constructor(private readonly _client: IRunsDriveClient) {}

  readonly name = RUNS_DRIVE;

  get serverSettings(): ServerConnection.ISettings {
    return this._client.serverSettings;
  }

  /** Never emitted: nothing on the drive changes through it. */
  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.clearData(this);
  }

  /** A run's executed notebook (`RUN_ID/notebook.ipynb`), read-only; nothing else is here. */
  async get(
    localPath: string,
    options?: Contents.IFetchOptions
  ): Promise<Contents.IModel> {
    const runId = this._runId(localPath);
    const withContent = options?.content !== false;
    const [run, notebook] = await Promise.all([
      this._client.getRun(runId),
      withContent
        ? this._client.executedNotebook(runId)
        : Promise.resolve(null as INotebookContent | null)
    ]);
    const finished = run.finished ?? run.updated ?? run.created;
    return {
      name: EXECUTED_FILE,
      path: `${runId}/${EXECUTED_FILE}`,
      type: 'notebook',
      format: withContent ? 'json' : null,
      mimetype: 'application/x-ipynb+json',
      writable: false,
      created: isoTime(run.created),
      last_modified: isoTime(finished),
      content: notebook ? untrustedNotebook(notebook) : null
    };
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    return this._client.executedNotebookUrl(this._runId(localPath));
  }

  newUntitled(options?: Contents.ICreateOptions): Promise<Contents.IModel> {
    return this._refuse('created', options?.path ?? '');
  }

  delete(localPath: string): Promise<void> {
    return this._refuse('deleted', localPath);
  }

  rename(
    oldLocalPath: string,
    _newLocalPath: string
  ): Promise<Contents.IModel> {
    return this._refuse('renamed', oldLocalPath);
  }

  save(
    localPath: string,
    _options?: Partial<Contents.IModel>
  ): Promise<Contents.IModel> {
    return this._refuse('saved', localPath);
  }

  copy(localPath: string, _toLocalDir: string): Promise<Contents.IModel> {
    return this._refuse('copied within the drive', localPath);
  }

  createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    return this._refuse('checkpointed', localPath);
  }

  /** No checkpoints: the run's notebook never changes. */
  async listCheckpoints(
    _localPath: string
  ): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(localPath: string, _checkpointID: string): Promise<void> {
    return this._refuse('restored', localPath);
  }

  deleteCheckpoint(localPath: string, _checkpointID: string): Promise<void> {
    return this._refuse('changed', localPath);
  }

  private _runId(localPath: string): string {
    const runId = runOfPath(localPath);
    if (runId === null) {
      throw new Error(
        `${RUNS_DRIVE}:${localPath}: no such file; the drive holds each run's ` +
          `executed notebook as RUN_ID/${EXECUTED_FILE}`
      );
    }
    return runId;
  }

  private async _refuse<T>(what: string, path: string): Promise<T> {
    throw new ReadOnlyError(what, path);
  }

  private _isDisposed = false;
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
}
