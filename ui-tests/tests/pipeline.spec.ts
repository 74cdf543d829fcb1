/**
 * The pipeline view and the step editor with a Kale notebook of the titanic example's shape
 * (9 steps, 5 of them in parallel), at JupyterLab's default sidebar width: open the graph
 * beside the notebook, read its names (their rendered size asserted), zoom, pan and click a
 * step to its cell; switch a step to "Continues the cell above" and back (no stray tag, the
 * graph still laid out while errors exist, Kale's `block:`/`prev:` kept); the Run dialog says
 * the notebook has unsaved changes and saves it first; the run's status on the nodes; one log
 * panel for the run's log and a step's.
 *
 * tests/ui/test_pipeline_view.py copies examples/titanic_kale.ipynb into the server's root.
 */
import { expect, Locator, Page, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.CELLPIPE_LAB_TOKEN ?? '';
const artifacts =
  process.env.CELLPIPE_PIPELINE_ARTIFACTS ??
  path.join(__dirname, '..', '..', 'test-artifacts', 'ui', 'pipeline');
const NOTEBOOK = 'titanic_kale.ipynb';
const STEPS = [
  'loaddata',
  'datapreprocessing',
  'featureengineering',
  'naivebayes',
  'logisticregression',
  'randomforest',
  'svm',
  'decisiontree',
  'results'
];
/** The least size a step's name may be drawn at on screen (PipelineGraph.tsx MIN_FONT_PX). */
const MIN_NAME_PX = 11;

async function shot(locator: Locator | Page, name: string): Promise<void> {
  await locator.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

/** The size each step's name is drawn at on screen: its font size times the zoom. */
async function renderedNameSizes(view: Locator): Promise<number[]> {
  return view.locator('.cp-GraphText-name').evaluateAll(nodes =>
    nodes.map(node => {
      const matrix = (node as SVGGraphicsElement).getScreenCTM()!;
      const font = parseFloat(getComputedStyle(node).fontSize);
      return font * Math.hypot(matrix.a, matrix.b);
    })
  );
}

/** A point of the view with no step under it (where a drag pans). */
async function blankPoint(view: Locator): Promise<{ x: number; y: number }> {
  return view.evaluate(node => {
    const box = node.getBoundingClientRect();
    for (let y = box.bottom - 8; y > box.top; y -= 17) {
      for (let x = box.left + 8; x < box.right; x += 23) {
        const hit = document.elementFromPoint(x, y);
        if (hit && node.contains(hit) && !hit.closest('.cp-GraphNode')) {
          return { x, y };
        }
      }
    }
    throw new Error('no blank point in the pipeline view');
  });
}

/** The tags of the notebook's cell `id`, as the notebook model holds them (unsaved included). */
async function tagsOf(page: Page, id: string): Promise<string[]> {
  return page.evaluate(cellId => {
    const app = (window as any).jupyterapp;
    const panel = Array.from(app.shell.widgets('main')).find((widget: any) =>
      widget.context?.path?.endsWith('titanic_kale.ipynb')
    ) as any;
    const cells = panel.content.model.cells;
    for (let i = 0; i < cells.length; i++) {
      if (cells.get(i).id === cellId) {
        return cells.get(i).getMetadata('tags') ?? [];
      }
    }
    throw new Error(`no cell ${cellId}`);
  }, id);
}

test('the pipeline view of a 9-step Kale notebook, the step editor, the Run dialog and the logs', async ({
  page
}) => {
  // Given the notebook open, the sidebar shown at JupyterLab's default width
  await page.goto(`lab/tree/${NOTEBOOK}?token=${token}&reset`);
  const notebook = page.locator('.jp-NotebookPanel').first();
  await expect(notebook.locator('.jp-Cell').first()).toBeVisible();
  await page.locator('.jp-SideBar [data-id="cellpipe-sidebar"]').click();
  const sidebar = page.locator('#cellpipe-sidebar');
  await expect(sidebar).toBeVisible();
  const status = sidebar.locator('.cp-Pipeline .cp-Status');
  await expect(status).toHaveText(/titanic-ml: 9 steps/);
  // the sidebar keeps a compact list of the steps, nothing in it scrolls sideways
  const list = sidebar.locator('.cp-StepList');
  for (const name of STEPS) {
    await expect(list.locator(`[data-step="${name}"]`)).toBeVisible();
  }
  for (const section of await sidebar.locator('.cp-Section').all()) {
    const overflow = await section.evaluate(
      node => node.scrollWidth - node.clientWidth
    );
    expect(overflow).toBeLessThanOrEqual(1);
  }
  await shot(sidebar, '01-sidebar-steps');

  // When the pipeline view is opened beside the notebook
  await sidebar
    .getByRole('button', { name: 'Open the pipeline view beside the notebook' })
    .click();
  const graph = page.locator('.cp-PipelinePanel .cp-GraphView');
  await expect(graph).toBeVisible();
  await expect(notebook).toBeVisible();

  // Then every step is drawn, with its name at a readable size
  await expect(graph.locator('.cp-GraphNode')).toHaveCount(9);
  const edges = graph.locator('.cp-GraphEdge');
  await expect(edges).toHaveCount(12);
  for (const name of STEPS) {
    await expect(
      graph.locator(`.cp-GraphNode[data-step="${name}"] .cp-GraphText-name`)
    ).toHaveText(name);
  }
  const fitted = await renderedNameSizes(graph);
  expect(Math.min(...fitted)).toBeGreaterThanOrEqual(MIN_NAME_PX - 0.01);
  console.log(`names at fit: ${fitted[0].toFixed(2)} px`);
  await shot(page, '02-pipeline-view');

  // When zoomed out as far as it goes, the names are still drawn at 11 px at least
  const zoomOut = page.getByRole('button', { name: 'Zoom out' });
  for (let i = 0; i < 8; i++) {
    await zoomOut.click();
  }
  const smallest = await renderedNameSizes(graph);
  expect(Math.min(...smallest)).toBeGreaterThanOrEqual(MIN_NAME_PX - 0.01);
  console.log(`names zoomed out: ${smallest[0].toFixed(2)} px`);
  const least = Number(await graph.getAttribute('data-scale'));
  // and zooming in (button, then the wheel) makes them bigger
  await page.getByRole('button', { name: 'Zoom in' }).click();
  await expect(graph).not.toHaveAttribute('data-scale', least.toFixed(3));
  const afterButton = Number(await graph.getAttribute('data-scale'));
  const box = (await graph.boundingBox())!;
  await page.mouse.move(box.x + 20, box.y + box.height - 20);
  await page.mouse.wheel(0, -300);
  await expect
    .poll(async () => Number(await graph.getAttribute('data-scale')))
    .toBeGreaterThan(afterButton);
  const zoomed = await renderedNameSizes(graph);
  expect(zoomed[0]).toBeGreaterThan(smallest[0]);
  // and a drag on the background pans the graph
  const node = graph.locator('.cp-GraphNode[data-step="loaddata"]');
  const before = (await node.boundingBox())!;
  const blank = await blankPoint(graph);
  await page.mouse.move(blank.x, blank.y);
  await page.mouse.down();
  await page.mouse.move(blank.x + 60, blank.y + 30, { steps: 4 });
  await page.mouse.up();
  const after = (await node.boundingBox())!;
  expect(after.x - before.x).toBeGreaterThan(50);
  expect(after.y - before.y).toBeGreaterThan(20);
  // Fit shows it whole again
  await page
    .getByRole('button', { name: 'Fit the pipeline in the view' })
    .click();
  await expect(graph).toHaveAttribute('data-scale', /.+/);

  // When a step's node is clicked, its cell is the notebook's active cell, and the node is
  // highlighted as the active cell's step
  const svmNode = graph.locator('.cp-GraphNode[data-step="svm"]');
  await svmNode.click();
  const svmCell = notebook.locator('.jp-Cell[data-cp-cell-id="svm"]');
  await expect(svmCell).toHaveClass(/jp-mod-active/);
  await expect(svmNode).toHaveClass(/cp-mod-selected/);
  await expect(svmCell.locator('.cp-CellLabel')).toHaveText(
    'cell 13 · step: svm'
  );
  await shot(page, '03-click-to-cell');

  // When the feature step's cell is switched to "Continues the cell above"
  const features = notebook.locator(
    '.jp-Cell[data-cp-cell-id="featureengineering"]'
  );
  await features.locator('.jp-InputPrompt').click();
  const editor = sidebar.locator('.cp-StepEditor');
  await expect(editor.locator('.cp-Where')).toHaveText(
    /Cell 8 begins step featureengineering/
  );
  // "Runs after" offers only the steps that make no cycle
  await expect(
    editor.getByLabel('Runs after step datapreprocessing')
  ).toBeChecked();
  await expect(editor.getByLabel('Runs after step loaddata')).toBeVisible();
  for (const later of STEPS.slice(3)) {
    await expect(editor.getByLabel(`Runs after step ${later}`)).toHaveCount(0);
  }
  await editor.getByLabel('Cell role').selectOption('continue');
  await expect(editor.locator('fieldset.cp-After')).toHaveCount(0);
  await expect(editor.locator('.cp-Tags')).toHaveText('Tags: (none)');
  await editor.getByRole('button', { name: /Apply the step settings/ }).click();

  // Then the cell keeps no tag (no prev: left behind to make a cycle) ...
  expect(await tagsOf(page, 'featureengineering')).toEqual([]);
  await expect(status).toHaveText(/error/);
  await expect(
    page.locator('.cp-CellProblems li', { hasText: 'cycle' })
  ).toHaveCount(0);
  // ... and the graph stays laid out, the edges from the step that is gone marked broken
  const missing = graph.locator(
    '.cp-GraphNode.cp-mod-missing[data-step="featureengineering"]'
  );
  await expect(missing).toBeVisible();
  await expect(graph.locator('.cp-GraphEdge.cp-mod-broken')).toHaveCount(5);
  const rows = await graph
    .locator('.cp-GraphNode')
    .evaluateAll(nodes =>
      nodes.map(n => n.getBoundingClientRect().top.toFixed(0))
    );
  expect(new Set(rows).size).toBeGreaterThan(2);
  await shot(page, '04-errors-still-laid-out');

  // When it begins its step again: it starts after the step above, in Kale's words
  await editor.getByLabel('Cell role').selectOption('step');
  await editor.getByLabel('Step name').fill('featureengineering');
  await expect(editor.locator('.cp-Tags')).toHaveText(
    'Tags: block:featureengineering prev:datapreprocessing'
  );
  await editor.getByRole('button', { name: /Apply the step settings/ }).click();

  // Then the notebook is as it was, its tags in Kale's dialect
  expect(await tagsOf(page, 'featureengineering')).toEqual([
    'block:featureengineering',
    'prev:datapreprocessing'
  ]);
  await expect(status).toHaveText(/titanic-ml: 9 steps · 2 parameters/);
  await expect(status).not.toHaveText(/error/);
  await expect(graph.locator('.cp-GraphEdge.cp-mod-broken')).toHaveCount(0);
  await expect(edges).toHaveCount(12);
  // a resource set on a Kale step is written as Kale would not refuse it either
  await svmCell.locator('.jp-InputPrompt').click();
  await expect(editor.locator('.cp-Where')).toHaveText(/begins step svm/);
  await editor.getByLabel('Memory').fill('1Gi');
  await expect(editor.locator('.cp-Tags')).toHaveText(
    'Tags: block:svm prev:featureengineering memory:1Gi'
  );
  await editor.getByRole('button', { name: /Apply the step settings/ }).click();
  await expect
    .poll(() => tagsOf(page, 'svm'))
    .toEqual(['block:svm', 'prev:featureengineering', 'memory:1Gi']);
  await shot(sidebar, '05-kale-apply');

  // When the Run dialog opens on the edited notebook, it says what runs, and offers to save
  await sidebar.getByRole('button', { name: 'Run', exact: true }).click();
  const dialog = page.locator('.jp-Dialog');
  const whatRuns = dialog.locator('.cp-WhatRuns');
  await expect(whatRuns).toContainText(`${NOTEBOOK} has unsaved changes`);
  await expect(whatRuns).toContainText('not the file on disk');
  const save = dialog.getByLabel('Save the notebook before the run');
  await expect(save).not.toBeChecked();
  await save.check();
  await shot(dialog.locator('.jp-Dialog-content'), '06-run-dialog-unsaved');
  await dialog.getByRole('button', { name: 'Start the run' }).click();

  // Then the notebook was saved, and the run's status is each node's colour and icon
  await expect(page.locator('.jp-mod-dirty')).toHaveCount(0);
  const run = sidebar.locator('.cp-Run').first();
  await expect(run).toHaveAttribute('data-status', 'Succeeded', {
    timeout: 180_000
  });
  for (const name of STEPS) {
    const done = graph.locator(`.cp-GraphNode[data-step="${name}"]`);
    await expect(done).toHaveClass(/cp-status-Succeeded/);
    await expect(done.locator('.cp-GraphStatusIcon')).toHaveText('✓');
  }
  // the times in the step table do not wrap, and nothing scrolls sideways
  const time = run.locator('.cp-StepTable tr[data-step="results"] td').nth(1);
  const height = await time.evaluate(
    node => node.getBoundingClientRect().height
  );
  const line = await time.evaluate(node =>
    parseFloat(getComputedStyle(node).lineHeight || '16')
  );
  expect(height).toBeLessThan(2 * (line || 16) + 8);
  const runs = sidebar.locator('.cp-RunsSection');
  expect(
    await runs.evaluate(node => node.scrollWidth - node.clientWidth)
  ).toBeLessThanOrEqual(1);
  await shot(page, '07-run-on-the-graph');

  // When the run's log, then a step's, is opened: one panel, reused
  await run.getByRole('button', { name: /Show the log of run/ }).click();
  const logs = page.locator('.cp-LogView');
  await expect(logs).toHaveCount(1);
  await expect(logs.locator('.cp-LogHeader')).toContainText('the whole run');
  await expect(logs.locator('.cp-LogBody')).not.toBeEmpty();
  await expect(logs.locator('.cp-LogBody')).toContainText('Succeeded');
  // each step's output in order, under its header
  await expect(logs.locator('.cp-LogSection[data-step]')).toHaveCount(9);
  expect(
    await logs
      .locator('.cp-LogSection[data-step]')
      .evaluateAll(nodes => nodes.map(n => (n as HTMLElement).dataset.step))
  ).toEqual(STEPS);
  await expect(
    logs.locator('.cp-LogSection[data-step="results"] .cp-LogText')
  ).toContainText('Random Forest');
  await shot(page, '08-run-log');
  await run
    .getByRole('button', { name: 'Show the log of step results' })
    .click();
  await expect(logs).toHaveCount(1);
  await expect(logs.locator('.cp-LogHeader')).toContainText('step results');
  await expect(logs.locator('.cp-LogText')).toContainText('Random Forest');
  await shot(page, '09-one-log-panel');
});
