/**
 * Serving a run's model: the runs list's "Serve…" (offered when GET /runs/ID/models lists a
 * model), a dialog for the model and the engine (local or KServe), then a main-area panel with
 * the service, a prediction form prefilled with the rows the step saw (POST
 * /services/ID/predict: the Jupyter server calls the model, never the browser), and Stop.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  MainAreaWidget,
  ReactWidget,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { Button, HTMLSelect, stopIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import * as React from 'react';

import { CellPipeClient } from '../api';
import { errorMessage } from '../model';
import { CellPipeRequestError } from '../request';
import {
  cellText,
  isGone,
  isStarting,
  modelLabel,
  pairRows,
  readInstances,
  routeErrorMessage,
  sampleText,
  SERVE_ENGINES
} from '../serve';
import { IRun, IRunModel, IService, JSONValue } from '../tokens';

/** The models of a finished run, asked for once per run shown; "Serve…" when it has any. */
export function ServeButton(props: {
  run: IRun;
  client: CellPipeClient;
  onServe: (run: IRun, models: IRunModel[]) => void;
}): React.ReactElement | null {
  const { run, client } = props;
  const [models, setModels] = React.useState<IRunModel[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  React.useEffect(() => {
    let current = true;
    client
      .runModels(run.run_id)
      .then(found => current && setModels(found))
      .catch(reason => {
        // 404: a server without the route, or a run it no longer has: nothing to serve
        if (
          current &&
          !(reason instanceof CellPipeRequestError && reason.status === 404)
        ) {
          setError(errorMessage(reason));
        }
      });
    return () => {
      current = false;
    };
  }, [client, run.run_id]);
  if (error) {
    return (
      <span className="cp-Hint" title={error}>
        Models unknown: {error}
      </span>
    );
  }
  if (!models?.length) {
    return null;
  }
  return (
    <Button
      small
      minimal
      onClick={() => props.onServe(run, models)}
      aria-label={`Serve the model of run ${run.run_id}`}
      title={`Serve ${models.map(model => model.name).join(', ')} and send it a prediction`}
    >
      Serve…
    </Button>
  );
}

/** The dialog's choice. */
export interface IServeChoice {
  model: string;
  engine: string;
}

export class ServeDialogBody
  extends ReactWidget
  implements Dialog.IBodyWidget<IServeChoice>
{
  constructor(readonly models: IRunModel[]) {
    super();
    this.addClass('cp-ServeDialog');
    this._choice = { model: models[0]?.name ?? '', engine: 'local' };
  }

  getValue(): IServeChoice {
    return this._choice;
  }

  protected render(): React.ReactElement {
    const change = (part: Partial<IServeChoice>) => {
      this._choice = { ...this._choice, ...part };
      this.update();
    };
    return (
      <form
        className="cp-RunForm"
        aria-label="Serve the model"
        onSubmit={event => event.preventDefault()}
      >
        <div className="cp-Field">
          <label htmlFor="cp-serve-model">Model</label>
          <HTMLSelect
            id="cp-serve-model"
            aria-label="Model"
            value={this._choice.model}
            onChange={event => change({ model: event.currentTarget.value })}
            options={this.models.map(model => ({
              value: model.name,
              label: modelLabel(model)
            }))}
          />
        </div>
        <div className="cp-Field">
          <label htmlFor="cp-serve-engine">Where</label>
          <HTMLSelect
            id="cp-serve-engine"
            aria-label="Serving engine"
            value={this._choice.engine}
            onChange={event => change({ engine: event.currentTarget.value })}
            options={Object.entries(SERVE_ENGINES).map(([value, label]) => ({
              value,
              label
            }))}
          />
        </div>
      </form>
    );
  }

  private _choice: IServeChoice;
}

/** A service, kept up to date while it starts, with the prediction form. */
export class ServiceView extends ReactWidget {
  constructor(
    readonly client: CellPipeClient,
    service: IService,
    readonly model: IRunModel | null
  ) {
    super();
    this.addClass('cp-ServiceView');
    this._service = service;
    this._text = model ? sampleText(model) : '[]';
    this._poll = new Poll({
      auto: true,
      factory: () => this._refresh(),
      frequency: { interval: 1000, backoff: true, max: 5000 },
      name: `cellpipe:service:${service.service_id}`,
      standby: 'when-hidden'
    });
  }

  get service(): IService {
    return this._service;
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  /** Send the form's rows to the model. */
  async send(): Promise<void> {
    const parsed = readInstances(this._text);
    if ('error' in parsed) {
      this._answer = { error: parsed.error };
      this.update();
      return;
    }
    this._sending = true;
    this.update();
    try {
      const answer = await this.client.predict(
        this._service.service_id,
        parsed.instances
      );
      this._answer = {
        instances: parsed.instances,
        predictions: answer.predictions
      };
    } catch (error) {
      this._answer = { error: errorMessage(error) };
    }
    this._sending = false;
    this.update();
  }

  /** Stop the model server (DELETE /services/ID). */
  async stop(): Promise<void> {
    try {
      await this.client.stopService(this._service.service_id);
      this._service = { ...this._service, status: 'Stopped' };
      this._poll.stop();
    } catch (error) {
      this._answer = { error: `Cannot stop: ${errorMessage(error)}` };
    }
    this.update();
  }

  protected render(): React.ReactElement {
    const service = this._service;
    const starting = isStarting(service.status);
    const gone = isGone(service.status);
    const answer = this._answer;
    return (
      <div
        className="cp-Service"
        data-service-id={service.service_id}
        data-status={service.status}
      >
        <div className="cp-TuneHeader" role="status" aria-live="polite">
          <span className={`cp-Chip cp-status-${service.status}`}>
            {service.status}
          </span>
          <span className="cp-RunId">{service.model}</span>
          <span className="cp-RunMeta">
            {service.engine} · run {service.run_id}
            {service.protocols?.length
              ? ` · ${service.protocols.join(', ')}`
              : ''}
          </span>
          {!gone && (
            <Button
              small
              className="jp-mod-warn"
              onClick={() => void this.stop()}
              aria-label={`Stop service ${service.service_id}`}
            >
              <stopIcon.react tag="span" className="cp-ButtonIcon" />
              Stop
            </Button>
          )}
        </div>
        {service.url && (
          <div className="cp-Hint">
            <code className="cp-ServiceUrl">{service.url}</code>
          </div>
        )}
        {service.error && (
          <pre className="cp-RunError" role="alert">
            {service.error}
          </pre>
        )}
        {this._error && (
          <div className="cp-Status cp-mod-error" role="alert">
            {this._error}
          </div>
        )}
        <label
          className="cp-SectionLabel"
          htmlFor={`cp-rows-${service.service_id}`}
        >
          Rows to predict (JSON)
          {this.model
            ? `: ${this.model.sample?.columns?.join(', ') ?? 'a few rows the step saw'}`
            : ''}
        </label>
        <textarea
          id={`cp-rows-${service.service_id}`}
          className="jp-mod-styled cp-PredictRows"
          aria-label="Rows to predict (JSON)"
          spellCheck={false}
          rows={8}
          value={this._text}
          onChange={event => {
            this._text = event.currentTarget.value;
            this.update();
          }}
        />
        <div className="cp-Buttons">
          <Button
            small
            disabled={starting || gone || this._sending}
            onClick={() => void this.send()}
            aria-label="Send the prediction request"
          >
            {starting ? 'Starting…' : this._sending ? 'Sending…' : 'Predict'}
          </Button>
        </div>
        {answer && 'error' in answer && (
          <pre className="cp-RunError" role="alert">
            {answer.error}
          </pre>
        )}
        {answer && 'predictions' in answer && (
          <table className="cp-Table cp-Predictions" aria-label="Predictions">
            <caption>Predictions</caption>
            <thead>
              <tr>
                <th scope="col">Row</th>
                <th scope="col">Sent</th>
                <th scope="col">Prediction</th>
              </tr>
            </thead>
            <tbody>
              {pairRows(answer.instances, answer.predictions).map((row, i) => (
                <tr key={i} data-row={i}>
                  <th scope="row">{i + 1}</th>
                  <td>
                    <code>{cellText(row.instance)}</code>
                  </td>
                  <td className="cp-Prediction">{cellText(row.prediction)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    );
  }

  private async _refresh(): Promise<void> {
    if (!isStarting(this._service.status)) {
      this._poll.stop();
      return;
    }
    try {
      this._service = await this.client.getService(this._service.service_id);
      this._error = null;
    } catch (error) {
      this._error = errorMessage(error);
    }
    this.update();
  }

  private _service: IService;
  private _text: string;
  private _sending = false;
  private _error: string | null = null;
  private _answer:
    | { instances: JSONValue[]; predictions: JSONValue[] }
    | { error: string }
    | null = null;
  private _poll: Poll;
}

/** Ask where to serve a run's model, start the service and open its panel. */
export async function serveRun(
  app: JupyterFrontEnd,
  client: CellPipeClient,
  run: IRun,
  models: IRunModel[],
  ref?: string
): Promise<void> {
  const answer = await showDialog<IServeChoice>({
    title: `Serve a model of run ${run.run_id}`,
    body: new ServeDialogBody(models),
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: 'Serve', ariaLabel: 'Start serving the model' })
    ]
  });
  if (!answer.button.accept || !answer.value) {
    return;
  }
  const choice = answer.value;
  let service: IService;
  try {
    service = await client.startService({
      run_id: run.run_id,
      model: choice.model || undefined,
      engine: choice.engine
    });
  } catch (error) {
    await showErrorMessage(
      'The model was not served',
      routeErrorMessage(error, 'POST /services')
    );
    return;
  }
  const model = models.find(m => m.name === service.model) ?? models[0] ?? null;
  const content = new ServiceView(client, service, model);
  const panel = new MainAreaWidget({ content });
  panel.id = `cellpipe-service-${service.service_id}`.replace(/[^\w-]/g, '_');
  panel.title.label = `Serve ${service.model}`;
  panel.title.caption = `cellpipe service ${service.service_id} (run ${run.run_id}); closing this tab leaves it running, Stop deletes it`;
  panel.title.closable = true;
  app.shell.add(panel, 'main', ref ? { mode: 'split-right', ref } : {});
  app.shell.activateById(panel.id);
}
