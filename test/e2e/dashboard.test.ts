import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PriorityClass, type SubmitTaskRequest } from '@autoglm/proto';
import type { MessageInit } from '@autoglm/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startInProcessMesh, type InProcessMesh } from '../support/in-process-mesh';
import { untilFinished } from '../support/until';

// The monitor's dashboard as a user sees it, in headless Chromium driven by
// playwright-core. Waits are on what the page shows (locators), not on polling
// the page's state. The one read run in the page (evaluateAll, for the
// timeline's states) is a function Playwright sends over the DevTools
// protocol, which the page's CSP (no eval) does not govern; the tests compile
// without DOM types, so page-side code stays that small. Chromium comes from
// Debian's `chromium` package, which .ci/run installs; elsewhere set
// AUTOGLM_CHROMIUM to a Chromium binary.
// AUTOGLM_DASHBOARD_SCREENSHOT=docs/dashboard.png also writes the README's
// screenshot (otherwise it goes to a temporary directory).
const CANDIDATES = [process.env.AUTOGLM_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
const CHROMIUM = CANDIDATES.find((p) => existsSync(p));
const inCi = process.env.CI === 'true';
const missing = `no Chromium at ${CANDIDATES.join(' or ')}; install it with: apt-get install -y chromium (or set AUTOGLM_CHROMIUM)`;

if (CHROMIUM === undefined && !inCi) {
  // Not console (lint): a skip has to be visible in the run's output, not only in a count.
  process.stderr.write(`test/e2e/dashboard.test.ts: browser tests skipped: ${missing}\n`);
}

const MODEL = 'glm-4-9b';
const TIMEOUT = 20_000;

/** A simulated 1-GPU job of `seconds` (simulated; the fixture runs 20× real time). */
const job = (seconds: number, priorityClass: PriorityClass): MessageInit<SubmitTaskRequest> => ({
  payload: { $case: 'batch', batch: { expectedDuration: { seconds, nanos: 0 } } },
  priorityClass,
  resources: { gpuCount: 1, gpuMemoryBytes: 2 ** 30 },
});

/** The pending and running counts the dashboard's queue table shows for a class. */
async function classCounts(page: Page, priorityClass: string): Promise<{ pending: number; running: number }> {
  const cell = (kind: string) => page.locator(`#queue-class tr[data-class="${priorityClass}"] td.${kind}`).textContent();
  return { pending: Number(await cell('pending')), running: Number(await cell('running')) };
}

(CHROMIUM !== undefined || inCi ? describe : describe.skip)('the monitor dashboard in a browser', () => {
  let mesh: InProcessMesh | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const problems: string[] = [];
  const shots = mkdtempSync(path.join(os.tmpdir(), 'autoglm-dashboard-'));

  beforeAll(async () => {
    if (CHROMIUM === undefined) throw new Error(`CI=true and ${missing}`);
    mesh = await startInProcessMesh({
      tls: true,
      monitor: {
        evaluateEveryMs: 200,
        // Tight enough that a handful of queued urgent jobs misses it.
        slos: [{ name: 'urgent-queue', indicator: 'queue_time', priorityClass: 'urgent', thresholdSeconds: 0.2, objective: 0.9, windowMs: 30_000, minEvents: 3, alertForMs: 1000 }],
      },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark' });
    page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    // A CSP violation or a script error is a broken page, whatever it still shows.
    page.on('console', (message) => {
      // The searches for an unknown and a malformed id answer 404 and 400 on purpose.
      if (message.type() === 'error' && !message.location().url.includes('/api/tasks/')) problems.push(message.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`http://${mesh.monitor!.httpAddress}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await mesh?.stop();
    rmSync(shots, { recursive: true, force: true });
  });

  it('shows the agent in the fleet heat map with its two GPUs, and a model replica once loaded', async () => {
    const node = page.locator('#fleet [data-node="contract-node"]');
    await node.waitFor();
    await node.locator('.gpu[data-gpu="1"]').waitFor();
    expect(await node.locator('.gpu').count()).toBe(2);
    expect(await node.locator('.node-name').textContent()).toBe('contract-node');
    expect(await node.locator('.pill').first().textContent()).toBe('ready');
    expect(await node.locator('.gpu .gpu-util').allTextContents()).toEqual([expect.stringMatching(/^\d+%$/), expect.stringMatching(/^\d+%$/)]);

    for await (const chunk of mesh!.client.infer({ model: MODEL, input: { prompt: 'hello', params: { maxTokens: 4 } } })) void chunk;
    await page.locator('#fleet [data-node="contract-node"] .replica', { hasText: MODEL }).first().waitFor();
  });

  it('shows a running job in the queue view and the recent tasks, and drops it from the queue once done', async () => {
    const m = mesh!;
    const before = await classCounts(page, 'normal');
    expect(before).toEqual({ pending: 0, running: 0 });
    const normalJob = (await m.client.submit(job(100, PriorityClass.NORMAL))).task!.id;
    // Pending or running, whichever the dashboard caught it in.
    await page.locator('#queue-class tr[data-class="normal"] td:is(.pending, .running)', { hasText: /^[1-9]\d*$/ }).first().waitFor();
    await page.locator(`#recent tr[data-task="${normalJob}"]`).waitFor();
    await page.locator('#chart-class canvas').waitFor();

    await untilFinished(m.client, normalJob, 30_000);
    await page
      .locator('#queue-class tr[data-class="normal"]')
      .filter({ has: page.locator('td.pending', { hasText: /^0$/ }) })
      .filter({ has: page.locator('td.running', { hasText: /^0$/ }) })
      .waitFor();
    expect(await page.locator(`#recent tr[data-task="${normalJob}"] td`).last().textContent()).toBe('succeeded');
  }, 60_000);

  it('shows an alert when urgent work waits past its SLO, with the SLO missed', async () => {
    const m = mesh!;
    // Eight one-second jobs on two GPUs: most wait far past the 0.2 s the SLO allows.
    const ids = await Promise.all(Array.from({ length: 8 }, () => m.client.submit(job(20, PriorityClass.URGENT)).then((r) => r.task!.id)));
    const alert = page.locator('#alerts li[data-alert="SloMissed"]').first();
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.locator('.alert-labels').textContent()).toContain('slo=urgent-queue');
    await page.locator('#slos tr[data-slo="urgent-queue"] .pill', { hasText: 'missed' }).waitFor({ timeout: 30_000 });
    await Promise.all(ids.map((id) => untilFinished(m.client, id, 30_000)));
  }, 90_000);

  it("opens a task's timeline and priority explanation from the search box", async () => {
    const m = mesh!;
    // A finished job of its own, so this test runs alone too.
    const normalJob = (await m.client.submit(job(20, PriorityClass.NORMAL))).task!.id;
    await untilFinished(m.client, normalJob, 30_000);
    await page.fill('#task-id', normalJob);
    await page.press('#task-id', 'Enter');
    await page.locator(`#task-detail[data-task-id="${normalJob}"]`).waitFor();
    const field = (name: string) => page.locator(`#task-detail [data-field="${name}"]`).textContent();
    expect(await field('state')).toBe('succeeded');
    expect(await field('tenant')).toBe('contract');
    expect(await field('class')).toBe('normal');
    expect(await field('node')).toMatch(/^contract-node \(GPU \d\)$/);
    const states = await page.locator('#timeline li').evaluateAll((items) => items.map((li) => li.getAttribute('data-state')));
    expect(states[0]).toMatch(/^(pending|queued)$/);
    expect(states).toEqual(expect.arrayContaining(['queued', 'assigned', 'running']));
    expect(states[states.length - 1]).toBe('succeeded');
    expect(Number(await field('priority'))).toBeGreaterThan(0);
    expect(await page.locator('#explanation tr[data-factor]').count()).toBeGreaterThan(0);

    // The screenshot shows the search open, the alert and the charts with history.
    await page.screenshot({ path: process.env.AUTOGLM_DASHBOARD_SCREENSHOT ?? path.join(shots, 'dashboard.png'), fullPage: true });

    // An unknown id and a malformed one say so.
    await page.fill('#task-id', '00000000-0000-4000-8000-000000000000');
    await page.press('#task-id', 'Enter');
    await page.locator('#task-detail .message.error', { hasText: 'does not exist' }).waitFor();
    await page.fill('#task-id', 'not-a-task');
    await page.press('#task-id', 'Enter');
    await page.locator('#task-detail .message.error', { hasText: 'is not a task id' }).waitFor();
  }, 60_000);

  it('loaded every script and style without a CSP violation or a script error', () => {
    expect(problems).toEqual([]);
  });
});
