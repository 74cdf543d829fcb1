/**
 * Tuning, as a person does it from the sidebar: open the example notebook, ask for a grid
 * over `epochs` in the Tune dialog, watch the trials arrive in the tune's view (the table,
 * the objective per trial as a chart, which steps each trial ran), and write the best value
 * into the parameters cell.
 *
 * tests/ui/test_tune_serve.py starts the server (the real routes, nothing mocked) and runs
 * this file; its screenshots go to CELLPIPE_TUNE_ARTIFACTS.
 */
import { expect, Locator, Page, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.CELLPIPE_LAB_TOKEN ?? '';
const artifacts =
  process.env.CELLPIPE_TUNE_ARTIFACTS ??
  path.join(__dirname, '..', '..', 'test-artifacts', 'ui', 'tune');
const NOTEBOOK = 'iris_cellpipe.ipynb';
const GRID = ['5', '20', '40'];

async function shot(locator: Locator | Page, name: string): Promise<void> {
  await locator.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

test('tune epochs over a grid, follow the trials, write the best value into the parameters cell', async ({
  page
}) => {
  // Given the example notebook open, and the cellpipe sidebar shown
  await page.goto(`lab/tree/${NOTEBOOK}?token=${token}&reset`);
  await expect(
    page.locator('.jp-NotebookPanel .jp-Cell').first()
  ).toBeVisible();
  await page.locator('.jp-SideBar [data-id="cellpipe-sidebar"]').click();
  const sidebar = page.locator('#cellpipe-sidebar');
  await expect(sidebar.locator('.cp-Pipeline .cp-Status')).toHaveText(
    /iris-demo: 4 steps · 5 parameters/
  );

  // When the Tune dialog asks for a grid over epochs, two trials at a time
  await sidebar.getByRole('button', { name: /Tune/ }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.getByLabel('Objective metric')).toHaveValue('accuracy');
  await expect(dialog.getByLabel('Direction')).toHaveValue('maximize');
  // each parameter shows its default beside its range field
  await expect(dialog.locator('tr[data-parameter="epochs"] code')).toHaveText(
    '20'
  );
  await dialog.getByLabel('Algorithm').selectOption('grid');
  // a float range without a step is said to be wrong for a grid before anything is sent
  const rate = dialog.getByLabel('Range of learning_rate (float)');
  await rate.fill('0.01..0.5');
  await expect(
    dialog.locator('tr[data-parameter="learning_rate"] .cp-FieldProblem')
  ).toContainText('a grid over a float range needs its step');
  await rate.fill('');
  await dialog.getByLabel('Range of epochs (int)').fill(GRID.join(','));
  await dialog.locator('#cp-tune-parallel').fill('2');
  await shot(dialog.locator('.jp-Dialog-content'), '01-tune-dialog');
  const unsaved = await page
    .locator('.lm-TabBar-tab.jp-mod-dirty', { hasText: NOTEBOOK })
    .count();
  await dialog.getByRole('button', { name: 'Start the tune' }).click();
  if (unsaved) {
    // the tune runs the notebook as saved: with unsaved changes it asks to save first
    await page
      .locator('.jp-Dialog')
      .getByRole('button', { name: 'Save and tune' })
      .click();
  }

  // Then the tune's view opens and follows it until every trial has run
  const view = page.locator('.cp-TuneView .cp-Tune').last();
  await expect(view).toBeVisible();
  await expect(view).toHaveAttribute('data-status', 'Succeeded', {
    timeout: 180_000
  });
  const rows = view.locator('.cp-TrialTable tbody tr');
  await expect(rows).toHaveCount(GRID.length);
  for (let i = 0; i < GRID.length; i++) {
    await expect(rows.nth(i)).toHaveAttribute('data-status', 'Succeeded');
  }
  const tried = await rows.locator('td:nth-child(3) code').allTextContents();
  expect([...tried].sort()).toEqual([...GRID].sort());
  // the objective per trial, drawn, and the best so far
  await expect(view.locator('.cp-TuneChart circle')).toHaveCount(GRID.length);
  await expect(view.locator('.cp-TuneChart .cp-ChartBest')).toHaveAttribute(
    'd',
    /^M/
  );
  // the steps that use no tuned parameter ran in one trial at most: the others reused them
  const ran = await rows.locator('.cp-StepsRan').allTextContents();
  expect(ran.filter(text => text.includes('load data')).length).toBeLessThan(2);
  expect(ran.every(text => text.includes('train'))).toBe(true);
  const best = view.locator('.cp-TuneBest');
  await expect(best).toContainText('Best accuracy');
  const bestEpochs = (
    await best.locator('tr[data-parameter="epochs"] code').textContent()
  )?.trim();
  expect(GRID).toContain(bestEpochs);
  await shot(view, '02-tune-view');

  // When the best value is written into the parameters cell
  await best
    .getByRole('button', {
      name: 'Write the best parameters into the parameters cell'
    })
    .click();

  // Then the cell says so, its other lines as they were, and the notebook is unsaved
  await expect(page.locator('.cp-TuneView .cp-Status').last()).toContainText(
    'The best values are in the parameters cell'
  );
  const parameters = page.locator(
    '.jp-Notebook .jp-Cell[data-cp-cell-id="parameters"] .cm-content'
  );
  await expect(parameters).toContainText(`epochs = ${bestEpochs}`);
  await expect(parameters).toContainText('learning_rate = 0.1');
  await expect(parameters).toContainText('n_samples = 200');
  await shot(page, '03-best-written');
});
