import { URLExt } from '@jupyterlab/coreutils';
import { INotebookContent } from '@jupyterlab/nbformat';
import { ServerConnection } from '@jupyterlab/services';

import { apiUrl, CellPipeRequestError, requestAPI } from './request';
import {
  IBuild,
  ICompileRequest,
  ICompileResult,
  IGpuInventory,
  IRun,
  IRunList,
  IRunLogs,
  IRunRequest,
  IRunModel,
  IServerConfig,
  IService,
  IServiceRequest,
  IStartedRun,
  ITune,
  ITuneRequest,
  JSONValue
} from './tokens';

const json = (method: string, body: unknown): RequestInit => ({
  method,
  body: JSON.stringify(body)
});

/** Does this compile answer carry the pipeline (a 400 for notebook errors does)? */
function isCompileResult(body: unknown): body is ICompileResult {
  return (
    body !== null &&
    typeof body === 'object' &&
    Array.isArray((body as ICompileResult).steps) &&
    Array.isArray((body as ICompileResult).errors)
  );
}

/** The REST API of the cellpipe server extension, one method per route. */
export class CellPipeClient {
  constructor(
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /**
   * POST /compile. A notebook with compile errors is a result too (its `errors` say what is
   * wrong, cell by cell): the server answers it 400 `notebook_errors` with the compile JSON.
   */
  async compile(request: ICompileRequest): Promise<ICompileResult> {
    try {
      return await requestAPI<ICompileResult>(
        'compile',
        json('POST', request),
        this.serverSettings
      );
    } catch (error) {
      if (
        error instanceof CellPipeRequestError &&
        error.reason === 'notebook_errors' &&
        isCompileResult(error.body)
      ) {
        const { message: _message, reason: _reason, ...result } = error.body;
        return result as unknown as ICompileResult;
      }
      throw error;
    }
  }

  /** GET /config. */
  config(): Promise<IServerConfig> {
    return requestAPI<IServerConfig>('config', {}, this.serverSettings);
  }

  /** GET /gpus. */
  gpus(): Promise<IGpuInventory> {
    return requestAPI<IGpuInventory>('gpus', {}, this.serverSettings);
  }

  /** GET /runs?notebook=PATH: this notebook's runs, newest first. */
  async listRuns(notebookPath?: string): Promise<IRun[]> {
    const query = notebookPath
      ? URLExt.objectToQueryString({ notebook: notebookPath })
      : '';
    const list = await requestAPI<IRunList>(
      `runs${query}`,
      {},
      this.serverSettings
    );
    return list.runs;
  }

  /** POST /runs: the run starts in the background; it comes back Pending. */
  startRun(request: IRunRequest): Promise<IStartedRun> {
    return requestAPI<IStartedRun>(
      'runs',
      json('POST', request),
      this.serverSettings
    );
  }

  /** GET /runs/ID. */
  getRun(runId: string): Promise<IRun> {
    return requestAPI<IRun>(
      `runs/${encodeURIComponent(runId)}`,
      {},
      this.serverSettings
    );
  }

  /** POST /runs/ID/cancel: answers the run once it has ended (or while it is stopping). */
  cancelRun(runId: string): Promise<IRun> {
    return requestAPI<IRun>(
      `runs/${encodeURIComponent(runId)}/cancel`,
      json('POST', {}),
      this.serverSettings
    );
  }

  /** DELETE /runs/ID: the record and its folder. */
  async deleteRun(runId: string, force = false): Promise<void> {
    const query = force ? '?force=true' : '';
    await requestAPI<void>(
      `runs/${encodeURIComponent(runId)}${query}`,
      { method: 'DELETE' },
      this.serverSettings
    );
  }

  /** GET /runs/ID/logs[?step=NAME]: a step's log, or the run's own without a step. */
  logs(runId: string, step?: string | null): Promise<IRunLogs> {
    const query = step ? URLExt.objectToQueryString({ step }) : '';
    return requestAPI<IRunLogs>(
      `runs/${encodeURIComponent(runId)}/logs${query}`,
      {},
      this.serverSettings
    );
  }

  /**
   * GET /runs/ID/notebook: the run's executed notebook (nbformat v4, every cell's outputs and
   * `metadata.cellpipe`, the run under `metadata.cellpipe_run`); a CellPipeRequestError 404
   * `no_notebook` while it has none.
   */
  executedNotebook(runId: string): Promise<INotebookContent> {
    return requestAPI<INotebookContent>(
      `runs/${encodeURIComponent(runId)}/notebook`,
      {},
      this.serverSettings
    );
  }

  /** The URL of GET /runs/ID/notebook (what the read-only drive gives as a download URL). */
  executedNotebookUrl(runId: string): string {
    return apiUrl(
      `runs/${encodeURIComponent(runId)}/notebook`,
      this.serverSettings
    );
  }

  /** POST /builds (offered when GET /config lists the `builds` capability): 202, Pending. */
  startBuild(request: {
    path: string;
    content?: unknown;
    registry?: string;
  }): Promise<IBuild> {
    return requestAPI<IBuild>(
      'builds',
      json('POST', request),
      this.serverSettings
    );
  }

  /** GET /builds/ID. */
  getBuild(buildId: string): Promise<IBuild> {
    return requestAPI<IBuild>(
      `builds/${encodeURIComponent(buildId)}`,
      {},
      this.serverSettings
    );
  }

  /**
   * The URL of GET /runs/ID/events (server-sent events). EventSource cannot send headers, so
   * the token travels in the query, as JupyterLab does for its own sockets.
   */
  eventsUrl(runId: string): string {
    const url = apiUrl(
      `runs/${encodeURIComponent(runId)}/events`,
      this.serverSettings
    );
    const token = this.serverSettings.token;
    if (token) {
      return url + URLExt.objectToQueryString({ token });
    }
    return url;
  }

  /** POST /tunes: the tune starts in the background; it comes back Pending. */
  startTune(request: ITuneRequest): Promise<ITune> {
    return requestAPI<ITune>(
      'tunes',
      json('POST', request),
      this.serverSettings
    );
  }

  /** GET /tunes/ID. */
  getTune(tuneId: string): Promise<ITune> {
    return requestAPI<ITune>(
      `tunes/${encodeURIComponent(tuneId)}`,
      {},
      this.serverSettings
    );
  }

  /** POST /tunes/ID/cancel: stops after the running trials. */
  cancelTune(tuneId: string): Promise<ITune> {
    return requestAPI<ITune>(
      `tunes/${encodeURIComponent(tuneId)}/cancel`,
      json('POST', {}),
      this.serverSettings
    );
  }

  /** The URL of GET /tunes/ID/events (server-sent events: `tune`, then `end`). */
  tuneEventsUrl(tuneId: string): string {
    const url = apiUrl(
      `tunes/${encodeURIComponent(tuneId)}/events`,
      this.serverSettings
    );
    const token = this.serverSettings.token;
    return token ? url + URLExt.objectToQueryString({ token }) : url;
  }

  /** GET /runs/ID/models: the models a run produced (none: an empty list). */
  async runModels(runId: string): Promise<IRunModel[]> {
    const answer = await requestAPI<{ models: IRunModel[] }>(
      `runs/${encodeURIComponent(runId)}/models`,
      {},
      this.serverSettings
    );
    return answer.models;
  }

  /** POST /services: serve a run's model (202, while it starts). */
  startService(request: IServiceRequest): Promise<IService> {
    return requestAPI<IService>(
      'services',
      json('POST', request),
      this.serverSettings
    );
  }

  /** GET /services/ID. */
  getService(serviceId: string): Promise<IService> {
    return requestAPI<IService>(
      `services/${encodeURIComponent(serviceId)}`,
      {},
      this.serverSettings
    );
  }

  /** DELETE /services/ID: stops the model server (or deletes the InferenceService). */
  async stopService(serviceId: string): Promise<void> {
    await requestAPI<void>(
      `services/${encodeURIComponent(serviceId)}`,
      { method: 'DELETE' },
      this.serverSettings
    );
  }

  /** POST /services/ID/predict: the server calls the model (V1) and answers what it said. */
  predict(
    serviceId: string,
    instances: JSONValue[]
  ): Promise<{ predictions: JSONValue[] }> {
    return requestAPI<{ predictions: JSONValue[] }>(
      `services/${encodeURIComponent(serviceId)}/predict`,
      json('POST', { instances }),
      this.serverSettings
    );
  }
}
