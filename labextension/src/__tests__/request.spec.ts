/**
 * The request layer itself, against a fake `fetch` handed in through the server settings
 * (JupyterLab's own way of swapping the transport): nothing is mocked here.
 */
import { ServerConnection } from '@jupyterlab/services';

import { CellPipeRequestError, requestAPI } from '../request';

function settingsAnswering(
  status: number,
  body: string,
  seen: { url?: string; init?: RequestInit } = {}
): ServerConnection.ISettings {
  return ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/base/',
    token: 'secret',
    fetch: async (input: RequestInfo, init?: RequestInit) => {
      const request = input as Request;
      seen.url = request.url;
      seen.init = { method: request.method, body: await request.text() };
      return new Response(body.length ? body : null, {
        status,
        headers: { 'Content-Type': 'application/json' }
      });
    }
  });
}

/** The error a request that must fail fails with. */
async function refusal(
  answer: Promise<unknown>
): Promise<CellPipeRequestError> {
  try {
    await answer;
  } catch (error) {
    return error as CellPipeRequestError;
  }
  throw new Error('the request did not fail');
}

describe('requestAPI', () => {
  it('calls the cellpipe namespace and answers the JSON body', async () => {
    const seen: { url?: string; init?: RequestInit } = {};
    const settings = settingsAnswering(200, '{"runs": []}', seen);

    const answer = await requestAPI<{ runs: unknown[] }>(
      'runs?notebook=a.ipynb',
      {},
      settings
    );

    expect(answer).toEqual({ runs: [] });
    // (ServerConnection adds a cache-busting number to GET URLs)
    expect(seen.url).toMatch(
      /^http:\/\/127\.0\.0\.1:8888\/base\/cellpipe\/api\/runs\?notebook=a\.ipynb(&\d+)?$/
    );
  });

  it('sends the method and body', async () => {
    const seen: { url?: string; init?: RequestInit } = {};
    await requestAPI(
      'compile',
      { method: 'POST', body: JSON.stringify({ path: 'a.ipynb' }) },
      settingsAnswering(200, '{}', seen)
    );
    expect(seen.init).toEqual({ method: 'POST', body: '{"path":"a.ipynb"}' });
  });

  it('answers undefined for an empty answer (204)', async () => {
    await expect(
      requestAPI('runs/x', { method: 'DELETE' }, settingsAnswering(204, ''))
    ).resolves.toBeUndefined();
  });

  it("throws the server's message and reason, with the whole body", async () => {
    const body = {
      message: 'a.ipynb: cell 3: boom',
      reason: 'notebook_errors',
      errors: [{ message: 'boom' }]
    };
    const error = await refusal(
      requestAPI(
        'compile',
        { method: 'POST', body: '{}' },
        settingsAnswering(400, JSON.stringify(body))
      )
    );

    expect(error).toBeInstanceOf(CellPipeRequestError);
    expect(error).toBeInstanceOf(ServerConnection.ResponseError);
    expect(error.message).toBe('a.ipynb: cell 3: boom');
    expect(error.reason).toBe('notebook_errors');
    expect(error.status).toBe(400);
    expect(error.body).toEqual(body);
  });

  it('says the status when the answer is not JSON', async () => {
    const error = await refusal(
      requestAPI('x', {}, settingsAnswering(502, ''))
    );
    expect(error).toBeInstanceOf(CellPipeRequestError);
    expect(error.message).toMatch(/^502/);
    expect(error.reason).toBe('');
  });

  it('turns a transport failure into a NetworkError', async () => {
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:8888/',
      fetch: async () => {
        throw new TypeError('connection refused');
      }
    });
    await expect(requestAPI('config', {}, settings)).rejects.toBeInstanceOf(
      ServerConnection.NetworkError
    );
  });
});
