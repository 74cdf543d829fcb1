/**
 * @jest-environment jsdom
 *
 * Serving from the sidebar: the prediction form's rows (prefilled with the sample the step
 * saw), the answer beside what was sent, and the service panel's Predict and Stop, with
 * requestAPI (and only it) mocked.
 */
import './jsdom';

import { ServerConnection } from '@jupyterlab/services';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { act } from 'react';

import { CellPipeClient } from '../api';
import { CellPipeRequestError, requestAPI } from '../request';
import {
  cellText,
  isGone,
  isStarting,
  modelLabel,
  pairRows,
  readInstances,
  routeErrorMessage,
  sampleText
} from '../serve';
import { IRunModel, IService } from '../tokens';
import { ServiceView } from '../widgets/ServeView';

jest.mock('../request', () => ({
  ...jest.requireActual('../request'),
  requestAPI: jest.fn()
}));
// JupyterLab's UI packages load their SVG icons as modules, which jest here does not map:
// the panel's names stand in, rendering what the real ones render for these props.
jest.mock('@jupyterlab/apputils', () =>
  jest.requireActual('./labstubs').apputils()
);
jest.mock('@jupyterlab/ui-components', () =>
  jest.requireActual('./labstubs').uiComponents()
);

const mocked = requestAPI as jest.MockedFunction<typeof requestAPI>;
// jsdom has no fetch for makeSettings to read, and requestAPI (mocked) is all that would use it
const client = new CellPipeClient({
  baseUrl: 'http://127.0.0.1:8888/'
} as ServerConnection.ISettings);

const MODEL: IRunModel = {
  name: 'iris',
  step: 'train',
  format: 'sklearn',
  versions: { 'scikit-learn': '1.6.1' },
  sample: {
    instances: [
      [5.1, 3.5, 1.4, 0.2],
      [6.7, 3.0, 5.2, 2.3]
    ],
    columns: ['sepal length', 'sepal width', 'petal length', 'petal width']
  }
};

function service(extra: Partial<IService> = {}): IService {
  return {
    service_id: 's1',
    run_id: 'r1',
    model: 'iris',
    engine: 'local',
    url: 'http://127.0.0.1:8080/v1/models/iris:predict',
    protocols: ['v1', 'v2'],
    status: 'Ready',
    ...extra
  };
}

describe('the prediction form', () => {
  it('starts with the sample rows, one a line, and reads them back', () => {
    const text = sampleText(MODEL);
    expect(text.split('\n')).toEqual([
      '[',
      '  [5.1,3.5,1.4,0.2],',
      '  [6.7,3,5.2,2.3]',
      ']'
    ]);
    expect(readInstances(text)).toEqual({
      instances: MODEL.sample.instances
    });
    expect(sampleText({ ...MODEL, sample: { instances: [] } })).toBe('[]');
  });

  it('takes a whole V1 body too, and says what is wrong otherwise', () => {
    expect(readInstances('{"instances": [{"a": 1}]}')).toEqual({
      instances: [{ a: 1 }]
    });
    expect(readInstances('[1, 2')).toEqual({
      error: expect.stringMatching(/^The rows are not JSON: /)
    });
    expect(readInstances('{"rows": []}')).toEqual({
      error: 'Send a JSON list of rows ([[5.1, 3.5, 1.4, 0.2], ...]).'
    });
    expect(readInstances('[]')).toEqual({ error: 'Send at least one row.' });
  });

  it('pairs each row with its prediction', () => {
    expect(pairRows([[1], [2]], ['setosa'])).toEqual([
      { instance: [1], prediction: 'setosa' },
      { instance: [2], prediction: null }
    ]);
    expect([
      cellText(0.123456),
      cellText(2),
      cellText([1, 'a']),
      cellText(null)
    ]).toEqual(['0.1235', '2', '[1,"a"]', '']);
    expect(modelLabel(MODEL)).toBe(
      'iris (sklearn, step train; scikit-learn 1.6.1)'
    );
    expect([
      isStarting('Pending'),
      isStarting('Ready'),
      isGone('Stopped')
    ]).toEqual([true, false, true]);
  });
});

describe('a refusal, for people', () => {
  const refusal = (status: number, reason: string, message: string) =>
    new CellPipeRequestError(
      { status, statusText: '' } as Response,
      reason,
      message,
      reason ? { message, reason } : null
    );

  it("says a route is missing when the 404 is not the server's own JSON", () => {
    expect(routeErrorMessage(refusal(404, '', '<html>'), 'POST /tunes')).toBe(
      'the server has no POST /tunes route: its cellpipe server extension is older than this sidebar (upgrade cellpipe on the server, then restart it)'
    );
    expect(
      routeErrorMessage(
        refusal(404, 'not_found', 'no run r9'),
        'POST /services'
      )
    ).toBe('no run r9');
    expect(
      routeErrorMessage(refusal(400, '', 'bad search'), 'POST /tunes')
    ).toBe('bad search');
  });
});

describe('the service panel', () => {
  beforeEach(() => mocked.mockReset());

  async function open(initial: IService): Promise<ServiceView> {
    const view = new ServiceView(client, initial, MODEL);
    await act(async () => {
      Widget.attach(view, document.body);
      MessageLoop.sendMessage(view, Widget.Msg.UpdateRequest);
    });
    return view;
  }

  const button = (view: ServiceView, label: string) =>
    view.node.querySelector(
      `button[aria-label="${label}"]`
    ) as HTMLButtonElement;

  it('sends the prefilled rows through the server and shows each answer', async () => {
    mocked.mockResolvedValue({ predictions: [0, 2] });
    const view = await open(service());
    const rows = view.node.querySelector('textarea') as HTMLTextAreaElement;
    expect(readInstances(rows.value)).toEqual({
      instances: MODEL.sample.instances
    });

    await act(async () => button(view, 'Send the prediction request').click());

    expect(mocked).toHaveBeenCalledWith(
      'services/s1/predict',
      {
        method: 'POST',
        body: JSON.stringify({ instances: MODEL.sample.instances })
      },
      client.serverSettings
    );
    const answers = Array.from(
      view.node.querySelectorAll('.cp-Predictions .cp-Prediction')
    ).map(cell => cell.textContent);
    expect(answers).toEqual(['0', '2']);
    act(() => view.dispose());
  });

  it("shows the server's refusal, and Stop deletes the service", async () => {
    mocked.mockRejectedValueOnce(new Error('the model server did not answer'));
    mocked.mockResolvedValueOnce(undefined);
    const view = await open(service());

    await act(async () => button(view, 'Send the prediction request').click());
    expect(view.node.querySelector('.cp-RunError')?.textContent).toBe(
      'the model server did not answer'
    );
    await act(async () => button(view, 'Stop service s1').click());

    expect(mocked).toHaveBeenLastCalledWith(
      'services/s1',
      { method: 'DELETE' },
      client.serverSettings
    );
    expect(view.service.status).toBe('Stopped');
    expect(button(view, 'Stop service s1')).toBeNull();
    expect(button(view, 'Send the prediction request').disabled).toBe(true);
    act(() => view.dispose());
  });

  it('says why a service failed, and offers neither Predict nor Stop', async () => {
    const view = await open(
      service({ status: 'Failed', url: null, error: 'kserve is not installed' })
    );
    expect(view.node.querySelector('.cp-RunError')?.textContent).toBe(
      'kserve is not installed'
    );
    expect(button(view, 'Send the prediction request').disabled).toBe(true);
    expect(button(view, 'Stop service s1')).toBeNull();
    expect(mocked).not.toHaveBeenCalled();
    act(() => view.dispose());
  });

  it('asks for the service while it starts, and offers Predict once it is up', async () => {
    mocked.mockResolvedValue(service({ status: 'Ready' }));
    const view = await open(service({ status: 'Pending' }));
    expect(button(view, 'Send the prediction request').disabled).toBe(true);

    await act(async () => {
      await new Promise(resolve => setTimeout(resolve, 1500));
    });

    expect(mocked).toHaveBeenCalledWith(
      'services/s1',
      {},
      client.serverSettings
    );
    expect(view.service.status).toBe('Ready');
    expect(button(view, 'Send the prediction request').disabled).toBe(false);
    act(() => view.dispose());
  });
});
