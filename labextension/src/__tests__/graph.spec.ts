/**
 * The pipeline view's logic: the layout drawn while compile errors exist (edges from the tags,
 * broken ones marked), and the zoom that never draws a name under the legible size.
 */
import { fitTransform, layoutDag, zoomAt, zoomLimits } from '../dag';
import { step } from './fixtures';

describe('the layout while compile errors exist', () => {
  // the compiler drops every edge when it finds a cycle: the steps come back without after
  const compiled = ['load', 'prep', 'features', 'tree', 'svm', 'results'].map(
    name => step(name)
  );
  const tagAfter = new Map<string, string[]>([
    ['load', []],
    ['prep', ['load']],
    ['features', ['prep', 'results']],
    ['tree', ['features']],
    ['svm', ['features']],
    ['results', ['tree', 'svm', 'gone']]
  ]);

  it('falls into one row without the tags (what the sidebar showed)', () => {
    const layout = layoutDag(compiled);
    expect(new Set(layout.nodes.map(n => n.y)).size).toBe(1);
  });

  it("keeps the graph laid out from the tags' after: edges", () => {
    const layout = layoutDag(compiled, { tagAfter });
    const y = Object.fromEntries(layout.nodes.map(n => [n.name, n.y]));
    expect(y.load).toBeLessThan(y.prep);
    expect(y.prep).toBeLessThan(y.features);
    expect(y.features).toBeLessThan(y.tree);
    expect(y.tree).toBe(y.svm);
  });

  it('marks the edges of the cycle and the edge from a missing step', () => {
    const layout = layoutDag(compiled, { tagAfter });
    const broken = Object.fromEntries(
      layout.edges.map(e => [`${e.from}>${e.to}`, e.broken])
    );
    expect(broken['load>prep']).toBeNull();
    expect(broken['prep>features']).toBeNull();
    expect(broken['results>features']).toMatch(/cycle/);
    expect(broken['features>tree']).toMatch(/cycle/);
    expect(broken['svm>results']).toMatch(/cycle/);
    expect(broken['gone>results']).toBe('no step is named gone');
    const missing = layout.nodes.filter(n => n.missing).map(n => n.name);
    expect(missing).toEqual(['gone']);
  });

  it('never draws a step after itself', () => {
    const layout = layoutDag([step('a')], {
      tagAfter: new Map([['a', ['a']]])
    });
    expect(layout.edges).toEqual([]);
    expect(layout.nodes.map(n => n.name)).toEqual(['a']);
  });

  it('lays out left to right when asked', () => {
    const layout = layoutDag(compiled, { tagAfter, rankdir: 'LR' });
    const x = Object.fromEntries(layout.nodes.map(n => [n.name, n.x]));
    expect(x.load).toBeLessThan(x.prep);
    expect(x.tree).toBe(x.svm);
  });

  it('makes room for the wider font and the status icon', () => {
    const name = 'logisticregression';
    const narrow = layoutDag([step(name)]).nodes[0];
    const wide = layoutDag([step(name)], { charWidth: 7.6, iconRoom: 20 })
      .nodes[0];
    expect(wide.width).toBeGreaterThanOrEqual(name.length * 7.6 + 20);
    expect(wide.width).toBeGreaterThan(narrow.width);
    expect(wide.lines[0].text).toBe(name);
  });
});

describe('zoom and fit', () => {
  const limits = zoomLimits(13, 11);

  it('stops zooming out where a 13 px name would be drawn under 11 px', () => {
    expect(limits.min * 13).toBeCloseTo(11);
    let t = { scale: 1, x: 0, y: 0 };
    for (let i = 0; i < 20; i++) {
      t = zoomAt(t, 0.5, { x: 0, y: 0 }, limits);
    }
    expect(t.scale * 13).toBeCloseTo(11);
    for (let i = 0; i < 20; i++) {
      t = zoomAt(t, 2, { x: 0, y: 0 }, limits);
    }
    expect(t.scale).toBe(limits.max);
  });

  it('keeps the point under the pointer where it is', () => {
    const t = zoomAt({ scale: 1, x: 10, y: 20 }, 2, { x: 110, y: 70 }, limits);
    // the graph point under (110, 70) was (100, 50): still there
    expect(t.scale).toBe(2);
    expect(100 * t.scale + t.x).toBeCloseTo(110);
    expect(50 * t.scale + t.y).toBeCloseTo(70);
  });

  it('fits a small graph at 100 %, centred', () => {
    const t = fitTransform(
      { width: 200, height: 100 },
      { width: 600, height: 400 },
      limits
    );
    expect(t).toEqual({ scale: 1, x: 200, y: 150 });
  });

  it('shrinks a big graph to fit, but not below the legible scale', () => {
    const fits = fitTransform(
      { width: 1000, height: 300 },
      { width: 932, height: 600 },
      limits
    );
    expect(fits.scale).toBeCloseTo(0.9);
    const tooBig = fitTransform(
      { width: 3000, height: 300 },
      { width: 600, height: 600 },
      limits
    );
    expect(tooBig.scale).toBeCloseTo(limits.min);
    expect(tooBig.x).toBe(16); // shown from its left edge, to pan from there
  });
});

describe('compact nodes (the pipeline view)', () => {
  it('sizes a node by its name and cuts the longer lines to it', () => {
    const wide = step('svm', {
      receives: ['features', 'labels', 'weights', 'more_values'],
      hands_on: ['acc_linear_svc']
    });
    const full = layoutDag([wide]).nodes[0];
    const compact = layoutDag([wide], { compact: true }).nodes[0];
    expect(compact.width).toBeLessThan(full.width);
    expect(compact.lines[0].text).toBe('svm');
    const room = Math.floor((compact.width - 20) / 6.6);
    for (const line of compact.lines) {
      expect(line.text.length).toBeLessThanOrEqual(room);
    }
    expect(compact.lines[1].text.endsWith('…')).toBe(true);
  });
});
