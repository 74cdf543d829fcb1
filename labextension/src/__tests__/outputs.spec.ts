/**
 * A run's outputs per step, from its executed notebook; the notebooks fetched once each.
 */
import { INotebookContent } from '@jupyterlab/nbformat';

import { CellPipeClient } from '../api';
import {
  ExecutedNotebooks,
  normalizeOutput,
  outputCount,
  stepOutputs,
  untrustedNotebook
} from '../outputs';
import { CellPipeRequestError } from '../request';
import { run } from './fixtures';

/** The executed notebook of a run whose first step shows a plot and a table, second fails. */
const EXECUTED: INotebookContent = {
  nbformat: 4,
  nbformat_minor: 5,
  metadata: { cellpipe: { run: 'r1', status: 'Failed' } },
  cells: [
    { cell_type: 'markdown', source: '# title', metadata: {} },
    {
      cell_type: 'code',
      source: 'import pandas as pd',
      execution_count: 1,
      metadata: { cellpipe: { step: null, role: 'imports and functions' } },
      outputs: []
    },
    {
      cell_type: 'code',
      id: 'plot',
      source: 'plt.plot(x)',
      execution_count: 2,
      metadata: {
        trusted: true,
        cellpipe: { step: 'draw', task: 'draw', status: 'ran', seconds: 0.5 }
      },
      outputs: [
        {
          output_type: 'stream',
          name: 'stdout',
          text: ['drawing\n', 'done\n']
        },
        {
          output_type: 'display_data',
          data: { 'image/png': 'iVBOR', 'text/plain': ['<Figure>'] },
          metadata: {}
        }
      ]
    },
    {
      cell_type: 'code',
      id: 'table',
      source: 'df',
      execution_count: 3,
      metadata: { cellpipe: { step: 'draw', task: 'draw', status: 'ran' } },
      outputs: [
        {
          output_type: 'execute_result',
          execution_count: 3,
          data: {
            'text/html': ['<table>\n', '</table>'],
            'application/vnd.dataresource+json': { data: ['a', 'b'] }
          },
          metadata: {}
        }
      ]
    },
    {
      cell_type: 'code',
      source: 'x = 1',
      execution_count: null,
      metadata: { tags: ['skip'] },
      outputs: []
    },
    {
      cell_type: 'code',
      id: 'boom',
      source: 'raise ValueError("boom")',
      execution_count: 4,
      metadata: { cellpipe: { step: 'fail', status: 'failed' } },
      outputs: [
        {
          output_type: 'error',
          ename: 'ValueError',
          evalue: 'boom',
          traceback: ['Traceback', 'ValueError: boom']
        }
      ]
    },
    {
      cell_type: 'code',
      source: 'after = 1',
      execution_count: null,
      metadata: { cellpipe: { step: 'later', status: 'not run' } },
      outputs: []
    }
  ]
};

describe("a step's outputs", () => {
  it("are its code cells', in order, text joined as Jupyter reads it", () => {
    const cells = stepOutputs(EXECUTED, 'draw');

    expect(
      cells.map(cell => [cell.index, cell.id, cell.executionCount])
    ).toEqual([
      [2, 'plot', 2],
      [3, 'table', 3]
    ]);
    expect(cells[0].status).toBe('ran');
    expect(cells[0].seconds).toBe(0.5);
    expect(cells[1].seconds).toBeNull();
    expect(cells[0].outputs).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'drawing\ndone\n' },
      {
        output_type: 'display_data',
        data: { 'image/png': 'iVBOR', 'text/plain': '<Figure>' },
        metadata: {}
      }
    ]);
    // JSON data stays JSON; text is joined
    expect(cells[1].outputs[0]).toMatchObject({
      data: {
        'text/html': '<table>\n</table>',
        'application/vnd.dataresource+json': { data: ['a', 'b'] }
      }
    });
    expect(outputCount(cells)).toBe(3);
  });

  it('tell a failed cell, a cell never reached, and no step at all', () => {
    const [failed] = stepOutputs(EXECUTED, 'fail');
    expect(failed.status).toBe('failed');
    expect(failed.outputs[0]).toMatchObject({ ename: 'ValueError' });

    const later = stepOutputs(EXECUTED, 'later');
    expect(later.map(cell => cell.status)).toEqual(['not run']);
    expect(outputCount(later)).toBe(0);

    expect(stepOutputs(EXECUTED, 'no such step')).toEqual([]);
    expect(stepOutputs(null, 'draw')).toEqual([]);
    // the imports cell belongs to no step (its step is null), skip cells to none
    expect(stepOutputs(EXECUTED, 'null')).toEqual([]);
  });

  it('leave errors and unknown outputs as they are', () => {
    const error = EXECUTED.cells[5].outputs as any[];
    expect(normalizeOutput(error[0])).toEqual(error[0]);
    expect(
      normalizeOutput({
        output_type: 'stream',
        name: 'stderr',
        text: 'x'
      } as any)
    ).toEqual({ output_type: 'stream', name: 'stderr', text: 'x' });
  });

  it('are untrusted when handed to JupyterLab: no cell keeps metadata.trusted', () => {
    const copy = untrustedNotebook(EXECUTED);
    expect(copy.cells.map(cell => 'trusted' in cell.metadata)).toEqual(
      EXECUTED.cells.map(() => false)
    );
    expect(copy.cells[2].metadata.cellpipe).toEqual(
      EXECUTED.cells[2].metadata.cellpipe
    );
    expect((copy.cells[2].outputs as any)[0].text).toBe('drawing\ndone\n');
    expect(copy.cells[0]).toEqual(EXECUTED.cells[0]);
    expect(EXECUTED.cells[2].metadata.trusted).toBe(true); // the original is left alone
  });
});

describe('the executed notebooks of the runs', () => {
  function client(answer: () => Promise<INotebookContent>) {
    return {
      executedNotebook: jest.fn(answer)
    } as unknown as jest.Mocked<CellPipeClient>;
  }

  it("fetches a run's notebook once, when the run says it has one", async () => {
    const api = client(() => Promise.resolve(EXECUTED));
    const notebooks = new ExecutedNotebooks(api);
    let changes = 0;
    notebooks.changed.connect(() => changes++);

    // a run still going on has none yet: nothing asked
    expect(notebooks.get(run({ run_id: 'r1', status: 'Running' }))).toEqual({
      loading: false,
      notebook: null,
      error: null
    });
    expect(api.executedNotebook).not.toHaveBeenCalled();

    const done = run({
      run_id: 'r1',
      status: 'Failed',
      executed_notebook: '/home/runs/r1/notebook.ipynb'
    });
    expect(notebooks.get(done).loading).toBe(true);
    expect(notebooks.get(done).loading).toBe(true);
    await Promise.resolve();
    await Promise.resolve();
    expect(changes).toBe(1);
    expect(notebooks.get(done)).toEqual({
      loading: false,
      notebook: EXECUTED,
      error: null
    });
    expect(api.executedNotebook).toHaveBeenCalledTimes(1);
    expect(api.executedNotebook).toHaveBeenCalledWith('r1');
  });

  it("says the server's words when there is none, and forgets deleted runs", async () => {
    const refusal = new CellPipeRequestError(
      new Response(null, { status: 404 }),
      'no_notebook',
      'run r2 (Succeeded) has no executed notebook',
      null
    );
    const api = client(() => Promise.reject(refusal));
    const notebooks = new ExecutedNotebooks(api);
    const done = run({
      run_id: 'r2',
      status: 'Succeeded',
      executed_notebook: '/home/runs/r2/notebook.ipynb'
    });
    notebooks.get(done);
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(notebooks.get(done)).toEqual({
      loading: false,
      notebook: null,
      error: 'run r2 (Succeeded) has no executed notebook'
    });

    notebooks.forget('r2');
    notebooks.get(done);
    expect(api.executedNotebook).toHaveBeenCalledTimes(2);
  });

  it('keeps the last few runs looked at', async () => {
    const api = client(() => Promise.resolve(EXECUTED));
    const notebooks = new ExecutedNotebooks(api, 2);
    const runs = ['a', 'b', 'c'].map(id =>
      run({
        run_id: id,
        status: 'Succeeded',
        executed_notebook: `/h/${id}/notebook.ipynb`
      })
    );
    for (const r of runs) {
      notebooks.get(r);
    }
    await new Promise(resolve => setTimeout(resolve, 0));
    notebooks.get(runs[2]);
    notebooks.get(runs[1]);
    expect(api.executedNotebook).toHaveBeenCalledTimes(3);
    notebooks.get(runs[0]); // forgotten: asked again
    expect(api.executedNotebook).toHaveBeenCalledTimes(4);
    notebooks.dispose();
  });
});
