// Browser acceptance test of siemrelay's status page (issue 12), run by tests/tests/status_page.rs
// against the real binary. Drives Debian's Chromium (never a downloaded browser) through
// playwright-core with every request outside the admin address blocked.
//
//   node tests/browser/status_page.mjs --url http://127.0.0.1:PORT --exporters webhook/soar,file
//        --siem webhook/soar --webhook http://127.0.0.1:PORT/v1/events --artifacts DIR [--token T]
//        [--flaky EXPORTER_ID]   (an exporter that dead-letters while the SIEM is down)
//
// Protocol with the caller (stdin/stdout): the script prints `@@siem down` or `@@siem up` and
// waits for a line `@@ok` on stdin before going on. `--scenario basic` only checks that the page
// lists the exporters (no SIEM control). Every check prints `ok - …`; the last line is
// `status page: N passed, 0 failed` and the exit code is 0. On the first failed check it prints
// `not ok - …`, saves status-page-failure-SCENARIO.png and exits 1; a missing browser or playwright-core
// exits 2 with instructions.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function parseArgs(argv) {
  const options = { scenario: 'full', chromium: process.env.SIEMRELAY_CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i];
    if (!key.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${key}: expected --name value`);
    options[key.slice(2)] = argv[i + 1];
    i += 1;
  }
  for (const required of ['url', 'exporters', 'artifacts']) {
    if (!options[required]) throw new Error(`missing --${required}`);
  }
  if (options.scenario === 'full' && (!options.siem || !options.webhook)) {
    throw new Error('the full scenario needs --siem EXPORTER_ID and --webhook URL');
  }
  options.exporters = options.exporters.split(',').filter(Boolean);
  return options;
}

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (error) {
  console.log(`not ok - arguments: ${error.message}`);
  process.exit(2);
}

if (!existsSync(options.chromium)) {
  console.log(`not ok - no Chromium at ${options.chromium}: install it with \`bash scripts/setup-test-env.sh\` `
    + '(as root; it installs the Debian package `chromium` listed in tests/apt-packages.txt) '
    + 'or set SIEMRELAY_CHROMIUM to a Chromium binary');
  process.exit(2);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (error) {
  console.log(`not ok - playwright-core is not installed (${error.code || error.message}): `
    + 'run `bash scripts/setup-test-env.sh` (it runs `npm ci` in tests/browser)');
  process.exit(2);
}

// ---- small helpers -------------------------------------------------------------------------

const admin = new URL(options.url);
const artifacts = options.artifacts;
mkdirSync(artifacts, { recursive: true });
let passed = 0;

function ok(what) {
  passed += 1;
  console.log(`ok - ${what}`);
}

class CheckFailed extends Error {}

function check(condition, what) {
  if (!condition) throw new CheckFailed(what);
  ok(what);
}

/** Polls `probe` until it returns a truthy value (returned) or `ms` pass (throws `what`). */
async function eventually(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) {
        ok(what);
        return last;
      }
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > deadline) throw new CheckFailed(`${what} (within ${ms} ms; last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

/** Asks the caller to take the fake SIEM down or bring it up, and waits for its `@@ok`. */
async function siem(state) {
  console.log(`@@siem ${state}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== '@@ok') throw new CheckFailed(`the caller did not confirm "siem ${state}" (got ${value})`);
  ok(`fake SIEM is ${state}`);
}

async function apiStatus(method, apiPath, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(new URL(apiPath, admin), { method, headers });
  await response.arrayBuffer();
  return response.status;
}

/** Posts `n` events to the pipeline's webhook receiver (from node, not from the page). */
let eventSeq = 0;
async function postEvents(n) {
  const body = Array.from({ length: n }, () => {
    eventSeq += 1;
    return JSON.stringify({ event_type: 'login_failed', severity: 'high', summary: `status page test event ${eventSeq}` });
  }).join('\n');
  const response = await fetch(options.webhook, {
    method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body,
  });
  await response.arrayBuffer();
  if (response.status >= 300) throw new CheckFailed(`webhook receiver answered HTTP ${response.status}`);
}

/** Posts a raw body with a content type; returns the HTTP status. */
async function postRaw(body, contentType) {
  const response = await fetch(options.webhook, {
    method: 'POST', headers: { 'content-type': contentType }, body,
  });
  await response.arrayBuffer();
  return response.status;
}

/** `2026-12-04 20:37:41 UTC+01:00`: a date, a time and a zone. */
const DATED = /\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC[+-]\d{2}:\d{2}/;

/** Keeps posting a few events every 200 ms until the returned function is called. */
function keepPosting() {
  let running = true;
  let failures = 0;
  const loop = (async () => {
    while (running) {
      try {
        await postEvents(3);
      } catch {
        failures += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return failures;
  };
}

const card = (page, id) => page.locator(`article.card[data-exporter="${id}"]`);

async function cardNumber(page, id, field) {
  const text = await card(page, id).locator(`[data-field="${field}"]`).textContent();
  const digits = (text || '').replace(/[^0-9]/g, '');
  return digits === '' ? NaN : Number(digits);
}

const badgeWord = (page, id) => card(page, id).locator('.badge-word').textContent();

/** GET from the admin API (from node, with the token when there is one). */
async function apiJson(apiPath) {
  const headers = options.token ? { Authorization: `Bearer ${options.token}` } : {};
  const response = await fetch(new URL(apiPath, admin), { headers });
  if (!response.ok) throw new Error(`GET ${apiPath}: HTTP ${response.status}`);
  return response.json();
}

/** A chart line of a card as drawn: its data attributes and the points of the SVG polyline. */
async function chartLine(page, id, series) {
  return card(page, id).locator(`polyline[data-series="${series}"]`).evaluate((line) => ({
    points: Number(line.dataset.points),
    total: Number(line.dataset.total),
    max: Number(line.dataset.max),
    last: Number(line.dataset.last),
    coords: (line.getAttribute('points') || '').trim().split(/\s+/).filter(Boolean)
      .map((pair) => pair.split(',').map(Number)),
  }));
}

/** What the charts of `id` must show, from the API: samples, and totals over them. */
async function expectedChart(id) {
  const history = await apiJson('/api/v1/metrics/history');
  const mine = history.samples.map((s) => s.exporters[id]).filter(Boolean);
  const sum = (field) => mine.reduce((total, e) => total + e[field], 0);
  return {
    samples: mine.length,
    in: sum('events_in'),
    out: sum('events_out'),
    errors: sum('errors'),
    interval: history.interval_seconds,
    max: history.max_samples,
  };
}

/** The line lies inside the 300×60 drawing, a step (two points) per sample, left to right. */
function drawn(line) {
  return line.coords.length === 2 * line.points
    && line.coords.every(([x, y], i) => x >= 0 && x <= 300.5 && y >= 0 && y <= 60
      && (i === 0 || x >= line.coords[i - 1][0]));
}

// ---- the run -------------------------------------------------------------------------------

const userDataDir = mkdtempSync(path.join(tmpdir(), 'siemrelay-chromium-'));
const blocked = [];
const requested = [];
const problems = [];
let context;
let page;
let unlockedAt = 0;

try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: options.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    acceptDownloads: false,
    serviceWorkers: 'block',
  });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === admin.origin) return route.continue();
    blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  page = context.pages()[0] || await context.newPage();
  page.on('request', (request) => requested.push({
    url: request.url(),
    authorization: request.headers().authorization || '',
  }));
  page.on('console', (message) => {
    // 401 answers are expected while the page waits for the admin token.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

  // -- authentication --
  if (options.token) {
    for (const [method, apiPath] of [
      ['GET', '/api/v1/exporters'], ['GET', '/api/v1/pipelines'],
      ['GET', `/api/v1/exporters/${encodeURIComponent(options.exporters[0])}/deliveries`],
      ['POST', `/api/v1/exporters/${encodeURIComponent(options.exporters[0])}/test`],
      ['GET', '/api/v1/info'],
      ['GET', `/api/v1/exporters/${encodeURIComponent(options.exporters[0])}/dead_letters`],
      ['POST', `/api/v1/exporters/${encodeURIComponent(options.exporters[0])}/dead_letters/replay`],
      ['GET', `/api/v1/tap/${encodeURIComponent(options.exporters[0])}?limit=1`],
    ]) {
      check(await apiStatus(method, apiPath) === 401, `the API refuses ${method} ${apiPath} without a token (401)`);
    }
    check(await apiStatus('GET', '/api/v1/exporters', `${options.token}-wrong`) === 401,
      'the API refuses a wrong token (401)');
    check(await apiStatus('GET', '/api/v1/exporters', options.token) === 200, 'the API accepts the token');
  }

  const response = await page.goto(admin.href, { waitUntil: 'load' });
  check(response && response.status() === 200, `GET ${admin.href} answers 200`);
  const csp = (response.headers()['content-security-policy'] || '');
  check(/default-src 'self'/.test(csp), `the page carries a strict Content-Security-Policy (${csp.split(';')[0]})`);

  if (options.token) {
    await page.locator('#auth').waitFor({ state: 'visible', timeout: 5000 });
    ok('the page asks for the admin token');
    check(await page.locator('#status-view').isHidden(), 'no status is shown before the token is given');
    await page.fill('#token', `${options.token}-wrong`);
    await page.press('#token', 'Enter');
    await eventually('a wrong token is refused with a message', 5000,
      async () => /refused/i.test(await page.locator('#auth-error').textContent()));
    await page.fill('#token', options.token);
    unlockedAt = requested.length;
    await page.click('#auth button[type="submit"]');
    await page.locator('#status-view').waitFor({ state: 'visible', timeout: 5000 });
    ok('the status appears after the token is entered');
  } else {
    await page.locator('#status-view').waitFor({ state: 'visible', timeout: 5000 });
    check(await page.locator('#auth').isHidden(), 'without admin auth the page does not ask for a token');
  }

  await page.evaluate(() => { window.statusPageMarker = 'first load'; });

  // -- every exporter of the config --
  for (const id of options.exporters) {
    await card(page, id).waitFor({ state: 'visible', timeout: 5000 });
    const word = (await badgeWord(page, id)).trim();
    check(['active', 'degraded', 'failed', 'disabled'].includes(word), `exporter ${id} has a card with its status word (${word})`);
  }
  check(await page.locator('article.card').count() === options.exporters.length,
    `the page lists exactly the ${options.exporters.length} exporters of the config`);
  let charted = 0;
  for (const id of options.exporters) {
    const charts = card(page, id).locator('figure.chart');
    if (await charts.count() === 3 && await charts.locator('svg[role="img"]').count() === 3
      && await card(page, id).locator('polyline.series').count() === 4) charted += 1;
  }
  check(charted === options.exporters.length,
    'every exporter card has its three charts as inline SVG (events/s in and out, queue depth, failed requests/s)');
  await eventually('the charts draw the samples the admin API serves', 5000, async () => {
    const line = await chartLine(page, options.exporters[0], 'in');
    const label = await card(page, options.exporters[0]).locator('figure.chart svg').first().getAttribute('aria-label');
    return line.points >= 1 && drawn(line) && /over the last 15 minutes/.test(label || '');
  });
  check(await page.locator('section.pipeline').count() >= 1, 'the pipeline graph is shown');

  // -- what runs, since when, from which file --
  await eventually('the page shows the version, uptime and config path', 5000, async () => {
    const about = (await page.locator('#about').textContent()) || '';
    return await page.locator('#about').isVisible()
      && /siemrelay \d+\.\d+\.\d+\S* \(commit ([0-9a-f]{12}|unknown)\)/.test(about)
      && /up \d+/.test(about) && /config \S*siemrelay\.yaml/.test(about);
  });
  const since = (await page.locator('#about [data-field="started"]').textContent()) || '';
  check(DATED.test(since), `times are shown with their date and time zone (${since.trim()})`);

  if (options.scenario !== 'full') {
    const replay = page.locator('#replay');
    check(await replay.isDisabled() && /allow_config_changes/.test(await replay.getAttribute('title') || ''),
      'replay is offered only with allow_config_changes');
  }

  if (options.scenario === 'full') {
    const id = options.siem;
    // -- receiver refusals by reason, filter drops --
    check(await postRaw('not json', 'text/plain') === 415, 'a text/plain post is refused (415)');
    await eventually('the receiver\'s refusals are shown by reason', 6000, async () => {
      const text = await page.locator('li.node[data-receiver="webhook"] .node-refused').textContent();
      return /refused: 1 content_type/.test(text || '');
    });
    const lows = Array.from({ length: 3 }, (_, i) => JSON.stringify({ event_type: 'noise', severity: 'low', summary: `low ${i}` })).join('\n');
    check(await postRaw(lows, 'application/x-ndjson') === 200, 'low-severity events are accepted');
    await eventually('the filter\'s drops are shown on its node', 6000, async () => {
      const text = await page.locator('li.node[data-processor="filter/high"] .node-dropped').textContent();
      return /dropped: 3\b/.test(text || '');
    });

    // -- counters rise, edges show events/s --
    const before = await cardNumber(page, id, 'sent');
    check(Number.isFinite(before), `${id} shows its events sent (${before})`);
    let stopPosting = keepPosting();
    await eventually(`${id}'s events sent rise as events are posted`, 10000,
      async () => (await cardNumber(page, id, 'sent')) >= before + 10);
    await eventually('the pipeline graph shows live events/s on its edges', 8000, async () => {
      const rates = await page.locator('.edge-rate, .node-rate').allTextContents();
      return rates.some((text) => /^[0-9.]+ events\/s$/.test(text) && parseFloat(text) > 0);
    });
    await eventually('the delivery history of the exporter lists deliveries', 6000, async () => {
      await page.selectOption('#history-exporter', id);
      return page.locator('#delivery-rows tr td.outcome').count();
    });
    await page.screenshot({ path: path.join(artifacts, 'status-page-active.png'), fullPage: true });
    ok('saved status-page-active.png');

    // -- the SIEM goes down: the card turns degraded --
    await siem('down');
    const wentDown = Date.now();
    const word = await eventually(`${id}'s card leaves active within 10 s`, 10000, async () => {
      const text = (await badgeWord(page, id)).trim();
      return text !== 'active' ? text : null;
    });
    check(word === 'degraded', `${id}'s card says degraded (${word}) after ${Date.now() - wentDown} ms`);
    check(await card(page, id).getAttribute('data-status') === 'degraded'
      && await card(page, id).locator('.badge.status-degraded').count() === 1,
      'the degraded card has its colour class as well as the word');
    check(((await card(page, id).locator('[data-field="last-error"]').textContent()) || '').trim() !== 'none',
      `${id}'s card shows the last error`);
    await eventually(`${id}'s queue chart shows the events waiting during the outage`, 10000, async () => {
      const queue = await chartLine(page, id, 'queue');
      return queue.last > 0 && drawn(queue) && queue.coords[queue.coords.length - 1][1] < 59;
    });
    await eventually(`${id}'s error chart shows the failed requests of the outage`, 10000, async () => {
      const errors = await chartLine(page, id, 'errors');
      return errors.total > 0 && drawn(errors) && errors.coords.some(([, y]) => y < 59);
    });

    // -- the flaky exporter gives up during the outage: its dead letters are listed --
    if (options.flaky) {
      const flaky = options.flaky;
      await eventually(`${flaky} dead-letters during the outage`, 20000,
        async () => (await cardNumber(page, flaky, 'dead')) > 0);
      await card(page, flaky).locator('button[data-action="dead-letters"]').click();
      await eventually(`${flaky}'s dead letters are listed with their time and error`, 8000, async () => {
        const rows = page.locator('#dead-letter-rows tr');
        if (await rows.count() === 0 || await page.locator('#dead-letter-rows td.empty').count() > 0) return false;
        const time = (await rows.first().locator('td.time').textContent()) || '';
        const error = (await rows.first().locator('td.error-text').textContent()) || '';
        return DATED.test(time) && error.length > 0
          && Number(await page.locator('#dead-letter-summary').getAttribute('data-total')) > 0;
      });
      check(await page.locator('#replay').isEnabled(), 'replay is offered (allow_config_changes is on)');
    }

    // -- Test delivery fails with a hint --
    const result = card(page, id).locator('.test-result');
    check(await result.getAttribute('aria-live') === 'polite', 'test results are in an aria-live region');
    await card(page, id).locator('button[data-action="test"]').click();
    await eventually('"Test delivery" shows the failure with a hint', 15000,
      async () => (await result.getAttribute('data-ok')) === 'false' && /Hint: \S/.test(await result.textContent()));
    console.log(`# test delivery while down: ${JSON.stringify(await result.textContent())}`);
    await page.screenshot({ path: path.join(artifacts, 'status-page-degraded.png'), fullPage: true });
    ok('saved status-page-degraded.png');

    // -- phone width --
    await page.setViewportSize({ width: 375, height: 812 });
    await eventually('at 375 px the page fits without sideways scrolling', 3000,
      () => page.evaluate(() => document.documentElement.scrollWidth <= 375));
    await page.screenshot({ path: path.join(artifacts, 'status-page-phone.png'), fullPage: true });
    ok('saved status-page-phone.png');
    await page.setViewportSize({ width: 1280, height: 900 });

    // -- the SIEM comes back: Test delivery succeeds, the card is active again --
    await siem('up');
    await card(page, id).locator('button[data-action="test"]').click();
    await eventually('"Test delivery" succeeds after the SIEM is back', 15000,
      async () => (await result.getAttribute('data-ok')) === 'true' && /succeeded/.test(await result.textContent()));
    console.log(`# test delivery when back: ${JSON.stringify(await result.textContent())}`);
    await eventually(`${id}'s card is active again`, 20000,
      async () => (await badgeWord(page, id)).trim() === 'active');
    await eventually('an old error on an active card is shown as past, not in red', 5000, async () => {
      const lastError = card(page, id).locator('[data-field="last-error"]');
      const text = (await lastError.textContent()) || '';
      const red = await lastError.evaluate((node) => node.classList.contains('error'));
      return !red && (text === 'none' || /, past\)$/.test(text));
    });
    const failures = await stopPosting();
    check(failures === 0, 'every event posted to the webhook receiver was accepted');

    // -- the charts add up to what happened: every event queued and sent, every failed request --
    // (The queue's peak is not among them: it was checked live during the outage, and a 10 s
    // sample need not have ended while events waited.)
    let chart;
    const adding = `${id}'s charts add up to the events posted, sent and the failed requests`;
    await eventually(adding, 20000, async () => {
      const [pipelines, exporter, expected] = await Promise.all([
        apiJson('/api/v1/pipelines'),
        apiJson(`/api/v1/exporters/${encodeURIComponent(id)}`),
        expectedChart(id),
      ]);
      const queued = pipelines.pipelines.find((p) => p.exporters.some((e) => e.id === id)).events_out;
      const [inLine, outLine, errorLine, queueLine] = await Promise.all(
        ['in', 'out', 'errors', 'queue'].map((series) => chartLine(page, id, series)),
      );
      chart = { queued, sent: exporter.events_sent, failed: exporter.failure_count, expected, inLine, outLine, errorLine, queueLine };
      return queued > 0 && inLine.total === queued && outLine.total === exporter.events_sent
        && errorLine.total === exporter.failure_count && errorLine.total > 0
        && inLine.points === expected.samples && [inLine, outLine, errorLine, queueLine].every(drawn)
        && inLine.coords.some(([, y]) => y < 59);
    }).catch((error) => {
      const { inLine, outLine, errorLine, queueLine, ...rest } = chart || {};
      const brief = (line) => line && { ...line, coords: line.coords.length };
      console.log(`# last look at the charts: ${JSON.stringify({ ...rest, in: brief(inLine), out: brief(outLine), errors: brief(errorLine), queue: brief(queueLine) })}`);
      throw error;
    });
    console.log(`# chart ${id}: ${chart.inLine.points} samples of ${chart.expected.interval} s (at most `
      + `${chart.expected.max}); in ${chart.inLine.total} events (the pipeline queued ${chart.queued}), `
      + `out ${chart.outLine.total} (sent ${chart.sent}), failed requests ${chart.errorLine.total} `
      + `(${chart.failed}), queue peak ${chart.queueLine.max}`);
    const chartShot = path.join(artifacts, 'status-page-charts.png');
    await card(page, id).scrollIntoViewIfNeeded();
    await card(page, id).screenshot({ path: chartShot });
    ok('saved status-page-charts.png');
    console.log(`# screenshot of ${id}'s card with its charts: ${chartShot}`);

    // -- the SIEM is back: the dead letters are replayed and the list empties --
    if (options.flaky) {
      const flaky = options.flaky;
      await page.selectOption('#dead-letter-exporter', flaky);
      const dead = Number(await page.locator('#dead-letter-summary').getAttribute('data-total'));
      await page.locator('#replay').click();
      await eventually(`replaying ${flaky}'s dead letters delivers them`, 30000, async () => {
        const result = page.locator('#replay-result');
        return (await result.getAttribute('data-state')) === 'done'
          && / 0 dead-lettered again/.test((await result.textContent()) || '');
      });
      console.log(`# replay: ${JSON.stringify(await page.locator('#replay-result').textContent())} (${dead} listed before)`);
      await eventually(`${flaky}'s dead-letter list is empty after the replay`, 8000,
        async () => (await page.locator('#dead-letter-summary').getAttribute('data-total')) === '0');
    }
    await page.screenshot({ path: path.join(artifacts, 'status-page-recovered.png'), fullPage: true });
    ok('saved status-page-recovered.png');

    // -- keyboard: buttons are reachable with Tab and show a visible focus --
    await page.locator('body').focus();
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    let reached = null;
    for (let i = 0; i < 40 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => {
        const element = document.activeElement;
        if (!element || element.dataset.action !== 'test') return null;
        const style = getComputedStyle(element);
        return { outline: style.outlineStyle, width: style.outlineWidth };
      });
    }
    check(reached !== null, 'a "Test delivery" button is reachable with the keyboard');
    check(reached.outline !== 'none' && reached.width !== '0px', `the focused button shows a visible focus ring (${reached.outline} ${reached.width})`);

    // -- disable / enable --
    const toggle = card(page, id).locator('button[data-action="toggle"]');
    check((await toggle.textContent()).trim() === 'Disable', `${id} offers "Disable"`);
    await toggle.click();
    await eventually(`${id} is disabled after "Disable"`, 5000, async () =>
      (await badgeWord(page, id)).trim() === 'disabled' && (await toggle.textContent()).trim() === 'Enable');
    await toggle.click();
    await eventually(`${id} is enabled again after "Enable"`, 5000, async () =>
      (await badgeWord(page, id)).trim() !== 'disabled' && (await toggle.textContent()).trim() === 'Disable');
  } else {
    await page.screenshot({ path: path.join(artifacts, 'status-page-basic.png'), fullPage: true });
    ok('saved status-page-basic.png');
  }

  // -- the page refreshes by itself and the token stays in the tab --
  const isApi = (r) => new URL(r.url).pathname.startsWith('/api/');
  const pollsBefore = requested.filter(isApi).length;
  await eventually('the page refreshes by itself', 5000,
    async () => requested.filter(isApi).length >= pollsBefore + 2);
  check(await page.evaluate(() => window.statusPageMarker) === 'first load',
    `the page polled the API ${requested.filter(isApi).length} times without reloading`);
  if (options.token) {
    const after = requested.slice(unlockedAt).filter(isApi);
    const without = after.filter((r) => r.authorization !== `Bearer ${options.token}`);
    check(after.length > 0 && without.length === 0,
      `all ${after.length} API calls after the token was entered carry it (${without.length} do not)`);
    await page.reload({ waitUntil: 'load' });
    await page.locator('#status-view').waitFor({ state: 'visible', timeout: 5000 });
    check(await page.locator('#auth').isHidden(), 'after a reload the tab keeps the token (sessionStorage)');
    if (options.scenario === 'full') {
      const id = options.siem;
      await eventually('a freshly loaded page draws the past samples at once (served by the API, not kept by the page)', 5000,
        async () => {
          const expected = await expectedChart(id);
          const line = await chartLine(page, id, 'in');
          return expected.samples >= 2 && line.points === expected.samples && line.total === expected.in && drawn(line);
        });
    }
  }

  // -- nothing but the admin address was contacted --
  const foreign = requested.filter((r) => new URL(r.url).origin !== admin.origin).map((r) => r.url);
  check(blocked.length === 0 && foreign.length === 0,
    `the page requested nothing outside ${admin.origin} (blocked: ${JSON.stringify(blocked.concat(foreign))})`);
  check(problems.length === 0, `no console or page errors (${JSON.stringify(problems)})`);

  console.log(`status page: ${passed} passed, 0 failed`);
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(0);
} catch (error) {
  const what = error instanceof CheckFailed ? error.message : `unexpected error: ${error.stack || error}`;
  console.log(`not ok - ${what}`);
  if (problems.length) console.log(`# console/page errors: ${JSON.stringify(problems)}`);
  if (page) {
    try {
      await page.screenshot({ path: path.join(artifacts, `status-page-failure-${options.scenario}.png`), fullPage: true });
      console.log(`# saved ${path.join(artifacts, `status-page-failure-${options.scenario}.png`)}`);
    } catch {
      // the browser may be gone
    }
  }
  console.log(`status page: ${passed} passed, 1 failed`);
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(1);
}
