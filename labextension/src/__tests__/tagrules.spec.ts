/**
 * The step editor's rules: a role change leaves no stray tag, "Runs after" offers only what
 * makes no cycle, a new step starts after the step above, and Apply keeps Kale's dialect.
 */
import {
  acyclicCandidates,
  cellLinks,
  cellMembership,
  failedCellIndex,
  ICellInfo,
  stepAbove,
  tagGraph,
  upstreamOf,
  usesAfter
} from '../steps';
import {
  CELLPIPE_DIALECT,
  changeRole,
  detectDialect,
  isKaleDialect,
  readCellSettings,
  writeCellTags
} from '../tags';

function code(id: string, tags: string[], source = 'x = 1'): ICellInfo {
  return { id, type: 'code', tags, source };
}

describe('changing a role', () => {
  it('drops after: and the step name when a step becomes a continuation', () => {
    // the story: the kept after: made the step above run after itself
    const tags = ['step:report', 'after:train', 'hide-input'];
    const draft = changeRole(readCellSettings(tags), 'continue');
    expect(writeCellTags(tags, draft)).toEqual(['hide-input']);
  });

  it("drops the step's resources too: they would move to the step above unasked", () => {
    const tags = ['step:train', 'gpu:1', 'memory:4Gi'];
    const draft = changeRole(readCellSettings(tags), 'continue');
    expect(writeCellTags(tags, draft)).toEqual([]);
  });

  it('keeps nothing of a step on a skipped or imports cell', () => {
    const tags = ['block:train', 'prev:load', 'limit:nvidia.com/gpu:1'];
    for (const role of ['skip', 'imports', 'functions'] as const) {
      const draft = changeRole(readCellSettings(tags), role);
      expect(writeCellTags(tags, draft)).toEqual([role]);
    }
  });

  it("keeps a continuing cell's resources when it stays a continuation", () => {
    const tags = ['gpu:1'];
    const draft = readCellSettings(tags);
    expect(changeRole(draft, 'continue')).toBe(draft);
    expect(writeCellTags(tags, draft)).toEqual(['gpu:1']);
  });

  it('starts a new step after the step above when one is given', () => {
    const draft = changeRole(readCellSettings([]), 'step', 'features');
    expect(draft.after).toEqual(['features']);
    expect(changeRole(readCellSettings([]), 'step').after).toEqual([]);
  });

  it('never writes after: on a cell that does not begin a step', () => {
    const settings = { ...readCellSettings([]), after: ['load'] };
    expect(writeCellTags([], settings)).toEqual([]);
  });
});

describe("the notebook's dialect", () => {
  const kale = [
    ['imports'],
    ['pipeline-parameters'],
    ['block:loaddata'],
    ['block:prep', 'prev:loaddata', 'limit:memory:2Gi'],
    ['skip']
  ];

  it("reads Kale's words where the notebook uses them", () => {
    const dialect = detectDialect(kale);
    expect(dialect).toEqual({
      step: 'block',
      after: 'prev',
      parameters: 'pipeline-parameters',
      metrics: 'metrics',
      limits: 'kale'
    });
    expect(isKaleDialect(dialect)).toBe(true);
    expect(detectDialect([['step:a'], ['step:b', 'after:a']])).toEqual(
      CELLPIPE_DIALECT
    );
  });

  it('keeps each habit of a notebook that mixes step: with prev:', () => {
    const dialect = detectDialect([['step:a'], ['step:b', 'prev:a']]);
    expect(dialect.step).toBe('step');
    expect(dialect.after).toBe('prev');
  });

  it('Apply writes block:/prev: and limit: in a Kale notebook', () => {
    const dialect = detectDialect(kale);
    const tags = ['block:prep', 'prev:loaddata', 'limit:memory:2Gi', 'mine'];
    const settings = { ...readCellSettings(tags), gpuCount: 1, cpu: '2' };
    expect(writeCellTags(tags, settings, dialect)).toEqual([
      'block:prep',
      'prev:loaddata',
      'limit:nvidia.com/gpu:1',
      'limit:cpu:2',
      'limit:memory:2Gi',
      'mine'
    ]);
    // a GPU type has no Kale spelling: cellpipe's gpu:N:TYPE says it
    const typed = { ...settings, gpuType: 'Tesla-T4' };
    expect(writeCellTags(tags, typed, dialect)).toContain('gpu:1:Tesla-T4');
    const parameters = changeRole(readCellSettings([]), 'parameters');
    expect(writeCellTags([], parameters, dialect)).toEqual([
      'pipeline-parameters'
    ]);
  });
});

describe('steps that make no cycle', () => {
  // load -> prep -> features -> (tree, svm) -> results
  const cells = [
    code('c0', ['block:load']),
    code('c1', ['block:prep', 'prev:load']),
    code('c2', ['block:features', 'prev:prep']),
    code('c3', ['block:tree', 'prev:features']),
    code('c4', ['block:svm', 'prev:features']),
    code('c5', ['block:results', 'prev:tree', 'prev:svm']),
    code('c6', [])
  ];
  const graph = tagGraph(cells);
  const steps = ['load', 'prep', 'features', 'tree', 'svm', 'results'];

  it('reads the after: graph from the tags', () => {
    expect(graph.get('results')).toEqual(['tree', 'svm']);
    expect([...upstreamOf('results', graph)].sort()).toEqual(
      ['features', 'load', 'prep', 'svm', 'tree'].sort()
    );
    expect(usesAfter(cells)).toBe(true);
    expect(usesAfter([code('a', ['step:a']), code('b', ['step:b'])])).toBe(
      false
    );
  });

  it('offers a step only what does not already run after it', () => {
    // features may not run after tree, svm or results (they run after it), nor itself
    const own = new Map(graph);
    own.delete('features');
    expect(acyclicCandidates(['features'], steps, own)).toEqual([
      'load',
      'prep'
    ]);
    own.set('features', []);
    expect(acyclicCandidates(['load'], steps, graph)).toEqual([]);
    expect(acyclicCandidates(['results'], steps, graph)).toEqual([
      'load',
      'prep',
      'features',
      'tree',
      'svm'
    ]);
  });

  it('knows the step above a cell', () => {
    const membership = cellMembership(cells);
    expect(stepAbove(membership, 'c3')).toBe('features');
    expect(stepAbove(membership, 'c6')).toBe('results');
    expect(stepAbove(membership, 'c0')).toBeNull();
  });
});

describe('cell N in messages', () => {
  it('splits a traceback into text and links to cells', () => {
    expect(
      cellLinks('File "titanic.ipynb, cell 61", line 3, in cell 9x')
    ).toEqual([
      'File "titanic.ipynb, ',
      { cell: 61, text: 'cell 61' },
      '", line 3, in cell 9x'
    ]);
    expect(cellLinks('no cells here')).toEqual(['no cells here']);
  });

  it("finds the failed cell from the notebook's frame of the traceback", () => {
    const trace =
      'Traceback (most recent call last):\n' +
      '  File "plots.ipynb, cell 4", line 3, in <module>\n' +
      '  File "plots.ipynb, cell 2", line 5, in helper\n' +
      'AssertionError: total is 14, not 15';
    expect(failedCellIndex(trace)).toBe(3);
    expect(failedCellIndex('cell 7 failed: boom')).toBe(6);
    expect(failedCellIndex('the step was killed')).toBeNull();
    expect(failedCellIndex(null)).toBeNull();
  });
});
