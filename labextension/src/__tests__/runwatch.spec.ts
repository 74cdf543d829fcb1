/** Following a run: server-sent events, and polling when the stream cannot be had. */
import { ServerConnection } from '@jupyterlab/services';

import { CellPipeClient } from '../api';
import { requestAPI } from '../request';
import { RunWatcher } from '../runwatch';
import { IRun } from '../tokens';
import { run, vocabulary } from './fixtures';

jest.mock('../request', () => ({
  ...jest.requireActual('../request'),
  requestAPI: jest.fn()
}));

const mocked = requestAPI as jest.MockedFunction<typeof requestAPI>;
const client = new CellPipeClient(
  ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/',
    token: 't'
  })
);

/** An EventSource stand-in the test drives by hand. */
class FakeEventSource {
  static last: FakeEventSource | null = null;
  listeners: Record<string, ((event: MessageEvent) => void)[]> = {};
  onerror: (() => void) | null = null;
  closed = false;

  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }

  addEventListener(name: string, listener: (event: MessageEvent) => void) {
    (this.listeners[name] ??= []).push(listener);
  }

  send(name: string, data: unknown) {
    for (const listener of this.listeners[name] ?? []) {
      listener({ data: JSON.stringify(data) } as MessageEvent);
    }
  }

  close() {
    this.closed = true;
  }
}

function watch(): {
  watcher: RunWatcher;
  seen: IRun[];
  ended: Promise<IRun | null>;
} {
  const watcher = new RunWatcher({
    client,
    runId: 'r1',
    vocabulary: () => vocabulary(),
    eventSource: FakeEventSource as any,
    pollInterval: 5
  });
  const seen: IRun[] = [];
  watcher.updated.connect((_, updated) => seen.push(updated));
  const ended = new Promise<IRun | null>(resolve =>
    watcher.ended.connect((_, last) => resolve(last))
  );
  return { watcher, seen, ended };
}

beforeEach(() => mocked.mockReset());

describe('RunWatcher', () => {
  it('follows the event stream until its end event', async () => {
    const { watcher, seen, ended } = watch();
    watcher.start();
    const source = FakeEventSource.last!;
    expect(source.url).toBe(
      'http://127.0.0.1:8888/cellpipe/api/runs/r1/events?token=t'
    );
    expect(watcher.mode).toBe('events');

    source.send('run', run({ run_id: 'r1', status: 'Running' }));
    source.send('run', run({ run_id: 'r1', status: 'Succeeded' }));
    source.send('end', { run_id: 'r1', status: 'Succeeded' });

    expect((await ended)?.status).toBe('Succeeded');
    expect(seen.map(r => r.status)).toEqual(['Running', 'Succeeded']);
    expect(source.closed).toBe(true);
    expect(watcher.mode).toBe('ended');
    expect(mocked).not.toHaveBeenCalled();
    watcher.dispose();
  });

  it('falls back to polling when the stream breaks', async () => {
    const answers = [
      run({ run_id: 'r1', status: 'Running' }),
      run({ run_id: 'r1', status: 'Failed', error: 'boom' })
    ];
    mocked.mockImplementation(async () => answers.shift() ?? answers[0]);
    const { watcher, seen, ended } = watch();
    watcher.start();
    const source = FakeEventSource.last!;

    source.onerror!();

    expect(source.closed).toBe(true);
    expect(watcher.mode).toBe('polling');
    expect((await ended)?.error).toBe('boom');
    expect(seen.map(r => r.status)).toEqual(['Running', 'Failed']);
    expect(mocked.mock.calls[0][0]).toBe('runs/r1');
    watcher.dispose();
  });

  it('polls where there is no EventSource, and ends when the run is deleted', async () => {
    const { CellPipeRequestError } = jest.requireActual('../request');
    mocked.mockRejectedValue(
      new CellPipeRequestError(
        new Response(null, { status: 404 }),
        'not_found',
        'no run r1',
        null
      )
    );
    const watcher = new RunWatcher({
      client,
      runId: 'r1',
      vocabulary: () => vocabulary(),
      eventSource: null,
      pollInterval: 5
    });
    const ended = new Promise<IRun | null>(resolve =>
      watcher.ended.connect((_, last) => resolve(last))
    );
    watcher.start();
    expect(watcher.mode).toBe('polling');
    await expect(ended).resolves.toBeNull();
    watcher.dispose();
  });
});
