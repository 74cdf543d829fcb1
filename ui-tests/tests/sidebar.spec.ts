/**
 * The sidebar, as a person uses it: open the example notebook, tag a cell as a new step with
 * a GPU, watch the DAG and the cell's problems follow, run the pipeline locally, watch it
 * succeed, read its metrics and a step's log; the same panel in the dark theme.
 */
import { expect, Locator, Page, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.CELLPIPE_LAB_TOKEN ?? '';
const artifacts =
  process.env.CELLPIPE_ARTIFACTS ??
  path.join(__dirname, '..', '..', 'test-artifacts', 'ui');
const NOTEBOOK = 'iris_cellpipe.ipynb';

async function shot(locator: Locator | Page, name: string): Promise<void> {
  await locator.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

/** The cell whose nbformat id is `id` (the example's cells have readable ids). */
function cellById(page: Page, id: string): Locator {
  return page.locator(`.jp-Notebook .jp-Cell[data-cp-cell-id="${id}"]`);
}

test('tag a new GPU step, see the DAG change, run it locally and read its metrics', async ({
  page
}) => {
  // Given the example notebook open in JupyterLab, and the cellpipe sidebar shown
  await page.goto(`lab/tree/${NOTEBOOK}?token=${token}&reset`);
  await expect(
    page.locator('.jp-NotebookPanel .jp-Cell').first()
  ).toBeVisible();
  const tab = page.locator('.jp-SideBar [data-id="cellpipe-sidebar"]');
  await expect(tab).toBeVisible();
  await tab.click();
  const sidebar = page.locator('#cellpipe-sidebar');
  await expect(sidebar).toBeVisible();
  // a wider left area than JupyterLab's default, as a person would drag it for the graph
  const handle = page
    .locator('#jp-main-split-panel > .lm-SplitPanel-handle')
    .first();
  const box = (await handle.boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 150, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  const status = sidebar.locator('.cp-Pipeline .cp-Status');
  await expect(status).toHaveText(/iris-demo: 4 steps · 5 parameters/);
  const dag = sidebar.locator('.cp-StepList');
  for (const step of ['load data', 'split', 'train', 'evaluate']) {
    await expect(dag.locator(`[data-step="${step}"]`)).toBeVisible();
  }
  await expect(dag.locator('[data-step="report"]')).toHaveCount(0);
  // the cells show their steps
  await expect(
    cellById(page, 'train-report').locator('.cp-CellLabel')
  ).toHaveText('cell 9 · step: train');
  await shot(sidebar, '01-sidebar-example');

  // When the cell that reports the training accuracy becomes a step of its own, with a GPU
  await cellById(page, 'train-report').locator('.jp-InputPrompt').click();
  const editor = sidebar.locator('.cp-StepEditor');
  await expect(editor.locator('.cp-Where')).toHaveText(
    /Cell 9 continues step train/
  );
  await editor.getByLabel('Cell role').selectOption('step');
  await editor.getByLabel('Step name').fill('report');
  await editor.getByLabel('Number of GPUs').fill('1');
  // a new step starts after the step above, as this notebook orders its steps with after:
  await expect(editor.locator('.cp-Tags')).toContainText(
    'step:report after:train gpu:1'
  );
  // (here it is taken off, to see what a step that starts at the beginning gets)
  await editor.getByLabel('Runs after step train').uncheck();
  await expect(editor.locator('.cp-Tags')).toContainText('step:report gpu:1');
  await editor.getByRole('button', { name: /Apply the step settings/ }).click();

  // Then the DAG has the step, with its GPU badge and what it receives ...
  const report = dag.locator('[data-step="report"]');
  await expect(report).toBeVisible();
  await expect(report).toContainText('1 GPU');
  await expect(
    cellById(page, 'train-report').locator('.cp-CellLabel')
  ).toHaveText('cell 9 · step: report');
  // ... and, as it starts at the beginning, the compile error is on the cell, as the CLI says it
  const problem = cellById(page, 'train-report').locator(
    '.cp-CellProblems .cp-Problem-error'
  );
  await expect(problem.first()).toContainText("cell 9 (step 'report')");
  await expect(report).toHaveClass(/cp-mod-error/);
  await shot(sidebar, '02-new-step-with-error');

  // When it runs after train
  await editor.getByLabel('Runs after step train').check();
  await expect(editor.locator('.cp-Tags')).toContainText(
    'step:report after:train gpu:1'
  );
  await editor.getByRole('button', { name: /Apply the step settings/ }).click();

  // Then the problem is gone and the DAG shows the edge and the values it receives
  await expect(status).toHaveText(/iris-demo: 5 steps · 5 parameters/);
  await expect(problem).toHaveCount(0);
  await expect(report).not.toHaveClass(/cp-mod-error/);
  await expect(report).toContainText('← ');
  await expect(report).toHaveAttribute('aria-label', /after train; receives/);
  await shot(sidebar, '03-new-gpu-step');

  // And the step list is keyboard reachable: Enter on a step selects its first cell
  await dag.locator('[data-step="split"]').focus();
  await page.keyboard.press('Enter');
  await expect(editor.locator('.cp-Where')).toHaveText(/begins step split/);

  // When the pipeline runs locally, with a parameter changed in the Run dialog
  await sidebar.getByRole('button', { name: 'Run', exact: true }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.getByLabel('Engine')).toHaveValue('local');
  const epochs = dialog.getByLabel('Parameter epochs (int)');
  await expect(epochs).toHaveValue('20');
  await epochs.fill('30');
  await expect(dialog).toContainText('none here: runs on the CPU');
  await shot(dialog.locator('.jp-Dialog-content'), '04-run-dialog');
  await dialog.getByRole('button', { name: 'Start the run' }).click();

  // Then the run shows up, is followed live, and succeeds with every step
  const run = sidebar.locator('.cp-Run').first();
  await expect(run).toHaveAttribute('data-status', 'Succeeded', {
    timeout: 120_000
  });
  for (const step of ['load data', 'split', 'train', 'report', 'evaluate']) {
    await expect(
      run.locator(`.cp-StepTable tr[data-step="${step}"]`)
    ).toHaveAttribute('data-status', 'Succeeded');
  }
  // And its metrics are shown
  await expect(
    run.locator('.cp-Metrics [data-metric="accuracy"] td')
  ).toHaveText(/^0?\.\d+|^1$/);
  await expect(run.locator('.cp-Metrics [data-metric="n_test"] td')).toHaveText(
    '50'
  );
  await expect(run.locator('.cp-Params')).toContainText('epochs');
  await expect(dag.locator('[data-step="report"]')).toHaveClass(
    /cp-status-Succeeded/
  );
  await run.locator('.cp-Metrics').scrollIntoViewIfNeeded();
  await shot(sidebar, '05-run-succeeded');

  // And a step's log opens in a panel
  await run
    .getByRole('button', { name: 'Show the log of step report' })
    .click();
  const log = page.locator('.cp-LogView').last();
  await expect(log.locator('.cp-LogText')).toContainText('train accuracy:');
  await shot(page, '06-lab-with-log');

  // The same panel in the dark theme
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('apputils:change-theme', {
      theme: 'JupyterLab Dark'
    })
  );
  await expect(page.locator('body')).toHaveAttribute(
    'data-jp-theme-light',
    'false'
  );
  await shot(sidebar, '07-sidebar-dark');
  await shot(page, '08-lab-dark');
});
