/**
 * Serving, as a person does it from the sidebar: run a scikit-learn notebook whose train step
 * is tagged `model:clf`, choose "Serve…" on the finished run, serve it here, send one
 * prediction prefilled with rows the step saw, read the answer, and stop the service.
 *
 * tests/ui/test_tune_serve.py writes flowers.ipynb into the server's root, starts the server
 * with KServe's model server at hand (CELLPIPE_SERVE_PYTHON) and runs this file; nothing is
 * mocked. Screenshots go to CELLPIPE_SERVE_ARTIFACTS.
 */
import { expect, Locator, Page, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.CELLPIPE_LAB_TOKEN ?? '';
const artifacts =
  process.env.CELLPIPE_SERVE_ARTIFACTS ??
  path.join(__dirname, '..', '..', 'test-artifacts', 'ui', 'serve');
const NOTEBOOK = 'flowers.ipynb';

async function shot(locator: Locator | Page, name: string): Promise<void> {
  await locator.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

test('serve the model of a run, send a prediction of the sample rows, stop it', async ({
  page
}) => {
  // Given the notebook open and run here from the sidebar
  await page.goto(`lab/tree/${NOTEBOOK}?token=${token}&reset`);
  await expect(
    page.locator('.jp-NotebookPanel .jp-Cell').first()
  ).toBeVisible();
  await page.locator('.jp-SideBar [data-id="cellpipe-sidebar"]').click();
  const sidebar = page.locator('#cellpipe-sidebar');
  await expect(sidebar.locator('.cp-Pipeline .cp-Status')).toHaveText(
    /flowers: 2 steps/
  );
  await sidebar.getByRole('button', { name: 'Run', exact: true }).click();
  await page
    .locator('.jp-Dialog')
    .getByRole('button', { name: 'Start the run' })
    .click();
  const run = sidebar.locator('.cp-Run').first();
  await expect(run).toHaveAttribute('data-status', 'Succeeded', {
    timeout: 180_000
  });

  // When its model is served here
  const serve = run.getByRole('button', { name: /Serve the model of run/ });
  await expect(serve).toBeVisible();
  await serve.click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.getByLabel('Model', { exact: true })).toHaveValue('clf');
  await expect(dialog.getByLabel('Model', { exact: true })).toContainText(
    'sklearn, step train'
  );
  await expect(dialog.getByLabel('Serving engine')).toHaveValue('local');
  await shot(dialog.locator('.jp-Dialog-content'), '01-serve-dialog');
  await dialog.getByRole('button', { name: 'Start serving the model' }).click();

  // Then its panel says when it is ready, with the rows the step saw to send
  const service = page.locator('.cp-ServiceView .cp-Service').last();
  await expect(service).toHaveAttribute('data-status', 'Ready', {
    timeout: 120_000
  });
  await expect(service.locator('.cp-ServiceUrl')).toContainText('127.0.0.1');
  const rows = service.getByLabel('Rows to predict (JSON)');
  const sent = JSON.parse(await rows.inputValue()) as unknown[];
  expect(sent.length).toBeGreaterThan(0);

  // When one prediction is sent
  await service
    .getByRole('button', { name: 'Send the prediction request' })
    .click();

  // Then each row has its class
  const answers = service.locator('.cp-Predictions .cp-Prediction');
  await expect(answers).toHaveCount(sent.length);
  for (const answer of await answers.allTextContents()) {
    expect(['0', '1', '2']).toContain(answer);
  }
  await shot(page, '02-prediction');

  // And a row the person typed gets its answer too; text that is no JSON is said so
  await rows.fill('[[5.1, 3.5, 1.4, 0.2]]');
  await service
    .getByRole('button', { name: 'Send the prediction request' })
    .click();
  await expect(answers).toHaveCount(1);
  await expect(answers.first()).toHaveText('0'); // a setosa, by the book
  await rows.fill('[[5.1, 3.5');
  await service
    .getByRole('button', { name: 'Send the prediction request' })
    .click();
  await expect(service.locator('.cp-RunError')).toContainText(
    'The rows are not JSON'
  );

  // When it is stopped, it is gone
  await service.getByRole('button', { name: /Stop service/ }).click();
  await expect(service).toHaveAttribute('data-status', 'Stopped');
  await expect(
    service.getByRole('button', { name: 'Send the prediction request' })
  ).toBeDisabled();
  await shot(service, '03-stopped');
});
