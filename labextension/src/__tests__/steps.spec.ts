import {
  cellMembership,
  forPeople,
  placeLabel,
  pyRepr,
  stepColor
} from '../steps';

const code = (id: string, tags: string[] = [], source = 'x = 1') => ({
  id,
  type: 'code',
  tags,
  source
});

describe('cellMembership', () => {
  it('follows the converter: untagged cells continue the role above, skip aside', () => {
    const { cells, steps } = cellMembership([
      code('before'),
      { id: 'md', type: 'markdown', tags: [], source: '# hi' },
      code('imports', ['imports']),
      code('more-imports'),
      code('load', ['step:load data']),
      code('peek', ['skip']),
      code('load-2'),
      code('train', ['step:train', 'after:load data']),
      code('metrics', ['metrics'])
    ]);
    const byId = Object.fromEntries(cells.map(c => [c.id, c]));
    expect(steps).toEqual(['load data', 'train']);
    // code cells before any tag join the first step
    expect(byId.before).toMatchObject({ role: 'step', steps: ['load data'] });
    expect(byId.md.role).toBeNull();
    expect(byId['more-imports'].role).toBe('imports');
    expect(byId.load).toMatchObject({ steps: ['load data'], begins: true });
    expect(byId.peek.role).toBe('skip');
    expect(byId['load-2']).toMatchObject({
      steps: ['load data'],
      begins: false
    });
    expect(byId.train.steps).toEqual(['train']);
    expect(byId.metrics.role).toBe('metrics');
  });

  it('reads %%step lines', () => {
    const { steps } = cellMembership([code('a', [], '%%step prep\nx = 1')]);
    expect(steps).toEqual(['prep']);
  });

  it('leaves cells without any tag unassigned', () => {
    const { cells, steps } = cellMembership([code('a'), code('b')]);
    expect(steps).toEqual([]);
    expect(cells.map(c => c.role)).toEqual([null, null]);
  });
});

describe('labels and colours', () => {
  it('labels cells by step or role', () => {
    expect(
      placeLabel({ id: 'a', role: 'step', steps: ['x', 'y'], begins: true })
    ).toBe('x, y');
    expect(
      placeLabel({ id: 'a', role: 'imports', steps: [], begins: false })
    ).toBe('imports');
    expect(placeLabel({ id: 'a', role: null, steps: [], begins: false })).toBe(
      ''
    );
  });

  it('gives each step a colour slot by its position', () => {
    expect(stepColor('b', ['a', 'b'])).toBe(1);
    expect(stepColor('k', ['a'])).toBe(0);
    expect(stepColor('l', 'abcdefghijkl'.split(''))).toBe(1);
  });
});

describe('messages as the CLI words them', () => {
  it("quotes like Python's repr", () => {
    expect(pyRepr('train')).toBe("'train'");
    expect(pyRepr("it's")).toBe('"it\'s"');
    expect(pyRepr('a\'b"c')).toBe("'a\\'b\"c'");
  });

  it('names the cell (from 1) and the step', () => {
    expect(forPeople({ message: 'boom', cell_index: 8, step: 'report' })).toBe(
      "cell 9 (step 'report'): boom"
    );
    expect(forPeople({ message: 'boom', cell_index: null, step: 's' })).toBe(
      "step 's': boom"
    );
    expect(forPeople({ message: 'boom', cell_index: null, step: null })).toBe(
      'boom'
    );
  });
});
