/**
 * `dialer report --campaign ID --html FILE` looked at as a person would: the page the real CLI writes is opened in
 * headless Chromium (Debian's `chromium`, installed by scripts/ensure-chromium.sh when missing and this is root),
 * its figures compared with the store, the search box typed into, and a screenshot taken (REPORT_SCREENSHOT_DIR keeps
 * it for a look). Without a Chromium the browser half skips, saying why.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { CallStore } from '../../src/core/callStore.js';
import { systemClock } from '../../src/core/time.js';
import { runCli } from '../helpers/runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { seedCampaign, type SeededCall } from './reportFixture.js';

const ENSURE = fileURLToPath(new URL('../../scripts/ensure-chromium.sh', import.meta.url));
/** Installing chromium with apt-get takes a minute or two on a first run. */
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const CALLS = 40;

function findChromium(): { path: string } | { skip: string } {
  try {
    const out = execFileSync('bash', [ENSURE], { encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
    const path = out.trim().split('\n').at(-1) ?? '';
    return path ? { path } : { skip: 'scripts/ensure-chromium.sh printed no path' };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    return { skip: `no Chromium for the HTML report test: ${stderr || (err as Error).message}` };
  }
}
const browserPath = findChromium();
if ('skip' in browserPath) console.warn(`SKIPPED: ${browserPath.skip}`);

const url = testRedisUrl();
const prefix = uniquePrefix('report-html');
const campaignId = 'html-report';
let redis: Redis;
let dir: string;
let seeded: SeededCall[];
let browser: Browser | undefined;

beforeAll(async () => {
  redis = new Redis(url);
  dir = await mkdtemp(join(tmpdir(), 'report-html-'));
  await new CampaignStore(redis, prefix, systemClock).create({
    id: campaignId,
    name: 'March appointment reminders',
    cps: 2,
    max_active_calls: 5,
    window: { hours: '09:00-18:00', days: 'mon-fri', time_zone: 'Europe/London' },
    webhook: { url: 'https://example.com/hooks/calls', secret: 'do-not-leak-this-secret' },
  });
  seeded = await seedCampaign(redis, prefix, campaignId, CALLS);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
});

async function writeReport(file: string, extra: string[] = []): Promise<string> {
  const run = await runCli(['report', '--campaign', campaignId, '--html', file, ...extra], { REDIS_URL: url, QUEUE_PREFIX: prefix, DIAL_TIME_ZONE: 'UTC' });
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout).toContain(`${CALLS} calls, ${CALLS} listed`);
  return readFile(file, 'utf8');
}


/** Screenshots tried before the test gives up: a starved renderer (two full test runs at once) answered one with "Unable to capture screenshot". */
const SCREENSHOT_TRIES = 3;

/** A screenshot of the viewport, asked again when Chromium could not capture one (its protocol error, not ours). */
async function screenshotOnce(page: Page): Promise<Buffer> {
  for (let tries = 1; ; tries++) {
    try {
      return await page.screenshot({ fullPage: false });
    } catch (err) {
      if (tries >= SCREENSHOT_TRIES || !String(err).includes('Unable to capture screenshot')) throw err;
    }
  }
}

describe('report --html', () => {
  it('writes one self-contained page: nothing fetched, numbers masked, the webhook secret never written', async () => {
    const html = await writeReport(join(dir, 'masked.html'));
    expect(html).toContain("default-src 'none'");
    expect(html).not.toMatch(/<(link|img|iframe)\b|\bsrc=|@import|url\(/i);
    expect(html).not.toContain('do-not-leak-this-secret');
    for (const call of seeded) expect(html).not.toContain(call.phoneNumber);
    expect(html).toContain('+1 ••••••0100');
    const full = await writeReport(join(dir, 'full.html'), ['--full-numbers']);
    for (const call of seeded) expect(full).toContain(call.phoneNumber);
  }, 60_000);

  it('exits 2 naming the path when the file cannot be written (a folder that does not exist, a folder given as the file)', async () => {
    for (const bad of [join(dir, 'no-such-folder', 'x.html'), dir]) {
      const run = await runCli(['report', '--campaign', campaignId, '--html', bad], { REDIS_URL: url, QUEUE_PREFIX: prefix });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/--html .*cannot write it \((ENOENT|EISDIR)\)/);
    }
  }, 60_000);

  describe.skipIf('skip' in browserPath)('in Chromium', () => {
    let page: Page;
    const requests: string[] = [];
    const file = () => join(dir, 'masked.html');

    beforeAll(async () => {
      if (!('path' in browserPath)) return;
      await writeReport(file());
      browser = await chromium.launch({
        executablePath: browserPath.path,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-sync', '--disable-component-update'],
      });
      page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(file()).href);
    }, 120_000);

    const text = (selector: string) => page.locator(selector).innerText();
    const visibleRows = () => page.locator('#calls tbody tr:not([hidden])').count();

    it("shows the store's counts: calls, each outcome, pending, pick-up rate, and one row per call", async () => {
      const store = new CallStore(redis, prefix, systemClock);
      const counters = await store.counters(campaignId);
      expect(await text('#fig-total .value')).toBe(String(counters.total));
      for (const [outcome, n] of Object.entries(counters.byOutcome)) {
        expect(await text(`#outcomes tr[data-outcome="${outcome}"] td.num`)).toBe(String(n));
      }
      expect(await text('#outcomes tr[data-outcome="pending"] td.num')).toBe(String(counters.total - counters.terminal));
      // people (answered + transferred) over dialed calls that ended (canceled ones never rang)
      const people = (counters.byOutcome.answered ?? 0) + (counters.byOutcome.transferred ?? 0);
      const dialed = counters.terminal - (counters.byOutcome.canceled ?? 0);
      expect(await text('#fig-pickup .value')).toBe(`${((100 * people) / dialed).toFixed(1)} %`);
      expect(await text('#fig-transfers .value')).toBe(String(counters.byOutcome.transferred ?? 0));
      expect(await page.locator('#calls tbody tr').count()).toBe(CALLS);
      expect(await visibleRows()).toBe(CALLS);
      expect(await text('#shown-count')).toBe(`${CALLS} of ${CALLS} calls`);
      // the chart has a bar part per outcome and time step, each saying what it counts
      expect(await page.locator('#timeline rect').count()).toBeGreaterThan(5);
      expect(await text('#settings')).toContain('max_active_calls');
      expect(await text('#settings')).not.toContain('do-not-leak');
    });

    it('filters the rows as a person types in the search box, and by outcome', async () => {
      const busy = seeded.filter((c) => c.outcome === 'busy').length;
      await page.locator('#search').fill('busy');
      expect(await visibleRows()).toBe(busy);
      expect(await text('#shown-count')).toBe(`${busy} of ${CALLS} calls`);

      // a name from the list's metadata finds its one call, whatever the case
      const target = seeded[13];
      if (!target) throw new Error('seed too small');
      await page.locator('#search').fill(target.firstName.toUpperCase());
      expect(await visibleRows()).toBe(1);
      expect(await page.locator('#calls tbody tr:not([hidden]) td.id').innerText()).toBe(target.callId);

      // the last digits people read off the masked number; every word must match
      await page.locator('#search').fill(`${target.phoneNumber.slice(-4)} ${target.outcome}`);
      expect(await visibleRows()).toBe(1);
      await page.locator('#search').fill('nobody-has-this');
      expect(await visibleRows()).toBe(0);
      expect(await page.locator('#no-match').isVisible()).toBe(true);

      await page.locator('#search').fill('');
      await page.locator('#outcome-filter').selectOption('pending');
      expect(await visibleRows()).toBe(seeded.filter((c) => c.outcome === 'pending').length);
      await page.locator('#outcome-filter').selectOption('');
      expect(await visibleRows()).toBe(CALLS);
    });

    it('opens a filtered view from its address (#q=…)', async () => {
      await page.goto(`${pathToFileURL(file()).href}#q=voicemail`);
      await page.reload();
      expect(await visibleRows()).toBe(seeded.filter((c) => c.outcome === 'voicemail').length);
      await page.goto(pathToFileURL(file()).href);
    });

    it('fetches nothing but the file itself, and renders a screenshot worth looking at', async () => {
      expect(requests.filter((r) => !r.startsWith('file://'))).toEqual([]);
      const shot = await screenshotOnce(page);
      expect(shot.length).toBeGreaterThan(20_000); // a blank page is a few KB
      const keep = process.env.REPORT_SCREENSHOT_DIR;
      if (keep) await writeFile(join(keep, 'report-html.png'), shot);
    });
  });
});
