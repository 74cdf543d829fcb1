/**
 * Wire types of cellpipe's REST API (server_ext/ under /cellpipe/api), mirrored one-for-one from
 * what the server answers (server_ext/core.py, converter/model.py, launcher/store.py), and the
 * few names the sidebar shares between its files.
 */

/** The server's URL namespace, under the server's base URL (server_ext.API_NAMESPACE). */
export const API_NAMESPACE = 'cellpipe/api';

/** The plugin id; also the settings' id (schema/plugin.json). */
export const PLUGIN_ID = 'cellpipe:plugin';

/**
 * A run's (or a step's, or a build's) status, as the run store and every engine write it
 * (launcher/vocabulary.py RunStatus). A type only: which statuses are final is the server's
 * word, GET /config `vocabulary.finished` (see vocabulary.ts).
 */
export type RunStatus =
  'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

/** Parameter types, from the parameters cell's literals (converter/model.py ParameterType). */
export type ParameterType = 'int' | 'float' | 'bool' | 'str' | 'list' | 'dict';

/** A JSON value (parameter defaults and values, metrics). */
export type JSONValue =
  string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

/** A compile problem: `{"message", "cell_index" (0-based), "cell_id", "step"}`. */
export interface IDiagnostic {
  message: string;
  cell_index: number | null;
  cell_id: string | null;
  step: string | null;
}

/** A step's GPU request: `gpu:N[:TYPE]` (resource null: the configured GPU resource). */
export interface IGpuRequest {
  count: number;
  type: string | null;
  resource: string | null;
}

/** A Kubernetes quantity as request and limit (Kale's `limit:` sets the limit only). */
export interface IQuantity {
  request: string | null;
  limit: string | null;
}

/** A step's resources: only what was asked for is present. */
export interface IResources {
  cpu?: IQuantity;
  memory?: IQuantity;
  gpu?: IGpuRequest;
}

/** A step's task options (retries:, timeout:, cache:, env:, secret:, volume:, ...). */
export interface IStepOptions {
  report: boolean;
  retries: number | null;
  timeout: number | null;
  cache: boolean;
  env: Record<string, string>;
  secrets: { secret: string; key: string; env: string }[];
  volumes: { pvc: string; mount_path: string }[];
  shm: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** One step of the compiled pipeline (converter Step.to_json). */
export interface IStep {
  name: string;
  task: string;
  after: string[];
  receives: string[];
  hands_on: string[];
  parameters: string[];
  metrics: string[];
  resources: IResources;
  options: IStepOptions;
  base_image: string | null;
  image: string;
  cells: number[];
  cell_ids: (string | null)[];
}

/** Notebook-level settings (metadata.cellpipe or Kale's kubeflow_notebook). */
export interface IPipelineSettings {
  name: string;
  description: string;
  experiment: string | null;
  base_image: string | null;
  registry: string | null;
  image_pull_secrets: string[];
  service_account: string | null;
  volumes: { pvc: string; mount_path: string }[];
  security_context: Record<string, JSONValue>;
}

/**
 * POST /compile: the pipeline as the UI sees it (`cellpipe compile --format json`).
 *
 * A notebook with errors is answered 400 with this same body plus `message` and `reason`
 * (`notebook_errors`); the API layer turns that back into a result (see api.ts).
 */
export interface ICompileResult {
  pipeline: string;
  description: string;
  image: string;
  settings: IPipelineSettings;
  steps: IStep[];
  parameters: Record<string, JSONValue>;
  parameter_types: Record<string, ParameterType>;
  metrics: string[];
  requirements: string[];
  warnings: IDiagnostic[];
  /**
   * How the notebook was read where that may surprise (a notebook without step tags is one
   * step): no problem, shaped as `warnings` (`cellpipe: note: ...` in the CLI).
   */
  notes: IDiagnostic[];
  /** The parameters that may be None (`name = None`, papermill's optional parameters). */
  optional_parameters: string[];
  errors: IDiagnostic[];
  /** Only when the request asked for `yaml: true`: the KFP v2 pipeline YAML. */
  yaml?: string;
}

/** POST /compile's body: the saved notebook (`path`) or unsaved `content` (with its `path`). */
export interface ICompileRequest {
  path?: string;
  content?: unknown;
  registry?: string;
  base_image?: string;
  yaml?: boolean;
}

/** A step of a run (StepRecord.to_json). */
export interface IStepRun {
  task: string;
  status: RunStatus;
  cached: boolean;
  seconds: number | null;
  error: string | null;
}

/** A run (RunRecord.to_json plus the notebook's API path), as GET /runs/ID answers it. */
export interface IRun {
  run_id: string;
  notebook: string;
  /** The notebook's API path, null when it lives outside the server's root. */
  path: string | null;
  pipeline: string;
  engine: string;
  status: RunStatus;
  created: number;
  finished: number | null;
  parameters: Record<string, JSONValue>;
  metrics: Record<string, number>;
  error: string | null;
  steps: Record<string, IStepRun>;
  /** The run's folder (CELLPIPE_HOME/runs/ID). */
  outputs: string;
  /** sha256 of the notebook as it was submitted. */
  notebook_hash: string | null;
  /** The image the steps ran in (cluster runs, `cellpipe run --image`). */
  image: string | null;
  /** Step name -> the GPUs it asked for. */
  gpus: Record<string, IGpuRequest>;
  /** Ids in the engine (a cluster run's), and `notebook_note`: why it has no executed notebook. */
  external: Record<string, unknown>;
  /** Engines that run elsewhere link to their own UI (the KFP run page). */
  links?: Record<string, string>;
  updated: number | null;
  /**
   * The executed notebook (`notebook.ipynb` in the run's folder: every cell's outputs) once it
   * is written, else null; GET /runs/ID/notebook answers it.
   */
  executed_notebook: string | null;
  /** Cluster runs: whether GET /runs/ID just asked the engine, and what went wrong if so. */
  refreshed?: boolean;
  refresh_error?: string | null;
  /** A cluster run's messages while the server submits it. */
  progress?: string[];
}

/** POST /runs answers the new run (Pending) and the compile warnings. */
export interface IStartedRun extends IRun {
  warnings: IDiagnostic[];
}

/** GET /runs[?notebook=PATH], newest first. */
export interface IRunList {
  runs: IRun[];
}

/** POST /runs' body. */
export interface IRunRequest {
  path: string;
  content?: unknown;
  engine?: string;
  parameters?: Record<string, JSONValue>;
  use_cache?: boolean;
  require_gpus?: boolean;
  /** Cluster engines: GPU choices per step, `N` or `N:TYPE` (the dialog's, over the tags). */
  gpus?: Record<string, string>;
  /** Cluster engines: the namespace (Kubeflow profile); the server's by default. */
  namespace?: string;
  /** Training engines: the number of workers. */
  workers?: number;
  /** Cluster engines: how the image is built, one of `vocabulary.builders_here`. */
  builder?: string;
}

/**
 * What a run writes on each code cell of its executed notebook (`metadata.cellpipe`,
 * launcher/executed.py): the step that ran it (null for the imports and functions cells), and
 * whether it `ran`, `failed`, was `not run`, or ran without keeping its outputs.
 */
export interface IExecutedCellMeta {
  step: string | null;
  task?: string;
  status?: string;
  seconds?: number;
  cached?: boolean;
  role?: string;
}

/**
 * The executed notebook's `metadata.cellpipe_run`: the run (the notebook's own
 * `metadata.cellpipe` settings are kept as they were).
 */
export interface IExecutedNotebookMeta {
  run: string;
  engine: string;
  status: RunStatus;
  parameters: Record<string, JSONValue>;
  steps: Record<string, { status: RunStatus; cached: boolean }>;
}

/** GET /runs/ID/logs[?step=NAME]. */
export interface IRunLogs {
  run_id: string;
  step: string | null;
  task: string | null;
  status: RunStatus;
  cached?: boolean;
  text: string;
  /** `step`, `run`, `report` (what the cells printed), or null when there is no log yet. */
  source: string | null;
  truncated: boolean;
}

/** One GPU type of the inventory (configured, or found on the cluster's nodes). */
export interface IGpuType {
  /** The value of the node label (what a gpu:N:TYPE tag says); null: nodes without it. */
  name: string | null;
  display_name: string;
  resource: string;
  configured?: boolean;
  /** Counts, when known (from the cluster): null otherwise. */
  total?: number | null;
  free?: number | null;
  max_per_node?: number | null;
}

/** GET /gpus (`cellpipe gpus --format json`, and `this_machine`). */
export interface IGpuInventory {
  /** `cluster` when read from the nodes; `configuration` otherwise. */
  source: string;
  resource: string;
  label: string;
  counts_known?: boolean;
  /** Why the counts are unknown, or what is partial. */
  message?: string | null;
  types: IGpuType[];
  this_machine: { has_gpu: boolean };
}

/** An image build (POST /builds answers it Pending; GET /builds/ID follows it). */
export interface IBuild {
  build_id: string;
  path: string;
  status: RunStatus;
  builder: string;
  registry: string;
  base: string | null;
  created: number;
  started: number | null;
  finished: number | null;
  /** The builder's messages so far. */
  progress: string[];
  warnings: IDiagnostic[];
  /** Once Succeeded: `cellpipe build --format json` (image, digest, cached, ...). */
  result: Record<string, unknown> | null;
  error: string | null;
}

/**
 * GET /config `vocabulary`: the names every front door shares (launcher/vocabulary.py). The
 * sidebar decides from these lists, never from its own: what is finished, which engines run on
 * this machine, on a cluster, or as a training job, which builders a run may use.
 */
export interface IVocabulary {
  /** Every status, in the order a run goes through them. */
  statuses: RunStatus[];
  /** The statuses a run, step or build never leaves. */
  finished: RunStatus[];
  /** Engines that run the pipeline on this machine (`cellpipe run`). */
  local_engines: string[];
  /** Engines that submit to a cluster (`cellpipe submit`); the training engines among them. */
  cluster_engines: string[];
  /** Cluster engines that submit a training job: their runs take a number of workers. */
  training_engines: string[];
  /** Every builder, the default first (POST /builds takes any of them). */
  builders: string[];
  /** The builders that build from this machine: those a cluster run (POST /runs) may use. */
  builders_here: string[];
  default_builder: string;
}

/** GET /config: every c.CellPipe setting but the secrets. */
export interface IServerConfig {
  version: string;
  api: string;
  default_engine: string;
  /** Engine name -> the class that runs it. */
  engines: Record<string, string>;
  builder: string;
  registry: string | null;
  base_image: string | null;
  kfp_host: string | null;
  namespace: string | null;
  gpu_resource: string;
  gpu_label: string;
  gpu_types: { name: string; display_name?: string; resource?: string }[];
  gpu_tolerations: Record<string, string>[] | null;
  concurrent_runs: number;
  /** Routes beyond compile and runs that this server offers (`builds`): the sidebar offers
   * only what is listed. */
  capabilities?: string[];
  /** The shared names: statuses, engine kinds, builders. */
  vocabulary: IVocabulary;
}

/** A tuning direction and algorithm (`cellpipe tune --maximize|--minimize --algorithm`). */
export type TuneDirection = 'maximize' | 'minimize';

/** POST /tunes' body: SPACE strings as on the CLI (`1..6`, `0.001..0.1:log`, `a,b,c`). */
export interface ITuneRequest {
  path: string;
  content?: unknown;
  objective: string;
  direction: TuneDirection;
  search: Record<string, string>;
  trials?: number;
  parallel?: number;
  algorithm?: string;
  seed?: number;
  goal?: number;
  engine?: string;
}

/** One trial of a tune (a run of the pipeline with the trial's parameters). */
export interface ITrial {
  trial: number;
  parameters: Record<string, JSONValue>;
  value: number | null;
  status: RunStatus;
  run_id: string | null;
  seconds: number | null;
  /** The steps that ran in this trial (the others were reused from the step cache). */
  steps_ran: string[];
  error?: string | null;
}

/** A tune: `cellpipe tune --format json` plus its status, notebook, engine and search. */
export interface ITune {
  tune_id: string;
  objective: { metric: string; direction: TuneDirection };
  best: {
    parameters: Record<string, JSONValue>;
    value: number;
    run_id: string | null;
  } | null;
  trials: ITrial[];
  algorithm: string;
  status: RunStatus;
  notebook: string;
  engine: string;
  search: Record<string, string>;
}

/** A model a run produced (GET /runs/ID/models), with a few rows of what its step saw. */
export interface IRunModel {
  name: string;
  step: string;
  format: string;
  versions: Record<string, string>;
  sample: { instances: JSONValue[]; columns?: string[] };
}

/** POST /services' body. */
export interface IServiceRequest {
  run_id: string;
  model?: string;
  engine: string;
  port?: number;
}

/** A model served (local: KServe's model server here; kserve: an InferenceService). */
export interface IService {
  service_id: string;
  run_id: string;
  model: string;
  engine: string;
  url: string | null;
  protocols: string[];
  /** Pending while it starts, Ready, Stopped, Failed (then with its `error`). */
  status: string;
  error?: string;
}

/** An error answer: `{"message", "reason"}` (plus the compile JSON for notebook errors). */
export interface IErrorBody {
  message: string;
  reason: string;
  [key: string]: unknown;
}

/** The sidebar's settings (schema/plugin.json). */
export interface ISidebarSettings {
  defaultEngine: string;
  registry: string;
  kfpHost: string;
  namespace: string;
  compileDelay: number;
}

export const DEFAULT_SETTINGS: ISidebarSettings = {
  defaultEngine: 'local',
  registry: '',
  kfpHost: '',
  namespace: '',
  compileDelay: 500
};

/** Command ids. */
export namespace CommandIDs {
  export const open = 'cellpipe:open';
  export const run = 'cellpipe:run';
  export const download = 'cellpipe:download';
  export const compile = 'cellpipe:compile';
  export const tune = 'cellpipe:tune';
}
