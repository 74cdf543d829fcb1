import { edgePath, fit, gpuBadge, layoutDag, nodeLabel } from '../dag';
import { step } from './fixtures';

describe('layoutDag', () => {
  const steps = [
    step('load data', { hands_on: ['dataset'] }),
    step('split', {
      after: ['load data'],
      receives: ['dataset'],
      hands_on: ['train_rows', 'test_rows']
    }),
    step('train', {
      after: ['split'],
      receives: ['train_rows'],
      hands_on: ['weights'],
      resources: { gpu: { count: 2, type: 'A100', resource: null } }
    }),
    step('evaluate', {
      after: ['split', 'train'],
      receives: ['test_rows', 'weights']
    })
  ];

  it('places every step, top to bottom along the edges', () => {
    const layout = layoutDag(steps);
    const y = Object.fromEntries(layout.nodes.map(n => [n.name, n.y]));
    expect(layout.nodes).toHaveLength(4);
    expect(y['load data']).toBeLessThan(y.split);
    expect(y.split).toBeLessThan(y.train);
    expect(y.train).toBeLessThan(y.evaluate);
    expect(layout.width).toBeGreaterThan(0);
    expect(layout.height).toBeGreaterThan(0);
  });

  it('draws one edge per after, carrying the values handed along it', () => {
    const layout = layoutDag(steps);
    expect(layout.edges.map(e => [e.from, e.to, e.values])).toEqual([
      ['load data', 'split', ['dataset']],
      ['split', 'train', ['train_rows']],
      ['split', 'evaluate', ['test_rows']],
      ['train', 'evaluate', ['weights']]
    ]);
    for (const edge of layout.edges) {
      expect(edge.points.length).toBeGreaterThanOrEqual(2);
      expect(edgePath(edge.points)).toMatch(
        /^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+)+$/
      );
    }
  });

  it('shows the GPU badge and what a step receives and hands on', () => {
    const train = layoutDag(steps).nodes.find(n => n.name === 'train')!;
    expect(train.lines.map(l => [l.kind, l.text])).toEqual([
      ['name', 'train'],
      ['gpu', '2 GPUs · A100'],
      ['receives', '← train_rows'],
      ['hands_on', '→ weights']
    ]);
    expect(train.label).toBe(
      'Step train; 2 GPUs · A100; after split; receives train_rows; hands on weights'
    );
  });

  it('draws a step that does not exist as missing, its edge broken, and no self-edge', () => {
    const layout = layoutDag([step('a', { after: ['nope', 'a'] })]);
    expect(layout.edges.map(e => [e.from, e.to, e.broken])).toEqual([
      ['nope', 'a', 'no step is named nope']
    ]);
    expect(layout.nodes.map(n => [n.name, !!n.missing])).toEqual([
      ['a', false],
      ['nope', true]
    ]);
  });
});

describe('node text', () => {
  it('badges GPUs', () => {
    expect(gpuBadge(step('a'))).toBeNull();
    expect(
      gpuBadge(
        step('a', {
          resources: { gpu: { count: 1, type: null, resource: null } }
        })
      )
    ).toBe('1 GPU');
  });

  it('cuts long text with an ellipsis', () => {
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(fit('abc', 4)).toBe('abc');
    expect(nodeLabel(step('x'))).toBe('Step x');
  });
});
