/** The REST client, one method per route, with requestAPI (and only it) mocked. */
import { ServerConnection } from '@jupyterlab/services';

import { CellPipeClient } from '../api';
import { CellPipeRequestError, requestAPI } from '../request';
import { compileResult, run } from './fixtures';

jest.mock('../request', () => ({
  ...jest.requireActual('../request'),
  requestAPI: jest.fn()
}));

const mocked = requestAPI as jest.MockedFunction<typeof requestAPI>;
const settings = ServerConnection.makeSettings({
  baseUrl: 'http://127.0.0.1:8888/',
  token: 't0k'
});

function refusal(status: number, body: Record<string, unknown>) {
  return new CellPipeRequestError(
    new Response(null, { status }),
    String(body.reason),
    String(body.message),
    body as any
  );
}

beforeEach(() => mocked.mockReset());

describe('CellPipeClient', () => {
  const client = new CellPipeClient(settings);

  it('compiles unsaved content with POST /compile', async () => {
    mocked.mockResolvedValue(compileResult());
    const content = { cells: [] };

    const result = await client.compile({ path: 'iris.ipynb', content });

    expect(result.pipeline).toBe('iris-demo');
    expect(mocked).toHaveBeenCalledWith(
      'compile',
      {
        method: 'POST',
        body: JSON.stringify({ path: 'iris.ipynb', content })
      },
      settings
    );
  });

  it('reads a 400 notebook_errors answer as a result with its errors', async () => {
    const errors = [
      { message: 'boom', cell_index: 2, cell_id: 'c', step: 'train' }
    ];
    mocked.mockRejectedValue(
      refusal(400, {
        ...compileResult({ errors }),
        message: 'iris.ipynb: cell 3 (step train): boom',
        reason: 'notebook_errors'
      })
    );

    const result = await client.compile({ path: 'iris.ipynb' });

    expect(result.errors).toEqual(errors);
    expect(result.steps).toHaveLength(2);
    expect(result).not.toHaveProperty('reason');
  });

  it('passes other refusals on', async () => {
    mocked.mockRejectedValue(
      refusal(404, { message: 'x: no such notebook', reason: 'not_found' })
    );
    await expect(client.compile({ path: 'x' })).rejects.toThrow(
      'x: no such notebook'
    );
  });

  it("lists a notebook's runs", async () => {
    mocked.mockResolvedValue({ runs: [run()] });

    const runs = await client.listRuns('dir/my notebook.ipynb');

    expect(runs).toHaveLength(1);
    expect(mocked.mock.calls[0][0]).toBe(
      'runs?notebook=dir%2Fmy%20notebook.ipynb'
    );
  });

  it('starts, reads, cancels and deletes runs', async () => {
    mocked.mockResolvedValue(run());
    await client.startRun({
      path: 'a.ipynb',
      engine: 'local',
      parameters: { epochs: 3 }
    });
    await client.getRun('r/1');
    await client.cancelRun('r1');
    await client.deleteRun('r1', true);
    await client.logs('r1', 'load data');
    await client.logs('r1');

    expect(
      mocked.mock.calls.map(([endpoint, init]) => [endpoint, init])
    ).toEqual([
      [
        'runs',
        {
          method: 'POST',
          body: '{"path":"a.ipynb","engine":"local","parameters":{"epochs":3}}'
        }
      ],
      ['runs/r%2F1', {}],
      ['runs/r1/cancel', { method: 'POST', body: '{}' }],
      ['runs/r1?force=true', { method: 'DELETE' }],
      ['runs/r1/logs?step=load%20data', {}],
      ['runs/r1/logs', {}]
    ]);
  });

  it('starts a build and follows it', async () => {
    mocked.mockResolvedValue({ build_id: 'build-1', status: 'Pending' });
    await client.startBuild({ path: 'a.ipynb', registry: 'r.example/x' });
    await client.getBuild('build-1');
    expect(
      mocked.mock.calls.map(([endpoint, init]) => [endpoint, init])
    ).toEqual([
      [
        'builds',
        {
          method: 'POST',
          body: '{"path":"a.ipynb","registry":"r.example/x"}'
        }
      ],
      ['builds/build-1', {}]
    ]);
  });

  it('reads the configuration and the GPU types', async () => {
    mocked.mockResolvedValueOnce({ default_engine: 'local' });
    mocked.mockResolvedValueOnce({ types: [] });
    await client.config();
    await client.gpus();
    expect(mocked.mock.calls.map(call => call[0])).toEqual(['config', 'gpus']);
  });

  it("reads a run's executed notebook with GET /runs/ID/notebook", async () => {
    const notebook = {
      cells: [],
      metadata: {},
      nbformat: 4,
      nbformat_minor: 5
    };
    mocked.mockResolvedValueOnce(notebook);

    expect(await client.executedNotebook('r 1')).toBe(notebook);
    expect(mocked).toHaveBeenCalledWith('runs/r%201/notebook', {}, settings);
    expect(client.executedNotebookUrl('r1')).toBe(
      'http://127.0.0.1:8888/cellpipe/api/runs/r1/notebook'
    );
  });

  it('puts the token in the event stream URL (EventSource sends no headers)', () => {
    expect(client.eventsUrl('r1')).toBe(
      'http://127.0.0.1:8888/cellpipe/api/runs/r1/events?token=t0k'
    );
    const anonymous = new CellPipeClient(
      ServerConnection.makeSettings({ baseUrl: 'http://h/', token: '' })
    );
    expect(anonymous.eventsUrl('r1')).toBe(
      'http://h/cellpipe/api/runs/r1/events'
    );
  });
});
