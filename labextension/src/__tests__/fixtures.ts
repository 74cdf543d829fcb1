/** Wire data shaped as the server answers it (server_ext/core.py, converter, run store). */
import {
  ICompileResult,
  IRun,
  IServerConfig,
  IStep,
  IVocabulary
} from '../tokens';

/** GET /config `vocabulary` as the server publishes it (launcher/vocabulary.py). */
export function vocabulary(extra: Partial<IVocabulary> = {}): IVocabulary {
  return {
    statuses: ['Pending', 'Running', 'Succeeded', 'Failed', 'Cancelled'],
    finished: ['Succeeded', 'Failed', 'Cancelled'],
    local_engines: ['local', 'kfp-local'],
    cluster_engines: [
      'kfp',
      'pytorchjob',
      'tfjob',
      'xgboostjob',
      'mpijob',
      'trainjob'
    ],
    training_engines: [
      'pytorchjob',
      'tfjob',
      'xgboostjob',
      'mpijob',
      'trainjob'
    ],
    builders: ['append', 'engine', 'kaniko'],
    builders_here: ['append', 'engine'],
    default_builder: 'append',
    ...extra
  };
}

/** GET /config, as server_ext/core.py config_json answers it on a machine with no cluster. */
export function config(extra: Partial<IServerConfig> = {}): IServerConfig {
  return {
    version: '0.1.0',
    api: 'cellpipe/api',
    base_image: null,
    builder: 'append',
    concurrent_runs: 2,
    default_engine: 'local',
    engines: {
      local: 'cellpipe.launcher.local_engine.LocalEngine',
      'kfp-local': 'cellpipe.launcher.kfp_local.KfpLocalEngine'
    },
    gpu_label: 'nvidia.com/gpu.product',
    gpu_resource: 'nvidia.com/gpu',
    gpu_tolerations: null,
    gpu_types: [],
    kfp_host: null,
    namespace: null,
    registry: null,
    capabilities: ['builds'],
    vocabulary: vocabulary(),
    ...extra
  };
}

export function step(name: string, extra: Partial<IStep> = {}): IStep {
  return {
    name,
    task: name.replace(/\W+/g, '-'),
    after: [],
    receives: [],
    hands_on: [],
    parameters: [],
    metrics: [],
    resources: {},
    options: {
      report: false,
      retries: null,
      timeout: null,
      cache: true,
      env: {},
      secrets: [],
      volumes: [],
      shm: null,
      labels: {},
      annotations: {}
    },
    base_image: null,
    image: 'cellpipe/iris-demo:0123456789abcdef',
    cells: [],
    cell_ids: [],
    ...extra
  };
}

export function compileResult(
  extra: Partial<ICompileResult> = {}
): ICompileResult {
  return {
    pipeline: 'iris-demo',
    description: '',
    image: 'cellpipe/iris-demo:0123456789abcdef',
    settings: {
      name: 'iris-demo',
      description: '',
      experiment: null,
      base_image: 'python:3.11-slim',
      registry: null,
      image_pull_secrets: [],
      service_account: null,
      volumes: [],
      security_context: {}
    },
    steps: [
      step('load data', { hands_on: ['dataset'], cell_ids: ['load-data'] }),
      step('train', {
        after: ['load data'],
        receives: ['dataset'],
        hands_on: ['weights'],
        resources: { gpu: { count: 1, type: null, resource: null } },
        cell_ids: ['train']
      })
    ],
    parameters: { epochs: 20, learning_rate: 0.1 },
    parameter_types: { epochs: 'int', learning_rate: 'float' },
    metrics: ['accuracy'],
    requirements: [],
    warnings: [],
    notes: [],
    optional_parameters: [],
    errors: [],
    ...extra
  };
}

export function run(extra: Partial<IRun> = {}): IRun {
  return {
    run_id: '20261123-abcdef',
    notebook: '/root/iris.ipynb',
    path: 'iris.ipynb',
    pipeline: 'iris-demo',
    engine: 'local',
    status: 'Pending',
    created: 1790000000,
    finished: null,
    parameters: { epochs: 20 },
    metrics: {},
    error: null,
    steps: {
      'load data': {
        task: 'load-data',
        status: 'Pending',
        cached: false,
        seconds: null,
        error: null
      }
    },
    outputs: '/home/runs/20261123-abcdef',
    notebook_hash: null,
    image: null,
    gpus: {},
    external: {},
    updated: null,
    executed_notebook: null,
    ...extra
  };
}
