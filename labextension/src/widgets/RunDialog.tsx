/**
 * The Run dialog: engine, parameters (prefilled from the parameters cell, typed), what each
 * GPU step asks for and what is free, the builder for a cluster run, workers for a training job.
 * What each engine takes is the server's word (GET /config `vocabulary`), not this file's.
 */
import { Dialog, ReactWidget, showErrorMessage } from '@jupyterlab/apputils';
import { HTMLSelect } from '@jupyterlab/ui-components';
import * as React from 'react';

import { gpuBadge } from '../dag';
import {
  gpuOverrides,
  IGpuChoice,
  parameterText,
  readParameters,
  tagChoice
} from '../params';
import { NotebookSession } from '../session';
import {
  ICompileResult,
  IGpuInventory,
  IRunRequest,
  IServerConfig,
  ISidebarSettings
} from '../tokens';
import {
  initialBuilder,
  isClusterEngine,
  isTrainingEngine,
  orderEngines,
  runBuilders,
  vocabularyOf
} from '../vocabulary';

/**
 * Words for the engines people may meet: display only. An engine without them (one another
 * package registered on the server) shows its name, and works as its vocabulary kind says.
 */
export const ENGINE_LABELS: Record<string, string> = {
  local: 'local: this machine, steps forked from one warm process',
  'kfp-local': "kfp-local: this machine, the kfp SDK's kfp.local (reference)",
  kfp: 'kfp: submit to Kubeflow Pipelines',
  pytorchjob: 'pytorchjob: a PyTorchJob training job',
  tfjob: 'tfjob: a TFJob training job',
  xgboostjob: 'xgboostjob: an XGBoostJob training job',
  mpijob: 'mpijob: an MPIJob training job',
  trainjob: 'trainjob: a Kubeflow Trainer TrainJob'
};

/** How an engine is shown: its words, else its bare name. */
export function engineLabel(engine: string): string {
  return ENGINE_LABELS[engine] ?? engine;
}

export interface IRunDialogOptions {
  result: ICompileResult;
  config: IServerConfig | null;
  gpus: IGpuInventory | null;
  settings: ISidebarSettings;
  /** The engine to start with (the button that opened the dialog). */
  engine?: string;
  /**
   * What runs: the notebook's path, and whether the editor holds changes the file on disk
   * does not (the run takes the editor's content, unsaved changes included).
   */
  source?: { path: string; unsaved: boolean };
}

/** What the dialog gives back: the request, and what is wrong with it (empty: fine). */
export interface IRunDialogValue {
  request: Omit<IRunRequest, 'path'>;
  problems: string[];
  /** Save the notebook before the run starts (offered when it has unsaved changes). */
  saveFirst: boolean;
}

interface IDialogState {
  engine: string;
  texts: Record<string, string>;
  gpus: Record<string, IGpuChoice>;
  useCache: boolean;
  requireGpus: boolean;
  workers: number;
  builder: string;
  saveFirst: boolean;
}

/**
 * The engines the server offers, in the order people expect; none before /config has answered
 * (the run then goes to the server's default engine).
 */
export function availableEngines(config: IServerConfig | null): string[] {
  return config
    ? orderEngines(vocabularyOf(config), Object.keys(config.engines ?? {}))
    : [];
}

/**
 * The engine a run starts with: the one asked for, the settings', the server's, the first
 * offered; '' when none is offered yet (the request then names none: the server's default).
 */
export function initialEngine(
  engines: string[],
  asked: string | undefined,
  settings: ISidebarSettings,
  config: IServerConfig | null
): string {
  for (const engine of [
    asked,
    settings.defaultEngine,
    config?.default_engine
  ]) {
    if (engine && engines.includes(engine)) {
      return engine;
    }
  }
  return engines[0] ?? '';
}

/** What the dialog asks for with this engine, as the server's vocabulary says. */
export interface IEngineFields {
  /** GPU choices per step, the namespace and the builder (the engine submits to a cluster). */
  cluster: boolean;
  /** The number of workers (the engine submits a training job). */
  workers: boolean;
  /** The builders to choose from (cluster engines; empty: none). */
  builders: string[];
}

export function engineFields(
  config: IServerConfig | null,
  engine: string
): IEngineFields {
  const vocabulary = vocabularyOf(config);
  const cluster = isClusterEngine(vocabulary, engine);
  return {
    cluster,
    workers: isTrainingEngine(vocabulary, engine),
    builders: cluster ? runBuilders(vocabulary) : []
  };
}

export class RunDialogBody
  extends ReactWidget
  implements Dialog.IBodyWidget<IRunDialogValue>
{
  constructor(readonly options: IRunDialogOptions) {
    super();
    this.addClass('cp-RunDialog');
    const engines = availableEngines(options.config);
    const { parameters, parameter_types } = options.result;
    this._state = {
      engine: initialEngine(
        engines,
        options.engine,
        options.settings,
        options.config
      ),
      texts: Object.fromEntries(
        Object.entries(parameter_types).map(([name, type]) => [
          name,
          parameterText(type, parameters[name])
        ])
      ),
      gpus: Object.fromEntries(
        options.result.steps
          .filter(step => step.resources.gpu)
          .map(step => [step.name, tagChoice(step.resources.gpu!)])
      ),
      useCache: true,
      requireGpus: false,
      workers: 2,
      builder: initialBuilder(options.config),
      // offered, not done unasked: saving writes the file the person may not want written yet
      saveFirst: false
    };
  }

  getValue(): IRunDialogValue {
    const { result, settings, config } = this.options;
    const state = this._state;
    const fields = engineFields(config, state.engine);
    const { values, problems } = readParameters(
      result.parameter_types,
      result.parameters,
      state.texts
    );
    const request: Omit<IRunRequest, 'path'> = {
      parameters: values,
      use_cache: state.useCache
    };
    if (state.engine) {
      request.engine = state.engine;
    }
    if (fields.cluster) {
      if (settings.namespace) {
        request.namespace = settings.namespace;
      }
      const gpus = gpuOverrides(result, state.gpus, problems);
      if (Object.keys(gpus).length) {
        request.gpus = gpus;
      }
      if (fields.builders.includes(state.builder)) {
        request.builder = state.builder;
      }
    } else if (state.requireGpus) {
      request.require_gpus = true;
    }
    if (fields.workers) {
      if (!Number.isInteger(state.workers) || state.workers < 1) {
        problems.push('workers: at least 1');
      }
      request.workers = state.workers;
    }
    if (result.errors.length) {
      problems.unshift(
        `the notebook has ${result.errors.length} compile error(s): fix them first`
      );
    }
    return {
      request,
      problems,
      saveFirst: !!this.options.source?.unsaved && state.saveFirst
    };
  }

  protected render(): React.ReactElement {
    return (
      <RunForm
        options={this.options}
        state={this._state}
        onChange={change => {
          this._state = { ...this._state, ...change };
          this.update();
        }}
      />
    );
  }

  private _state: IDialogState;
}

/** Which notebook runs: the file as saved, or the editor's content with its unsaved changes. */
function WhatRuns(props: {
  source: { path: string; unsaved: boolean };
  saveFirst: boolean;
  onChange: (saveFirst: boolean) => void;
}): React.ReactElement {
  const { source } = props;
  if (!source.unsaved) {
    return (
      <p className="cp-WhatRuns" role="note">
        Runs <code>{source.path}</code> as saved.
      </p>
    );
  }
  return (
    <div className="cp-WhatRuns cp-mod-unsaved" role="note">
      <p>
        <code>{source.path}</code> has unsaved changes: the run takes the
        notebook as the editor holds it now, not the file on disk.
      </p>
      <label className="cp-Check">
        <input
          type="checkbox"
          checked={props.saveFirst}
          aria-label="Save the notebook before the run"
          onChange={event => props.onChange(event.currentTarget.checked)}
        />
        Save the notebook first (the file and the run then agree)
      </label>
    </div>
  );
}

function RunForm(props: {
  options: IRunDialogOptions;
  state: IDialogState;
  onChange: (change: Partial<IDialogState>) => void;
}): React.ReactElement {
  const { options, state, onChange } = props;
  const { result, gpus } = options;
  const engines = availableEngines(options.config);
  const fields = engineFields(options.config, state.engine);
  const local = !fields.cluster;
  const gpuSteps = result.steps.filter(step => step.resources.gpu);
  const parameters = Object.entries(result.parameter_types);
  const check = readParameters(
    result.parameter_types,
    result.parameters,
    state.texts
  );
  return (
    <form
      className="cp-RunForm"
      aria-label="Run the pipeline"
      onSubmit={event => event.preventDefault()}
    >
      {options.source && (
        <WhatRuns
          source={options.source}
          saveFirst={state.saveFirst}
          onChange={saveFirst => onChange({ saveFirst })}
        />
      )}
      <div className="cp-Field">
        <label htmlFor="cp-engine">Engine</label>
        <HTMLSelect
          id="cp-engine"
          aria-label="Engine"
          value={state.engine}
          onChange={event => onChange({ engine: event.currentTarget.value })}
          options={
            engines.length
              ? engines.map(engine => ({
                  value: engine,
                  label: engineLabel(engine)
                }))
              : [
                  {
                    value: '',
                    label:
                      "the server's default (its configuration has not loaded)"
                  }
                ]
          }
        />
      </div>
      <fieldset className="cp-Field">
        <legend>Parameters</legend>
        {parameters.length === 0 && (
          <span className="cp-Hint">The notebook has no parameters cell.</span>
        )}
        <table className="cp-Table cp-ParamTable">
          <tbody>
            {parameters.map(([name, type]) => (
              <tr key={name}>
                <th scope="row">
                  <label htmlFor={`cp-param-${name}`}>{name}</label>
                  <span className="cp-Type">{type}</span>
                </th>
                <td>
                  {type === 'bool' ? (
                    <input
                      id={`cp-param-${name}`}
                      type="checkbox"
                      aria-label={`Parameter ${name} (${type})`}
                      checked={state.texts[name] === 'true'}
                      onChange={event =>
                        onChange({
                          texts: {
                            ...state.texts,
                            [name]: event.currentTarget.checked
                              ? 'true'
                              : 'false'
                          }
                        })
                      }
                    />
                  ) : (
                    <input
                      id={`cp-param-${name}`}
                      className="jp-mod-styled cp-Input"
                      type="text"
                      inputMode={
                        type === 'int'
                          ? 'numeric'
                          : type === 'float'
                            ? 'decimal'
                            : undefined
                      }
                      aria-label={`Parameter ${name} (${type})`}
                      value={state.texts[name] ?? ''}
                      onChange={event =>
                        onChange({
                          texts: {
                            ...state.texts,
                            [name]: event.currentTarget.value
                          }
                        })
                      }
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {check.problems.length > 0 && (
          <ul className="cp-FormProblems" role="alert">
            {check.problems.map(problem => (
              <li key={problem}>{problem}</li>
            ))}
          </ul>
        )}
      </fieldset>
      {gpuSteps.length > 0 && (
        <fieldset className="cp-Field">
          <legend>GPUs</legend>
          <table className="cp-Table cp-GpuTable">
            <thead>
              <tr>
                <th scope="col">Step</th>
                <th scope="col">{local ? 'Asks for' : 'GPUs'}</th>
                {!local && <th scope="col">Type</th>}
                <th scope="col">Free</th>
              </tr>
            </thead>
            <tbody>
              {gpuSteps.map(step => {
                const choice = state.gpus[step.name];
                const typeName = local
                  ? step.resources.gpu?.type
                  : choice?.type;
                const type = gpus?.types.find(t => t.name === typeName);
                const free = local
                  ? gpus?.this_machine.has_gpu
                    ? 'this machine has GPUs'
                    : 'none here: runs on the CPU'
                  : typeof type?.free === 'number'
                    ? `${type.free} free`
                    : 'unknown';
                const setChoice = (change: Partial<IGpuChoice>) =>
                  onChange({
                    gpus: {
                      ...state.gpus,
                      [step.name]: { ...choice, ...change }
                    }
                  });
                return (
                  <tr key={step.name}>
                    <th scope="row">{step.name}</th>
                    {local ? (
                      <td>{gpuBadge(step)}</td>
                    ) : (
                      <>
                        <td>
                          <input
                            className="jp-mod-styled cp-Number"
                            type="number"
                            min={0}
                            aria-label={`GPUs for step ${step.name}`}
                            value={choice.count}
                            onChange={event =>
                              setChoice({ count: event.currentTarget.value })
                            }
                          />
                        </td>
                        <td>
                          <HTMLSelect
                            aria-label={`GPU type for step ${step.name}`}
                            value={choice.type}
                            onChange={event =>
                              setChoice({ type: event.currentTarget.value })
                            }
                            options={[
                              { value: '', label: 'any type' },
                              ...(gpus?.types ?? [])
                                .filter(t => t.name)
                                .map(t => ({
                                  value: t.name ?? '',
                                  label: t.display_name
                                })),
                              ...(choice.type &&
                              !gpus?.types.some(t => t.name === choice.type)
                                ? [{ value: choice.type, label: choice.type }]
                                : [])
                            ]}
                          />
                        </td>
                      </>
                    )}
                    <td>{free}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {local ? (
            <p className="cp-Hint">
              A step's GPUs are its <code>gpu:</code> tag: change them in the
              step editor.
            </p>
          ) : (
            <p className="cp-Hint">
              Choices here are for this run only; the tags stay as they are.
              {gpus?.message ? ` ${gpus.message}` : ''}
            </p>
          )}
          {local && (
            <label className="cp-Check">
              <input
                type="checkbox"
                checked={state.requireGpus}
                onChange={event =>
                  onChange({ requireGpus: event.currentTarget.checked })
                }
              />
              Require GPUs (refuse to run GPU steps on the CPU)
            </label>
          )}
        </fieldset>
      )}
      {state.engine === 'kfp' && (
        <p className="cp-Hint">
          Submits to{' '}
          {options.config?.kfp_host ??
            'the Kubeflow Pipelines host the server is configured with'}
          {options.settings.namespace
            ? `, namespace ${options.settings.namespace}`
            : ''}
          .
          {options.settings.kfpHost &&
          options.settings.kfpHost !== options.config?.kfp_host
            ? ` (Your setting names ${options.settings.kfpHost}; the server's own host is the one it submits to.)`
            : ''}
        </p>
      )}
      {fields.builders.length > 0 && (
        <div className="cp-Field">
          <label htmlFor="cp-builder">Builder</label>
          <HTMLSelect
            id="cp-builder"
            aria-label="Builder"
            value={state.builder}
            onChange={event => onChange({ builder: event.currentTarget.value })}
            options={fields.builders.map(builder => ({
              value: builder,
              label: builder
            }))}
          />
        </div>
      )}
      {fields.workers && (
        <div className="cp-Field">
          <label htmlFor="cp-workers">Workers</label>
          <input
            id="cp-workers"
            className="jp-mod-styled cp-Number"
            type="number"
            min={1}
            value={state.workers}
            onChange={event =>
              onChange({ workers: parseInt(event.currentTarget.value, 10) })
            }
          />
        </div>
      )}
      <label className="cp-Check">
        <input
          type="checkbox"
          checked={state.useCache}
          onChange={event =>
            onChange({ useCache: event.currentTarget.checked })
          }
        />
        Reuse unchanged steps (step cache)
      </label>
    </form>
  );
}

/**
 * Compile the notebook now, before a dialog that starts something (`doing`: "run", "tune"):
 * its result, or null once the person has been told why it cannot start.
 */
export async function compiledFor(
  session: NotebookSession,
  doing: string
): Promise<ICompileResult | null> {
  await session.pipeline.compile();
  const result = session.pipeline.result;
  if (!result) {
    await showErrorMessage(
      `Cannot ${doing} the pipeline`,
      session.pipeline.error ?? 'the notebook did not compile'
    );
    return null;
  }
  return result;
}
