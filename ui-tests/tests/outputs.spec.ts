/**
 * What a run gives back, as a person sees it: run a notebook whose step draws a matplotlib
 * figure and displays a DataFrame, see the figure and the table in the sidebar's run view
 * (JupyterLab's own renderers, untrusted: a script in an HTML output does not run), open the
 * executed notebook as a read-only notebook, and load a failed step's inputs into the kernel.
 *
 * tests/ui/test_sidebar.py writes plots.ipynb into the server's root and runs this file.
 */
import { expect, Locator, Page, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.CELLPIPE_LAB_TOKEN ?? '';
const artifacts =
  process.env.CELLPIPE_OUTPUTS_ARTIFACTS ??
  path.join(__dirname, '..', '..', 'test-artifacts', 'ui', 'outputs');
const NOTEBOOK = 'plots.ipynb';

async function shot(locator: Locator | Page, name: string): Promise<void> {
  await locator.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

test('see a step draw a figure in the run view, open the executed notebook, debug the failed step', async ({
  page
}) => {
  // Given the notebook open in JupyterLab, its kernel started, and the sidebar shown
  await page.goto(`lab/tree/${NOTEBOOK}?token=${token}&reset`);
  const notebook = page.locator('.jp-NotebookPanel').first();
  await expect(notebook.locator('.jp-Cell').first()).toBeVisible();
  await expect(
    page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
  ).toBeVisible({ timeout: 60_000 });
  await page.locator('.jp-SideBar [data-id="cellpipe-sidebar"]').click();
  const sidebar = page.locator('#cellpipe-sidebar');
  await expect(sidebar).toBeVisible();
  // a wider left area, and the runs given the room, as a person reading outputs would have it
  const handle = page
    .locator('#jp-main-split-panel > .lm-SplitPanel-handle')
    .first();
  const box = (await handle.boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 250, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await expect(sidebar.locator('.cp-Pipeline .cp-Status')).toHaveText(
    /squares: 2 steps/
  );

  // When it runs here
  await sidebar.getByRole('button', { name: 'Run', exact: true }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.getByLabel('Engine')).toHaveValue('local');
  await dialog.getByRole('button', { name: 'Start the run' }).click();

  // Then it ends, the first step done and the second failed
  const run = sidebar.locator('.cp-Run').first();
  await expect(run).toHaveAttribute('data-status', 'Failed', {
    timeout: 120_000
  });
  await expect(
    run.locator('.cp-StepTable tr[data-step="draw"]')
  ).toHaveAttribute('data-status', 'Succeeded');
  await expect(
    run.locator('.cp-StepTable tr[data-step="check total"]')
  ).toHaveAttribute('data-status', 'Failed');

  // And the notebook shows where: the failed cell's red edge and the error under it, its
  // number in its step label, and each `cell N` of the traceback a link to that cell
  const failed = notebook.locator('.jp-Cell[data-cp-cell-id="cell-3"]');
  await expect(failed).toHaveClass(/cp-Cell-failed/);
  await expect(notebook.locator('.jp-Cell.cp-Cell-failed')).toHaveCount(1);
  await expect(failed.locator('.cp-CellLabel')).toHaveText(
    'cell 4 · step: check total'
  );
  const failure = failed.locator('.cp-CellFailure');
  await expect(failure).toContainText('failed here, in step check total');
  await expect(failure).toContainText('total is 14, not 15');
  await failure.locator('summary').click();
  const link = failure.locator('.cp-CellTraceback .cp-CellLink', {
    hasText: 'cell 4'
  });
  await expect(link.first()).toBeVisible();
  await notebook
    .locator('.jp-Cell[data-cp-cell-id="cell-1"] .jp-InputPrompt')
    .click();
  await expect(failed).not.toHaveClass(/jp-mod-active/);
  await link.first().click();
  await expect(failed).toHaveClass(/jp-mod-active/);
  // the same link in the run's step table
  await expect(
    run.locator('.cp-StepTable tr[data-step="check total"] .cp-StepError')
  ).toContainText('total is 14, not 15');
  await shot(page, '00-failed-cell');

  for (const section of ['Cell', 'Pipeline']) {
    await sidebar
      .locator('.lm-AccordionPanel-title', { hasText: section })
      .click();
  }

  // And the step's outputs are there, rendered as the notebook renders them
  const draw = run.locator('.cp-StepOutputs[data-step="draw"]');
  await expect(draw.locator('summary')).toContainText('draw');
  await draw.locator('summary').click();
  const figure = draw.locator('.jp-RenderedImage img');
  await expect(figure).toBeVisible();
  await expect(figure).toHaveAttribute('src', /^data:image\/png;base64,/);
  expect(
    await figure.evaluate(img => (img as HTMLImageElement).naturalWidth)
  ).toBeGreaterThan(100);
  const table = draw.locator('.jp-RenderedHTMLCommon table').first();
  await expect(table).toContainText('squared');
  await expect(table.locator('tbody tr')).toHaveCount(3);
  // untrusted: the HTML is there, its script neither kept nor run
  await expect(draw.locator('b.cp-test-bold')).toHaveText('bold');
  await expect(draw.locator('script')).toHaveCount(0);
  expect(await page.title()).not.toContain('script ran');
  // and the failed step shows its error as the notebook would
  const check = run.locator('.cp-StepOutputs[data-step="check total"]');
  await check.locator('summary').click();
  await expect(check.locator('.jp-OutputArea-output')).toContainText([
    'total: 14',
    /AssertionError: total is 14, not 15/
  ]);
  await figure.scrollIntoViewIfNeeded();
  await shot(sidebar, '01-run-outputs');

  // When the executed notebook is opened
  const runId = (await run.getAttribute('data-run-id'))!;
  await run.getByRole('button', { name: /Open the executed notebook/ }).click();

  // Then it opens as a read-only notebook, without a kernel, with the figure in its cell
  const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', {
    hasText: `run ${runId}`
  });
  await expect(tab).toBeVisible();
  const executed = page.locator('.jp-NotebookPanel:visible');
  await expect(executed.locator('.jp-NotebookPanel-toolbar')).toContainText(
    'notebook is read-only'
  );
  await expect(
    executed.locator('.jp-Cell .jp-RenderedImage img').first()
  ).toBeVisible();
  await expect(
    executed.locator('.jp-Cell .jp-RenderedHTMLCommon table').first()
  ).toContainText('squared');
  await expect(executed.locator('.jp-OutputArea-output').last()).toContainText(
    'AssertionError'
  );
  await expect(
    executed.locator('.jp-NotebookPanel-toolbar .jp-KernelName')
  ).toContainText('No Kernel');
  // and the sidebar stays on the notebook it was showing (the record is no pipeline)
  await expect(sidebar.locator('.cp-Notebook')).toHaveText(NOTEBOOK);
  await expect(run).toHaveAttribute('data-run-id', runId);
  await shot(page, '02-executed-notebook');

  // When the failed step is debugged in the kernel of the notebook
  await page
    .locator('.lm-DockPanel-tabBar .lm-TabBar-tab', { hasText: NOTEBOOK })
    .click();
  const debug = run.getByRole('button', {
    name: "Debug step check total in the notebook's kernel"
  });
  await expect(debug).toBeVisible();
  await expect(
    run.getByRole('button', { name: /Debug step draw/ })
  ).toHaveCount(0); // only a failed step offers it
  await debug.click();

  // Then the kernel has the values the step received, and says which cell failed
  const result = run.locator('.cp-DebugRow[data-debug-step="check total"]');
  await expect(result).toContainText(`%cellpipe debug ${runId} "check total"`);
  await expect(result.locator('.cp-Outputs')).toContainText('table');
  await expect(result.locator('.cp-Outputs')).toContainText('DataFrame');
  await expect(result).toContainText('re-run the failed cell');
  await result.scrollIntoViewIfNeeded();
  await shot(sidebar, '03-debug-in-kernel');
});
