// Drives the web console in headless Chromium (Playwright, playwright-core) against a
// live broker, as an operator would; run by tests/all/console.rs, which starts the
// broker, gives the inputs below, and checks the broker's state afterwards.
//
// Environment:
//   PLAYWRIGHT_CORE   the playwright-core package directory
//   CHROMIUM          the browser binary (Debian's /usr/bin/chromium)
//   ADMIN_URL         the broker's admin API, e.g. http://127.0.0.1:9094
//   ADMIN_TOKEN       its [admin] token
//   MODULE_WASM       a module to upload (the guide's processor)
//   BAD_WASM          a file that is not a module
//   SCREENSHOTS       where the screenshots go
// Every wait is bounded; the first failure ends the run with a message and exit 1.

const path = require('node:path');
const fs = require('node:fs');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const ADMIN = process.env.ADMIN_URL;
const TOKEN = process.env.ADMIN_TOKEN;
const SHOTS = process.env.SCREENSHOTS;
const WAIT = 30000;

const SOURCE = 'raw-events';
const DESTINATION = 'processed-events';
const ERRORS = 'etl-errors';

function step(text) {
  console.log(`console test: ${text}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function api(method, route, json) {
  const response = await fetch(ADMIN + route, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

// Waits until `locator`'s text matches `pattern`, and returns that text.
async function textMatching(locator, pattern, what) {
  const deadline = Date.now() + WAIT;
  let last = '(nothing yet)';
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`${what}: waited for ${pattern}, last saw ${JSON.stringify(last)}`);
    try {
      last = await locator.first().innerText({ timeout: remaining });
    } catch (e) {
      last = `(not there: ${e.message.split('\n')[0]})`;
      continue;
    }
    if (pattern.test(last)) return last;
    await locator.page().waitForTimeout(100);
  }
}

async function count(page, metric) {
  const text = await page.locator(`[data-metric="${metric}"] .card-value`).innerText();
  return Number(text.replace(/,/g, ''));
}

async function produceThroughPage(page, key, headers, value) {
  await page.fill('#produce-key', key);
  await page.fill('#produce-headers', headers);
  await page.fill('#produce-value', value);
  await page.getByRole('button', { name: 'Produce' }).click();
  return textMatching(page.locator('#produce-result'), /Stored in .* at offset \d+/, 'the produce answer');
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // A refused request (the 401 before the token, the refused upload) is logged by the
  // browser itself; anything else logged as an error is the page's own fault.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.setDefaultTimeout(WAIT);

  step('the token prompt');
  await page.goto(`${ADMIN}/console/`);
  const dialog = page.locator('#token-dialog');
  await dialog.waitFor({ state: 'visible' });
  if (await page.locator('#view table').count()) throw new Error('data was shown before the token was given');
  await page.fill('#token-input', 'not-the-token');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('#token-error').waitFor({ state: 'visible' });
  await shot(page, '01-token-refused');
  await page.fill('#token-input', TOKEN);
  await page.getByRole('button', { name: 'Connect' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.locator('body[data-ready="true"]').waitFor();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  // Problems before the token was given are the 401s the prompt answers.
  problems.length = 0;

  step('upload through the page');
  await page.getByRole('link', { name: 'Modules' }).click();
  await page.fill('#upload-name', 'message-processor');
  await page.fill('#upload-version', '1.0.0');
  await page.setInputFiles('#upload-file', process.env.MODULE_WASM);
  await page.getByRole('button', { name: 'Upload' }).click();
  await textMatching(page.locator('#upload-result'), /Uploaded message-processor-v1\.0\.0/, 'the upload answer');
  await page.fill('#upload-name', 'message-processor');
  await page.fill('#upload-version', '1.1.0');
  await page.setInputFiles('#upload-file', process.env.MODULE_WASM);
  await page.getByRole('button', { name: 'Upload' }).click();
  await textMatching(page.locator('#upload-result'), /Uploaded message-processor-v1\.1\.0/, 'the second upload answer');
  await page.fill('#upload-name', 'not-a-module');
  await page.fill('#upload-version', '1.0.0');
  await page.setInputFiles('#upload-file', process.env.BAD_WASM);
  await page.getByRole('button', { name: 'Upload' }).click();
  const refusal = await textMatching(page.locator('#upload-result [role=alert]'), /\S+ \S+/, 'the refusal');
  const expected = await fetch(`${ADMIN}/api/v1/etl/modules`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'X-Module-Name': 'not-a-module', 'X-Module-Version': '1.0.0' },
    body: fs.readFileSync(process.env.BAD_WASM),
  }).then((r) => r.json());
  const said = `${expected.error.code} ${expected.error.message}`;
  if (refusal.trim() !== said) throw new Error(`the page said ${JSON.stringify(refusal)}, the API ${JSON.stringify(said)}`);
  await textMatching(page.locator('#module-table'), /message-processor[\s\S]*1\.1\.0[\s\S]*message-processor[\s\S]*1\.0\.0/, 'the module table');
  await shot(page, '02-modules');

  step('a pipeline created with the API');
  await api('POST', '/api/v1/etl/pipelines', {
    pipeline_name: 'message-transformation',
    source_topic: SOURCE,
    destination_topic: DESTINATION,
    error_topic: ERRORS,
    module_name: 'message-processor',
    module_version: '1.0.0',
    configuration: { batch_size: 1, retry_policy: { max_retries: 1, backoff_ms: 10 } },
  });

  step('produce through the page');
  await page.goto(`${ADMIN}/console/#/topics/${SOURCE}`);
  await produceThroughPage(page, 'sensor-1', 'content-type: application/json\nsource: sensor-network',
    '{"temperature_celsius": 25.0, "sensor_id": "temp001"}');

  step('the transformed message in the topic browser');
  await page.goto(`${ADMIN}/console/#/topics/${DESTINATION}`);
  await page.getByRole('button', { name: 'Earliest' }).click();
  const row = page.locator('#messages tr[data-offset="0"]');
  await textMatching(row, /temperature_fahrenheit/, 'the transformed message');
  await textMatching(row, /x-rustmq-module-version 1\.0\.0/, 'the version header');
  await page.selectOption('#value-mode', 'json');
  await textMatching(row, /"temperature_fahrenheit": 77/, 'the pretty-printed value');
  await shot(page, '03-topic-browser');
  await page.selectOption('#value-mode', 'hex');
  await textMatching(row, /00000000  7b 22/, 'the hex view');

  step('the processed count rises on the pipeline page');
  const pipelines = await api('GET', '/api/v1/etl/pipelines');
  const id = pipelines.pipelines[0].pipeline_id;
  await page.goto(`${ADMIN}/console/#/pipelines/${id}`);
  await textMatching(page.locator('[data-metric="processed"] .card-value'), /^[1-9]/, 'processed');
  const before = await count(page, 'processed');
  const batch = [];
  for (let i = 0; i < 20; i += 1) {
    batch.push({ key: `sensor-${i}`, value: JSON.stringify({ temperature_celsius: i }), headers: { 'content-type': 'application/json', source: 'load' } });
  }
  const status = await api('GET', '/api/v1/status');
  const messagesUrl = `http://127.0.0.1:${status.messages_addr.split(':').pop()}`;
  const produced = await fetch(`${messagesUrl}/api/v1/topics/${SOURCE}/messages`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ messages: batch }),
  });
  if (!produced.ok) throw new Error(`producing a batch: ${produced.status}`);
  const target = before + batch.length;
  const deadline = Date.now() + WAIT;
  while ((await count(page, 'processed')) < target) {
    if (Date.now() > deadline) throw new Error(`processed stayed below ${target}`);
    await page.waitForTimeout(200);
  }
  // The throughput chart drew the batch going through.
  const chartDeadline = Date.now() + WAIT;
  while (!(Number(await page.locator('.chart').first().getAttribute('data-peak')) > 0)) {
    if (Date.now() > chartDeadline) throw new Error('the throughput chart stayed at zero');
    await page.waitForTimeout(200);
  }

  step('a failing message shows in the last errors');
  await fetch(`${messagesUrl}/api/v1/topics/${SOURCE}/messages`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ key: 'broken', value: '{not json', headers: { 'content-type': 'application/json', source: 's' } }),
  });
  await textMatching(page.locator('#last-errors'), /key broken[\s\S]*x-rustmq-error/, 'the last errors');
  await shot(page, '04-pipeline');

  step('stop and start from the page');
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await textMatching(page.locator('h1 [data-state]'), /^stopped$/, 'the state after Stop');
  if ((await api('GET', `/api/v1/etl/pipelines/${id}`)).status !== 'stopped') throw new Error('Stop did not stop the pipeline');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await textMatching(page.locator('h1 [data-state]'), /^running$/, 'the state after Start');

  step('changing the version asks first; cancel keeps it');
  await page.selectOption('#module-version', '1.1.0');
  await page.getByRole('button', { name: 'Change version' }).click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  await textMatching(page.locator('#confirm-dialog'), /Move message-transformation to message-processor@1\.1\.0\?/, 'the confirmation');
  await shot(page, '05-confirm-version');
  await page.getByRole('button', { name: 'Cancel' }).click();
  if ((await api('GET', `/api/v1/etl/pipelines/${id}`)).module_version !== '1.0.0') throw new Error('cancel changed the version');

  step('upgrading from the page');
  await page.selectOption('#module-version', '1.1.0');
  await page.getByRole('button', { name: 'Change version' }).click();
  await page.getByRole('button', { name: 'Use 1.1.0' }).click();
  await textMatching(page.locator('.toast'), /now runs message-processor@1\.1\.0/, 'the upgrade toast');
  await textMatching(page.locator('#module-version'), /1\.1\.0 \(current\)/, 'the version select');

  step('the next message runs on 1.1.0');
  await page.goto(`${ADMIN}/console/#/topics/${SOURCE}`);
  await produceThroughPage(page, 'after-upgrade', 'content-type: application/json\nsource: sensor-network', '{"temperature_celsius": 100}');
  await page.goto(`${ADMIN}/console/#/topics/${DESTINATION}`);
  const last = page.locator('#messages tbody tr').last();
  await textMatching(last, /after-upgrade[\s\S]*x-rustmq-module-version 1\.1\.0/, 'the upgraded output');

  step('a canary from the page, side by side, then promoted');
  const upload = await fetch(`${ADMIN}/api/v1/etl/modules`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'X-Module-Name': 'message-processor', 'X-Module-Version': '1.2.0' },
    body: fs.readFileSync(process.env.MODULE_WASM),
  });
  if (upload.status !== 201) throw new Error(`uploading 1.2.0: ${upload.status}`);
  await page.goto(`${ADMIN}/console/#/pipelines/${id}`);
  await page.locator('#canary-form').waitFor();
  await page.selectOption('#canary-version', '1.2.0');
  await page.fill('#canary-percent', '50');
  await page.selectOption('#canary-by', 'key');
  await page.fill('#canary-max-error-rate', '50');
  await page.getByRole('button', { name: 'Start canary' }).click();
  await textMatching(page.locator('#canary-running'), /Canary 1\.2\.0 takes 50 % of the messages by key; rolled back above 50\.0 %/, 'the running canary');
  const keyed = [];
  for (let i = 0; i < 40; i += 1) {
    keyed.push({ key: `device-${i}`, value: JSON.stringify({ temperature_celsius: i }), headers: { 'content-type': 'application/json', source: 'canary' } });
  }
  const sent = await fetch(`${messagesUrl}/api/v1/topics/${SOURCE}/messages`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ messages: keyed }),
  });
  if (!sent.ok) throw new Error(`producing for the canary: ${sent.status}`);
  await textMatching(page.locator('#canary-versions tr[data-role="canary"]'), /canary\s+1\.2\.0\s+[1-9]/, 'the canary row');
  await textMatching(page.locator('#canary-versions tr[data-role="stable"]'), /stable\s+1\.1\.0\s+[1-9]/, 'the stable row');
  await shot(page, '07-canary');
  await page.getByRole('button', { name: 'Promote', exact: true }).click();
  await page.getByRole('button', { name: 'Promote 1.2.0' }).click();
  await textMatching(page.locator('#canary-event'), /Canary 1\.2\.0 promoted/, 'the promotion');
  if ((await api('GET', `/api/v1/etl/pipelines/${id}`)).module_version !== '1.2.0') throw new Error('promote did not pin 1.2.0');

  step('a backfill from the page, followed to its end');
  const before_backfill = (await api('GET', `/api/v1/etl/pipelines/${id}`)).committed_offset;
  await page.fill('#backfill-from', 'earliest');
  await page.fill('#backfill-to', String(before_backfill));
  await page.fill('#backfill-into', 'replayed');
  await page.selectOption('#backfill-version', '1.0.0');
  await page.getByRole('button', { name: 'Start backfill' }).click();
  await textMatching(page.locator('#bounded-runs tbody tr').first(), /message-transformation\.backfill-1\s+completed\s+1\.0\.0\s+replayed[\s\S]*\(100 %\)/, 'the finished backfill');
  await shot(page, '08-operate');

  step('the overview');
  await page.goto(`${ADMIN}/console/#/`);
  await textMatching(page.locator(`tr[data-pipeline="${id}"]`), /running[\s\S]*message-processor@1\.2\.0/, 'the overview row');
  await shot(page, '06-overview');

  if (problems.length) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
  await browser.close();
  step('passed');
}

main().catch((e) => {
  console.error(`console test failed: ${e.stack || e}`);
  process.exit(1);
});
