/**
 * @jest-environment jsdom
 *
 * The Tune dialog's fields and a tune's view, rendered: what a person types becomes the
 * request, the trials and the chart follow the tune, and the buttons do what they say.
 */
import './jsdom';

import { ServerConnection } from '@jupyterlab/services';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { act } from 'react';

import { CellPipeClient } from '../api';
import { ITrial, ITune, JSONValue } from '../tokens';
import { readTuneForm, TuneWatcher } from '../tune';
import { TuneDialogBody } from '../widgets/TuneDialog';
import { TuneView } from '../widgets/TuneView';
import { compileResult, vocabulary } from './fixtures';

jest.mock('@jupyterlab/apputils', () =>
  jest.requireActual('./labstubs').apputils()
);
jest.mock('@jupyterlab/ui-components', () =>
  jest.requireActual('./labstubs').uiComponents()
);

const client = new CellPipeClient({
  baseUrl: 'http://127.0.0.1:8888/'
} as ServerConnection.ISettings);

async function show<T extends Widget>(widget: T): Promise<T> {
  await act(async () => {
    Widget.attach(widget, document.body);
    MessageLoop.sendMessage(widget, Widget.Msg.UpdateRequest);
  });
  return widget;
}

async function type(node: HTMLElement, selector: string, value: string) {
  const field = node.querySelector(selector) as
    HTMLInputElement | HTMLSelectElement;
  await act(async () => {
    // React tracks the value it set: go through the prototype's setter, as a keystroke does
    const proto = Object.getPrototypeOf(field);
    Object.getOwnPropertyDescriptor(proto, 'value')!.set!.call(field, value);
    field.dispatchEvent(new Event('input', { bubbles: true }));
    field.dispatchEvent(new Event('change', { bubbles: true }));
  });
}

function trial(number: number, epochs: number, value: number): ITrial {
  return {
    trial: number,
    parameters: { epochs },
    value,
    status: 'Succeeded',
    run_id: `run-${number}`,
    seconds: 2,
    steps_ran: number === 1 ? ['load data', 'train'] : ['train']
  };
}

describe('the Tune dialog, rendered', () => {
  it('reads the typed ranges and settings, and says a wrong range in its row', async () => {
    const body = await show(new TuneDialogBody(compileResult()));
    await type(body.node, '#cp-tune-algorithm', 'grid');
    await type(body.node, '#cp-space-learning_rate', '0.01..0.5');
    expect(
      body.node.querySelector('tr[data-parameter="learning_rate"] [role=alert]')
        ?.textContent
    ).toBe(
      'learning_rate: a grid over a float range needs its step (0.01..0.5:STEP) or the values (a,b,c)'
    );
    await type(body.node, '#cp-space-learning_rate', '');
    await type(body.node, '#cp-space-epochs', '5,20,40');
    await type(body.node, '#cp-tune-parallel', '2');

    expect(readTuneForm(compileResult(), body.getValue())).toEqual({
      request: {
        objective: 'accuracy',
        direction: 'maximize',
        search: { epochs: '5,20,40' },
        algorithm: 'grid',
        engine: 'local',
        trials: 12,
        parallel: 2
      },
      problems: []
    });
    act(() => body.dispose());
  });
});

describe("a tune's view", () => {
  it('shows the trials, the chart and the best, and its buttons act', async () => {
    const written: Record<string, JSONValue>[] = [];
    const cancel = jest.fn(async () => undefined);
    const tune: ITune = {
      tune_id: 't1',
      objective: { metric: 'accuracy', direction: 'maximize' },
      best: { parameters: { epochs: 20 }, value: 0.9, run_id: 'run-2' },
      trials: [trial(1, 5, 0.7), trial(2, 20, 0.9)],
      algorithm: 'grid',
      status: 'Running',
      notebook: 'iris.ipynb',
      engine: 'local',
      search: { epochs: '5,20,40' }
    };
    const watcher = new TuneWatcher({
      client,
      tune,
      vocabulary: () => vocabulary(),
      eventSource: null
    });
    const view = await show(
      new TuneView(watcher, {
        onCancel: cancel,
        onWriteBest: values => {
          written.push(values);
          return null;
        }
      })
    );
    const rows = view.node.querySelectorAll('.cp-TrialTable tbody tr');
    expect(Array.from(rows).map(row => row.textContent)).toEqual([
      '1Succeeded50.70002.00 sload data, train',
      '2Succeeded200.90002.00 strain'
    ]);
    expect(rows[1].className).toBe('cp-mod-best');
    expect(view.node.querySelectorAll('.cp-TuneChart circle')).toHaveLength(2);

    await act(async () =>
      (
        view.node.querySelector(
          'button[aria-label="Write the best parameters into the parameters cell"]'
        ) as HTMLButtonElement
      ).click()
    );
    expect(written).toEqual([{ epochs: 20 }]);
    expect(view.node.querySelector('[role=alert]')?.textContent).toBe(
      'The best values are in the parameters cell (not saved yet).'
    );
    expect(
      view.node.querySelector('button[aria-label="Cancel tune t1"]')
    ).not.toBeNull();
    watcher.dispose();
    act(() => view.dispose());
  });
});
