/**
 * The sidebar's models against a notebook stand-in, with requestAPI (and only it) mocked.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import { CellPipeClient } from '../api';
import { INotebookSource, PipelineModel, RunsModel } from '../model';
import { CellPipeRequestError, requestAPI } from '../request';
import { ICellInfo } from '../steps';
import { ICompileResult, IRun, IVocabulary } from '../tokens';
import { compileResult, run, vocabulary } from './fixtures';

jest.mock('../request', () => ({
  ...jest.requireActual('../request'),
  requestAPI: jest.fn()
}));

const mocked = requestAPI as jest.MockedFunction<typeof requestAPI>;
const client = new CellPipeClient(
  ServerConnection.makeSettings({ baseUrl: 'http://127.0.0.1:8888/' })
);

class FakeNotebook implements INotebookSource {
  path = 'iris.ipynb';
  metadata: Record<string, unknown> = {};
  cellList: ICellInfo[] = [
    { id: 'load-data', type: 'code', tags: ['step:load data'], source: 'x' },
    { id: 'train', type: 'code', tags: ['step:train'], source: 'y' }
  ];
  changed = new Signal<this, void>(this);

  content(): unknown {
    return { metadata: this.metadata, cells: this.cellList };
  }

  cells(): ICellInfo[] {
    return this.cellList;
  }

  edit(change: () => void): void {
    change();
    this.changed.emit();
  }
}

/** A promise and the function that settles it, to answer requests in any order. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>(r => (resolve = r));
  return { promise, resolve };
}

const tick = () => new Promise(resolve => setTimeout(resolve, 0));

beforeEach(() => mocked.mockReset());

describe('PipelineModel', () => {
  it('compiles the unsaved content once edits have paused', async () => {
    // Given a notebook and its model
    const notebook = new FakeNotebook();
    mocked.mockResolvedValue(compileResult());
    const model = new PipelineModel({ source: notebook, client, delay: 30 });

    // When three edits follow each other quickly
    for (const name of ['a', 'b', 'c']) {
      notebook.edit(() => (notebook.cellList[1].tags = [`step:${name}`]));
    }
    // Then the cells' steps follow at once, and one compile goes out after the pause
    expect(model.membership.steps).toEqual(['load data', 'c']);
    expect(mocked).not.toHaveBeenCalled();
    await model.scheduleCompile();
    expect(mocked).toHaveBeenCalledTimes(1);
    const [endpoint, init] = mocked.mock.calls[0];
    expect(endpoint).toBe('compile');
    expect(JSON.parse(String(init!.body))).toEqual({
      path: 'iris.ipynb',
      content: notebook.content()
    });
    expect(model.result?.pipeline).toBe('iris-demo');
    expect(model.busy).toBe(false);
    model.dispose();
  });

  it('drops an answer older than the newest request', async () => {
    const notebook = new FakeNotebook();
    const model = new PipelineModel({ source: notebook, client, delay: 1 });
    const slow = deferred<ICompileResult>();
    const fast = deferred<ICompileResult>();
    mocked.mockReturnValueOnce(slow.promise).mockReturnValueOnce(fast.promise);

    const first = model.compile();
    const second = model.compile();
    fast.resolve(compileResult({ pipeline: 'newest' }));
    await second;
    slow.resolve(compileResult({ pipeline: 'stale' }));
    await first;

    expect(model.result?.pipeline).toBe('newest');
    model.dispose();
  });

  it('keeps compile errors by cell, and network trouble apart', async () => {
    const notebook = new FakeNotebook();
    const model = new PipelineModel({ source: notebook, client, delay: 1 });
    const errors = [
      { message: 'boom', cell_index: 1, cell_id: 'train', step: 'train' },
      { message: 'no cell', cell_index: null, cell_id: null, step: null }
    ];
    const warnings = [
      { message: 'careful', cell_index: 1, cell_id: 'train', step: 'train' }
    ];
    mocked.mockRejectedValueOnce(
      new CellPipeRequestError(
        new Response(null, { status: 400 }),
        'notebook_errors',
        'boom',
        {
          ...compileResult({ errors, warnings }),
          message: 'boom',
          reason: 'notebook_errors'
        } as any
      )
    );
    await model.compile();
    expect(model.error).toBeNull();
    expect(model.problemsByCell.get('train')).toEqual([errors[0], warnings[0]]);

    mocked.mockRejectedValueOnce(
      new ServerConnection.NetworkError(new TypeError('down'))
    );
    await model.compile();
    expect(model.error).toBe('down');
    expect(model.result?.errors).toEqual(errors); // the last answer stays
    model.dispose();
  });

  it("sends the settings' registry only where the notebook names none", async () => {
    const notebook = new FakeNotebook();
    const model = new PipelineModel({
      source: notebook,
      client,
      registry: () => 'registry.example.com/me'
    });
    expect(model.request().registry).toBe('registry.example.com/me');
    notebook.metadata = { cellpipe: { registry: 'registry.example.com/team' } };
    expect(model.request()).not.toHaveProperty('registry');
    model.dispose();
  });

  it('gives the compiled YAML for the download', async () => {
    const notebook = new FakeNotebook();
    const model = new PipelineModel({ source: notebook, client });
    mocked.mockResolvedValueOnce(compileResult({ yaml: 'pipelineSpec: {}' }));

    await expect(model.pipelineYaml()).resolves.toEqual({
      filename: 'iris-demo.yaml',
      yaml: 'pipelineSpec: {}'
    });
    expect(JSON.parse(String(mocked.mock.calls[0][1]!.body)).yaml).toBe(true);

    mocked.mockResolvedValueOnce(
      compileResult({
        errors: [{ message: 'x', cell_index: 0, cell_id: 'a', step: null }]
      })
    );
    await expect(model.pipelineYaml()).rejects.toThrow(/1 compile error/);
    model.dispose();
  });
});

describe('RunsModel', () => {
  function answer(routes: Record<string, (init: RequestInit) => unknown>) {
    mocked.mockImplementation(async (endpoint: string, init?: RequestInit) => {
      const method = init?.method ?? 'GET';
      const handler = routes[`${method} ${endpoint}`];
      if (!handler) {
        throw new Error(`unexpected ${method} ${endpoint}`);
      }
      return handler(init ?? {}) as any;
    });
  }

  it("lists the notebook's runs and follows the unfinished ones until they end", async () => {
    // Given a run in progress, which the server reports twice more, then finished
    const progress: IRun[] = [
      run({ status: 'Running' }),
      run({
        status: 'Succeeded',
        finished: 1790000003,
        metrics: { accuracy: 0.9 }
      })
    ];
    answer({
      'GET runs?notebook=iris.ipynb': () => ({
        runs: [run({ status: 'Running' })]
      }),
      'GET runs/20261123-abcdef': () => progress.shift() ?? progress[0]
    });
    const model = new RunsModel({
      client,
      path: () => 'iris.ipynb',
      vocabulary: () => vocabulary(),
      eventSource: null,
      pollInterval: 5
    });
    const ended = new Promise<void>(resolve =>
      model.changed.connect(() => {
        if (model.runs[0]?.status === 'Succeeded') {
          resolve();
        }
      })
    );

    // When the list loads
    await model.refresh();
    expect(model.watcher('20261123-abcdef')?.mode).toBe('polling');

    // Then the run is followed until it has ended, with its metrics
    await ended;
    expect(model.runs[0].metrics).toEqual({ accuracy: 0.9 });
    await tick();
    expect(model.watcher('20261123-abcdef')).toBeUndefined();
    model.dispose();
  });

  it('follows runs listed before /config answered once its vocabulary says which ended', async () => {
    // Given a run in progress and one that has ended, listed before /config answered
    answer({
      'GET runs?notebook=iris.ipynb': () => ({
        runs: [
          run({ status: 'Running' }),
          run({ run_id: 'old', status: 'Succeeded' })
        ]
      }),
      'GET runs/20261123-abcdef': () => run({ status: 'Running' })
    });
    let words: IVocabulary | null = null;
    const model = new RunsModel({
      client,
      path: () => 'iris.ipynb',
      vocabulary: () => words,
      eventSource: null,
      pollInterval: 5
    });
    await model.refresh();
    // Then none is followed on a guess
    expect(model.watcher('20261123-abcdef')).toBeUndefined();
    expect(model.watcher('old')).toBeUndefined();

    // When the vocabulary arrives, the unfinished one is followed, the finished one is not
    words = vocabulary();
    model.follow();
    expect(model.watcher('20261123-abcdef')?.mode).toBe('polling');
    expect(model.watcher('old')).toBeUndefined();

    // And a status the server's vocabulary calls final ends the watcher, whatever its name
    words = vocabulary({ finished: [...words.finished, 'Running'] });
    await new Promise<void>(resolve =>
      model.changed.connect(() => {
        if (!model.watcher('20261123-abcdef')) {
          resolve();
        }
      })
    );
    model.dispose();
  });

  it('starts a run with the notebook path and puts it first', async () => {
    answer({
      'POST runs': init => {
        expect(JSON.parse(String(init.body))).toEqual({
          engine: 'local',
          parameters: { epochs: 3 },
          path: 'iris.ipynb'
        });
        return { ...run({ run_id: 'new', status: 'Pending' }), warnings: [] };
      },
      'GET runs/new': () => run({ run_id: 'new', status: 'Succeeded' })
    });
    const model = new RunsModel({
      client,
      path: () => 'iris.ipynb',
      vocabulary: () => vocabulary(),
      eventSource: null,
      pollInterval: 5
    });

    const started = await model.start({
      engine: 'local',
      parameters: { epochs: 3 }
    });

    expect(started.warnings).toEqual([]);
    expect(model.runs.map(r => r.run_id)).toEqual(['new']);
    expect(model.runs[0]).not.toHaveProperty('warnings');
    model.dispose();
  });

  it('cancels and deletes runs, and says why when the server refuses', async () => {
    answer({
      'GET runs?notebook=iris.ipynb': () => ({
        runs: [run({ status: 'Succeeded' })]
      }),
      'POST runs/20261123-abcdef/cancel': () => {
        throw new CellPipeRequestError(
          new Response(null, { status: 409 }),
          'finished',
          'run 20261123-abcdef has already ended: Succeeded',
          null
        );
      },
      'DELETE runs/20261123-abcdef': () => undefined
    });
    const model = new RunsModel({
      client,
      path: () => 'iris.ipynb',
      vocabulary: () => vocabulary()
    });
    await model.refresh();

    await expect(model.cancel('20261123-abcdef')).rejects.toThrow(
      /already ended/
    );
    expect(model.error).toMatch(/already ended/);
    await model.remove('20261123-abcdef');
    expect(model.runs).toEqual([]);
    expect(model.error).toBeNull();
    model.dispose();
  });
});
