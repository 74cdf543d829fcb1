// Drives Debian's Chromium through Playwright for the spawner's hub tests.
//
// One JSON command per line on stdin, one JSON answer per line on stdout:
//   {"id": 1, "op": "goto", "page": "alice", "url": "http://127.0.0.1:8000/hub/login"}
//   -> {"id": 1, "result": ..., "error": null}
// Each `page` name is its own browser context (its own cookies): one per test user.
// Environment: PLAYWRIGHT_CORE (the module to load), CHROMIUM (the browser's path).
'use strict';

const readline = require('readline');
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
];

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS
  });
  const pages = new Map();

  async function page(name, javaScript) {
    if (!pages.has(name)) {
      const context = await browser.newContext({
        javaScriptEnabled: javaScript !== false
      });
      const created = await context.newPage();
      created.setDefaultTimeout(60000);
      pages.set(name, created);
    }
    return pages.get(name);
  }

  const ops = {
    goto: async (p, c) => {
      const response = await p.goto(c.url, { waitUntil: 'domcontentloaded' });
      return { status: response ? response.status() : null, url: p.url() };
    },
    fill: async (p, c) => p.fill(c.selector, String(c.value)),
    select: async (p, c) => p.selectOption(c.selector, String(c.value)),
    submit: async (p, c) => {
      const [response] = await Promise.all([
        p.waitForNavigation({ waitUntil: 'domcontentloaded' }),
        p.click(c.selector)
      ]);
      return { status: response ? response.status() : null, url: p.url() };
    },
    waitForUrl: async (p, c) => {
      await p.waitForURL(new RegExp(c.pattern), { timeout: c.ms || 60000 });
      return p.url();
    },
    url: async p => p.url(),
    text: async (p, c) => p.innerText(c.selector || 'body'),
    count: async (p, c) => p.locator(c.selector).count(),
    options: async (p, c) =>
      p.$$eval(`${c.selector} option`, nodes =>
        nodes.map(o => ({
          value: o.value,
          text: o.textContent,
          selected: o.selected,
          disabled: o.disabled
        }))
      ),
    attribute: async (p, c) => p.getAttribute(c.selector, c.name),
    // the field's current value (what the page's script set), not its markup attribute
    value: async (p, c) => p.inputValue(c.selector),
    check: async (p, c) => p.check(c.selector),
    // a radio group: each button's value, state and its label's text
    radios: async (p, c) =>
      p.$$eval(`input[type=radio][name="${c.name}"]`, nodes =>
        nodes.map(r => ({
          value: r.value,
          text: r.labels.length ? r.labels[0].textContent : '',
          checked: r.checked,
          disabled: r.disabled
        }))
      ),
    waitForText: async (p, c) => {
      await p.waitForFunction(
        wanted => document.body && document.body.innerText.includes(wanted),
        c.text,
        { timeout: c.ms || 60000 }
      );
      return p.innerText('body');
    },
    // the page as its user sees it (the whole page, not only the window), as a PNG file
    screenshot: async (p, c) => {
      await p.screenshot({ path: c.path, fullPage: true });
      return c.path;
    },
    open: async p => p.url()
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) {
      continue;
    }
    const command = JSON.parse(line);
    let result = null;
    let error = null;
    try {
      if (command.op === 'close') {
        break;
      }
      const op = ops[command.op];
      if (!op) {
        throw new Error(`unknown op ${command.op}`);
      }
      result = await op(
        await page(command.page || 'default', command.javaScript),
        command
      );
    } catch (e) {
      error = String((e && e.message) || e);
    }
    process.stdout.write(
      JSON.stringify({
        id: command.id,
        result: result === undefined ? null : result,
        error
      }) + '\n'
    );
  }
  lines.close();
  await browser.close();
  process.stdout.write(
    JSON.stringify({ id: 'closed', result: null, error: null }) + '\n',
    () => process.exit(0)
  );
}

main().catch(e => {
  process.stderr.write(`browser driver failed: ${(e && e.stack) || e}\n`);
  process.exit(1);
});
