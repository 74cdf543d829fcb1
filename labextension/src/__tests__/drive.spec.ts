/**
 * The `cellpipe-runs` drive: a run's executed notebook, read-only; every change refused.
 */
import { INotebookContent } from '@jupyterlab/nbformat';
import { ServerConnection } from '@jupyterlab/services';

import {
  executedNotebookPath,
  IRunsDriveClient,
  onRunsDrive,
  ReadOnlyError,
  RunsDrive,
  RUNS_DRIVE,
  runOfPath
} from '../drive';
import { run } from './fixtures';

const NOTEBOOK: INotebookContent = {
  nbformat: 4,
  nbformat_minor: 5,
  metadata: { cellpipe: { run: 'r1' } },
  cells: [
    {
      cell_type: 'code',
      id: 'c1',
      source: 'display(HTML(...))',
      execution_count: 1,
      metadata: { trusted: true, cellpipe: { step: 'show', status: 'ran' } },
      outputs: [
        {
          output_type: 'display_data',
          data: { 'text/html': ['<b>a</b>\n', '<script>x()</script>'] },
          metadata: {}
        }
      ]
    }
  ]
};

function fakeClient(): jest.Mocked<IRunsDriveClient> {
  return {
    serverSettings: ServerConnection.makeSettings({ baseUrl: 'http://h/' }),
    getRun: jest.fn().mockResolvedValue(
      run({
        run_id: 'r1',
        status: 'Succeeded',
        created: 1790000000,
        finished: 1790000060,
        executed_notebook: '/home/runs/r1/notebook.ipynb'
      })
    ),
    executedNotebook: jest.fn().mockResolvedValue(NOTEBOOK),
    executedNotebookUrl: jest.fn(
      (runId: string) => `http://h/cellpipe/api/runs/${runId}/notebook`
    )
  } as unknown as jest.Mocked<IRunsDriveClient>;
}

describe('the cellpipe-runs drive', () => {
  it("names each run's notebook cellpipe-runs:RUN_ID/notebook.ipynb", () => {
    expect(executedNotebookPath('20261124-114712-f5a891ba')).toBe(
      'cellpipe-runs:20261124-114712-f5a891ba/notebook.ipynb'
    );
    expect(() => executedNotebookPath('../etc')).toThrow('not a run id');
    expect(() => executedNotebookPath('a/b')).toThrow('not a run id');
    expect(onRunsDrive('cellpipe-runs:r1/notebook.ipynb')).toBe(true);
    expect(onRunsDrive('iris.ipynb')).toBe(false);
    expect(onRunsDrive('cellpipe-runs.ipynb')).toBe(false);
    expect(runOfPath('r1/notebook.ipynb')).toBe('r1');
    expect(runOfPath('/r1/notebook.ipynb')).toBe('r1');
    for (const path of [
      '',
      'r1',
      'r1/other.ipynb',
      '../r1/notebook.ipynb',
      '../notebook.ipynb',
      'a/b/notebook.ipynb',
      'r 1/notebook.ipynb'
    ]) {
      expect(runOfPath(path)).toBeNull();
    }
  });

  it('gives the notebook read-only (writable: false), untrusted, text joined', async () => {
    const client = fakeClient();
    const drive = new RunsDrive(client);
    expect(drive.name).toBe(RUNS_DRIVE);

    const model = await drive.get('r1/notebook.ipynb', {
      type: 'notebook',
      content: true
    });

    expect(client.executedNotebook).toHaveBeenCalledWith('r1');
    expect(model).toMatchObject({
      name: 'notebook.ipynb',
      path: 'r1/notebook.ipynb',
      type: 'notebook',
      format: 'json',
      mimetype: 'application/x-ipynb+json',
      writable: false,
      created: new Date(1790000000 * 1000).toISOString(),
      last_modified: new Date(1790000060 * 1000).toISOString()
    });
    const [cell] = (model.content as INotebookContent).cells;
    // JupyterLab would run the scripts of a cell marked trusted: never carried
    expect(cell.metadata).toEqual({
      cellpipe: { step: 'show', status: 'ran' }
    });
    expect((cell.outputs as any)[0].data['text/html']).toBe(
      '<b>a</b>\n<script>x()</script>'
    );
    // the file as fetched is left as it was
    expect(NOTEBOOK.cells[0].metadata.trusted).toBe(true);
    drive.dispose();
  });

  it('answers the model without content when asked so, without fetching it', async () => {
    const client = fakeClient();
    const drive = new RunsDrive(client);
    const model = await drive.get('r1/notebook.ipynb', { content: false });
    expect(model.content).toBeNull();
    expect(model.writable).toBe(false);
    expect(client.executedNotebook).not.toHaveBeenCalled();
    drive.dispose();
  });

  it("holds nothing but the runs' notebooks", async () => {
    const drive = new RunsDrive(fakeClient());
    for (const path of ['', 'r1', 'r1/source.ipynb', '../r1/notebook.ipynb']) {
      await expect(drive.get(path)).rejects.toThrow('no such file');
    }
    drive.dispose();
  });

  it('refuses every change: save, rename, delete, new, copy, checkpoints', async () => {
    const client = fakeClient();
    const drive = new RunsDrive(client);
    const path = 'r1/notebook.ipynb';
    const refusals: [string, string, Promise<unknown>][] = [
      [
        'saved',
        path,
        drive.save(path, { type: 'notebook', content: NOTEBOOK })
      ],
      ['renamed', path, drive.rename(path, 'r1/mine.ipynb')],
      ['deleted', path, drive.delete(path)],
      ['created', 'r1', drive.newUntitled({ path: 'r1', type: 'notebook' })],
      ['copied within the drive', path, drive.copy(path, 'r2')],
      ['checkpointed', path, drive.createCheckpoint(path)],
      ['restored', path, drive.restoreCheckpoint(path, 'c')],
      ['changed', path, drive.deleteCheckpoint(path, 'c')]
    ];
    for (const [what, where, refusal] of refusals) {
      await expect(refusal).rejects.toBeInstanceOf(ReadOnlyError);
      await expect(refusal).rejects.toThrow(
        `cellpipe-runs:${where} cannot be ${what}: a run's executed notebook is read-only`
      );
    }
    // nothing reached the server
    expect(client.executedNotebook).not.toHaveBeenCalled();
    expect(client.getRun).not.toHaveBeenCalled();
    // and there are no checkpoints to list
    expect(await drive.listCheckpoints(path)).toEqual([]);
    drive.dispose();
  });

  it('downloads from the API route, and disposes once', async () => {
    const drive = new RunsDrive(fakeClient());
    expect(await drive.getDownloadUrl('r1/notebook.ipynb')).toBe(
      'http://h/cellpipe/api/runs/r1/notebook'
    );
    await expect(drive.getDownloadUrl('x/y')).rejects.toThrow('no such file');
    drive.dispose();
    drive.dispose();
    expect(drive.isDisposed).toBe(true);
  });
});
