/**
 * Tuning from the sidebar: the SPACE grammar as `cellpipe tune --search` reads it, the Tune
 * dialog's request, values written into the parameters cell (checked by Python itself), the
 * objective chart, and a tune followed by its events or by polling (requestAPI mocked).
 */
import { execFileSync } from 'child_process';

import { ServerConnection } from '@jupyterlab/services';

import { CellPipeClient } from '../api';
import { requestAPI } from '../request';
import { ICellInfo } from '../steps';
import { ITrial, ITune, JSONValue } from '../tokens';
import {
  initialTuneForm,
  likelyDirection,
  objectiveChart,
  parameterEdits,
  pythonLiteral,
  readTuneForm,
  replaceAssignment,
  spaceProblem,
  TuneWatcher
} from '../tune';
import { compileResult, vocabulary } from './fixtures';

jest.mock('../request', () => ({
  ...jest.requireActual('../request'),
  requestAPI: jest.fn()
}));

const mocked = requestAPI as jest.MockedFunction<typeof requestAPI>;
const client = new CellPipeClient(
  ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/',
    token: 'secret'
  })
);

/** Python's own reading of a cell: every top-level name it assigns, as JSON. */
function pythonValues(source: string): Record<string, JSONValue> {
  const script =
    'import json, sys\n' +
    'scope = {}\n' +
    'exec(sys.stdin.read(), scope)\n' +
    'print(json.dumps({k: v for k, v in scope.items() if not k.startswith("__")}))';
  const out = execFileSync('python3', ['-c', script], {
    input: source,
    encoding: 'utf-8'
  });
  return JSON.parse(out);
}

function trial(
  number: number,
  value: number | null,
  extra: Partial<ITrial> = {}
): ITrial {
  return {
    trial: number,
    parameters: { epochs: number },
    value,
    status: value === null ? 'Failed' : 'Succeeded',
    run_id: `run-${number}`,
    seconds: 1.5,
    steps_ran: ['train'],
    ...extra
  };
}

function tune(extra: Partial<ITune> = {}): ITune {
  return {
    tune_id: 't1',
    objective: { metric: 'accuracy', direction: 'maximize' },
    best: null,
    trials: [],
    algorithm: 'grid',
    status: 'Running',
    notebook: 'iris.ipynb',
    engine: 'local',
    search: { epochs: '1..3' },
    ...extra
  };
}

describe('the SPACE grammar, as `cellpipe tune --search` reads it', () => {
  it.each([
    ['int', '1..6', 'random'],
    ['int', '1..10:3', 'grid'],
    ['int', '2.0..8', 'random'],
    ['int', '1..64:log', 'random'],
    ['int', '2,4,8', 'grid'],
    ['float', '0.001..0.1', 'random'],
    ['float', '0.001..0.1:log', 'tpe'],
    ['float', '0.1..0.9:0.2', 'grid'],
    ['float', '0.1, 0.5, 0.9', 'grid'],
    ['str', 'adam,sgd', 'grid'],
    ['str', 'a..b,c', 'grid'],
    ['bool', 'true,false', 'grid']
  ] as const)('takes a %s as %s (%s)', (type, text, algorithm) => {
    expect(spaceProblem('p', type, text, algorithm)).toBeNull();
  });

  it.each([
    ['int', '1.5..6', 'random', 'p is an int: give whole numbers (e.g. 1..6)'],
    [
      'int',
      '6..1',
      'random',
      "p: the range's low end must be below its high end"
    ],
    ['float', '0..1:log', 'random', 'p: a log range needs a low end above 0'],
    ['float', '0..1:-0.1', 'grid', 'p: the step must be above 0'],
    [
      'float',
      '0..1:fast',
      'random',
      "p: '0..1:fast' is not LOW..HIGH, LOW..HIGH:log or LOW..HIGH:STEP"
    ],
    [
      'float',
      '0.1..0.9',
      'grid',
      'p: a grid over a float range needs its step (0.1..0.9:STEP) or the values (a,b,c)'
    ],
    [
      'float',
      '0.1..10:log',
      'grid',
      'p: a grid cannot take a log range; list the values (a,b,c)'
    ],
    [
      'str',
      'a..b',
      'grid',
      'p is a str: a range is for numbers; list its values (a,b,c)'
    ],
    ['int', '1,two', 'grid', "p: 'two' is not a whole number (int)"],
    ['bool', 'true,maybe', 'grid', "p: 'maybe' is not true or false (bool)"]
  ] as const)('refuses a %s as %s (%s)', (type, text, algorithm, problem) => {
    expect(spaceProblem('p', type, text, algorithm)).toBe(problem);
  });
});

describe('the Tune dialog', () => {
  it('starts on the first metric, in the direction its name suggests', () => {
    const result = compileResult({ metrics: ['val_loss', 'accuracy'] });
    const form = initialTuneForm(result);
    expect(form.objective).toBe('val_loss');
    expect(form.direction).toBe('minimize');
    expect(form.spaces).toEqual({ epochs: '', learning_rate: '' });
    expect(likelyDirection('accuracy')).toBe('maximize');
    expect(likelyDirection('rmse')).toBe('minimize');
  });

  it('sends only the parameters given a range, with the numbers typed', () => {
    const result = compileResult();
    const form = {
      ...initialTuneForm(result),
      spaces: { epochs: ' 1..6 ', learning_rate: '' },
      trials: '8',
      parallel: '',
      seed: '7'
    };
    expect(readTuneForm(result, form)).toEqual({
      request: {
        objective: 'accuracy',
        direction: 'maximize',
        search: { epochs: '1..6' },
        algorithm: 'random',
        engine: 'local',
        trials: 8,
        seed: 7
      },
      problems: []
    });
  });

  it('says everything that stops the tune, the notebook first', () => {
    const result = compileResult({
      metrics: [],
      errors: [{ message: 'x', cell_index: 0, cell_id: null, step: null }]
    });
    const form = {
      ...initialTuneForm(result),
      spaces: { epochs: '1..x', learning_rate: '' },
      trials: '0',
      parallel: 'two'
    };
    expect(readTuneForm(result, form).problems).toEqual([
      'the notebook has 1 compile error(s): fix them first',
      'the notebook has no metrics cell: tag a cell `metrics` to name the objective',
      "epochs: '1..x' is not LOW..HIGH, LOW..HIGH:log or LOW..HIGH:STEP",
      'trials: a whole number of at least 1',
      'parallel: a whole number of at least 1'
    ]);
    const nothing = { ...initialTuneForm(compileResult()) };
    expect(readTuneForm(compileResult(), nothing).problems).toEqual([
      'give at least one parameter a range to search'
    ]);
  });
});

describe('the best values written into the parameters cell', () => {
  const awkward: Record<string, JSONValue> = {
    plain: 'adam',
    quotes: `it's "quoted" '''`,
    escapes: 'back\\slash\nnew line\ttab \u0000 \u2028 é 🙂',
    code: '"; import os; os.system("echo pwned"); x = "',
    whole: 3,
    negative: -0.001,
    tiny: 1e-7,
    flag: false,
    none: null,
    nested: { 'k"ey': [1, 2.5, true, null, 'x'] }
  };

  it('are Python literals with the same values, never code', () => {
    const source = Object.entries(awkward)
      .map(([name, value]) => `${name} = ${pythonLiteral(value)}`)
      .join('\n');
    expect(pythonValues(source)).toEqual(awkward);
    expect(pythonLiteral(2, 'float')).toBe('2.0');
    expect(pythonLiteral(2, 'int')).toBe('2');
  });

  it('replace the value and keep the annotation, the comment and the other lines', () => {
    const cell = [
      '"""The knobs."""',
      'epochs: int = 20  # how long',
      'epochs_more = 1',
      'layers = {',
      '    "a": 1,  # first',
      '    "b": "#not a comment",',
      '}',
      'if False:',
      '    epochs = 99',
      'rate = 0.1 # type: float',
      'name = """multi',
      'line = 5"""'
    ].join('\n');
    let edited = replaceAssignment(cell, 'epochs', '7')!;
    edited = replaceAssignment(edited, 'layers', pythonLiteral([3, 4]))!;
    edited = replaceAssignment(edited, 'rate', pythonLiteral(0.25, 'float'))!;
    edited = replaceAssignment(edited, 'name', pythonLiteral('n'))!;
    expect(edited.split('\n')).toEqual([
      '"""The knobs."""',
      'epochs: int = 7  # how long',
      'epochs_more = 1',
      'layers = [3, 4]',
      'if False:',
      '    epochs = 99',
      'rate = 0.25 # type: float',
      'name = "n"'
    ]);
    expect(pythonValues(edited)).toEqual({
      epochs: 7,
      epochs_more: 1,
      layers: [3, 4],
      rate: 0.25,
      name: 'n'
    });
    expect(replaceAssignment(cell, 'line', '1')).toBeNull(); // inside a string
    expect(replaceAssignment(cell, 'missing', '1')).toBeNull();
  });

  it('go to the cell that sets each name last, new names to the last parameters cell', () => {
    const cells: ICellInfo[] = [
      { id: 'md', type: 'markdown', tags: [], source: 'epochs = 1' },
      {
        id: 'p1',
        type: 'code',
        tags: ['parameters'],
        source: 'epochs = 1\nrate = 0.1'
      },
      {
        id: 'p2',
        type: 'code',
        tags: ['pipeline-parameters'],
        source: 'rate = 0.2'
      },
      { id: 's', type: 'code', tags: ['step:train'], source: 'epochs = 5' }
    ];
    const { edits, problem } = parameterEdits(
      cells,
      { epochs: 4, rate: 0.05, optimizer: 'sgd' },
      { epochs: 'int', rate: 'float', optimizer: 'str' }
    );
    expect(problem).toBeNull();
    expect(edits).toEqual([
      { id: 'p1', source: 'epochs = 4\nrate = 0.1' },
      { id: 'p2', source: 'rate = 0.05\noptimizer = "sgd"' }
    ]);
    expect(
      parameterEdits([cells[3]], { epochs: 4 }, { epochs: 'int' }).problem
    ).toBe('the notebook has no parameters cell to write the values into');
  });
});

describe('the objective chart', () => {
  it('draws the better end up, and the best so far as a rising step line', () => {
    const trials = [
      trial(3, 0.9),
      trial(1, 0.5),
      trial(2, 0.7),
      trial(4, null)
    ];
    const up = objectiveChart(trials, 'maximize', 400, 200);
    expect(up.points.map(p => p.trial)).toEqual([1, 2, 3]); // the failed trial has no point
    const [first, , best] = up.points;
    expect(best.best).toBe(true);
    expect(best.y).toBeLessThan(first.y); // SVG's y grows downwards
    expect(best.y).toBeCloseTo(up.box.top);
    expect(first.y).toBeCloseTo(up.box.bottom);
    expect(up.bestPath.startsWith(`M${up.box.left.toFixed(1)},`)).toBe(true);
    expect(up.bestPath.split(' ').filter(part => part[0] === 'V')).toHaveLength(
      2
    );

    const down = objectiveChart(trials, 'minimize', 400, 200);
    expect(down.points[0].best).toBe(true);
    expect(down.points[0].y).toBeCloseTo(down.box.top);
    expect(
      down.bestPath.split(' ').filter(part => part[0] === 'V')
    ).toHaveLength(0);
  });

  it('has nothing to draw before a value, and one value is no division by zero', () => {
    expect(objectiveChart([trial(1, null)], 'maximize').points).toEqual([]);
    const one = objectiveChart([trial(1, 0.8), trial(2, 0.8)], 'maximize');
    expect(one.points.every(p => Number.isFinite(p.y))).toBe(true);
    expect(one.points.map(p => p.best)).toEqual([true, false]); // the first to reach it
    expect(one.yTicks.map(t => t.label)).toEqual(['0.760', '0.800', '0.840']);
  });
});

/** An EventSource stand-in over the platform's EventTarget; the test sends its events. */
class TestSource extends EventTarget {
  static made: TestSource[] = [];
  onerror: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    super();
    TestSource.made.push(this);
  }
  emit(name: string, data: unknown): void {
    this.dispatchEvent(new MessageEvent(name, { data: JSON.stringify(data) }));
  }
  close(): void {
    this.closed = true;
  }
}

describe('a tune followed live', () => {
  beforeEach(() => {
    mocked.mockReset();
    TestSource.made = [];
  });

  it('takes each `tune` event, and stops listening at `end`', () => {
    const watcher = new TuneWatcher({
      client,
      tune: tune(),
      vocabulary: () => vocabulary(),
      eventSource: TestSource as unknown as new (url: string) => EventSource
    });
    const seen: ITune[] = [];
    watcher.changed.connect((_, t) => seen.push(t));
    watcher.start();
    const [source] = TestSource.made;
    expect(source.url).toBe(
      'http://127.0.0.1:8888/cellpipe/api/tunes/t1/events?token=secret'
    );

    source.emit('tune', tune({ trials: [trial(1, 0.5)] }));
    source.emit('tune', tune({ status: 'Succeeded', trials: [trial(1, 0.5)] }));
    source.emit('end', {});

    expect(seen.map(t => t.status)).toEqual(['Running', 'Succeeded']);
    expect(watcher.finished).toBe(true);
    expect(source.closed).toBe(true);
    expect(mocked).not.toHaveBeenCalled();
    watcher.dispose();
  });

  it('polls GET /tunes/ID when the stream breaks, until the tune has ended', async () => {
    mocked
      .mockResolvedValueOnce(tune({ trials: [trial(1, 0.5)] }))
      .mockResolvedValue(tune({ status: 'Cancelled' }));
    const watcher = new TuneWatcher({
      client,
      tune: tune(),
      vocabulary: () => vocabulary(),
      eventSource: TestSource as unknown as new (url: string) => EventSource,
      pollInterval: 5
    });
    const ended = new Promise<void>(resolve =>
      watcher.changed.connect(() => watcher.finished && resolve())
    );
    watcher.start();
    TestSource.made[0].onerror?.();
    await ended;

    expect(TestSource.made[0].closed).toBe(true);
    expect(mocked.mock.calls.map(call => call[0])).toEqual([
      'tunes/t1',
      'tunes/t1'
    ]);
    expect(watcher.tune.status).toBe('Cancelled');
    watcher.dispose();
  });
});

describe('the tune and serve routes', () => {
  beforeEach(() => mocked.mockReset());

  it('are called as the REST contract says', async () => {
    mocked.mockResolvedValue({ models: [{ name: 'iris' }] });
    await client.startTune({
      path: 'iris.ipynb',
      objective: 'accuracy',
      direction: 'maximize',
      search: { epochs: '1..3' }
    });
    await client.cancelTune('t 1');
    expect(await client.runModels('r1')).toEqual([{ name: 'iris' }]);
    await client.startService({ run_id: 'r1', engine: 'local' });
    await client.predict('s1', [[1, 2]]);
    await client.stopService('s1');
    const calls = mocked.mock.calls.map(([endpoint, init]) => [
      endpoint,
      init?.method ?? 'GET',
      init?.body ? JSON.parse(String(init.body)) : null
    ]);
    expect(calls).toEqual([
      [
        'tunes',
        'POST',
        {
          path: 'iris.ipynb',
          objective: 'accuracy',
          direction: 'maximize',
          search: { epochs: '1..3' }
        }
      ],
      ['tunes/t%201/cancel', 'POST', {}],
      ['runs/r1/models', 'GET', null],
      ['services', 'POST', { run_id: 'r1', engine: 'local' }],
      ['services/s1/predict', 'POST', { instances: [[1, 2]] }],
      ['services/s1', 'DELETE', null]
    ]);
  });
});
