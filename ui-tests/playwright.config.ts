/**
 * Browser tests of the sidebar against a real JupyterLab with the real server extension.
 *
 * tests/ui/test_sidebar.py starts the server (loopback, token, CELLPIPE_HOME in a temporary
 * folder) and runs this suite with CELLPIPE_LAB_URL, CELLPIPE_LAB_TOKEN and
 * CELLPIPE_ARTIFACTS set. The browser is Debian's Chromium (ENVIRONMENT.md): Playwright
 * cannot download one here, and launches it with a fresh profile of its own each time.
 */
import { defineConfig } from '@playwright/test';
import * as path from 'path';

const artifacts =
  process.env.CELLPIPE_ARTIFACTS ??
  path.join(__dirname, '..', 'test-artifacts', 'ui');

export default defineConfig({
  testDir: './tests',
  outputDir: path.join(artifacts, 'playwright'),
  timeout: 240_000,
  expect: { timeout: 45_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: process.env.CELLPIPE_LAB_URL,
    viewport: { width: 1500, height: 950 },
    actionTimeout: 30_000,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CELLPIPE_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  }
});
