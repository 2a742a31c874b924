/**
 * `dialer report --campaign ID --watch`: the live view, run by the real CLI against a running pipeline (simulator,
 * dial worker, results worker) with its stdout a pipe (frames printed one after another), and runWatch alone with a
 * fake terminal (frames redrawn in place, the cursor given back on Ctrl-C).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CampaignStore } from '../../src/campaigns/campaignStore.js';
import { watchRefreshMs } from '../../src/cli/reportCommand.js';
import { InvalidInputError } from '../../src/core/errors.js';
import { SECOND, systemClock } from '../../src/core/time.js';
import { isDone, runWatch, WatchReader, type WatchSnapshot } from '../../src/results/report/watchView.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';

const CALLS = 8;
const CAP = 2;
/** How long each call rings: several frames fall within one call, so a frame shows calls ringing. */
const RING_MS = 400;
/** The view's refresh (`--refresh`; a second by default): frames come this often, whatever the interval. */
const REFRESH = '100ms';
let p: TestPipeline;

beforeAll(async () => {
  // every call rings RING_MS and is busy, once: calls go 2 at a time (the campaign's cap), the others held meanwhile
  p = await startTestPipeline('report-watch', { dialers: 0, network: { default: { type: 'busy', afterMs: RING_MS } }, env: { DIAL_MAX_ATTEMPTS: '1', DIAL_RINGING_TIMEOUT_S: '5' } });
});
afterAll(async () => {
  await p.close();
});

describe('report --watch', () => {
  it('follows a running campaign at its refresh interval (a second unless --refresh): progress, calls ringing, calls held at its cap and why; exits when every call has ended', async () => {
    await new CampaignStore(p.redis, p.config.queuePrefix, systemClock).create({ id: 'watched', max_active_calls: CAP });
    for (let i = 0; i < CALLS; i++) await p.enqueue({ phoneNumber: `+1415555${String(2000 + i)}`, campaignId: 'watched' });
    const watch = startCli(['report', '--campaign', 'watched', '--watch', '--refresh', REFRESH], p.env);
    // the dialer starts once the view is up: on a loaded machine the CLI's start-up can outlast the whole campaign
    await waitFor(() => (watch.output().stdout.includes('campaign watched') ? true : undefined), 30_000, 'the first frame');
    await p.startDialer();
    const run = await watch.done;
    expect(run.code, run.stderr).toBe(0);
    const frames = run.stdout.trim().split('\n\n');
    // 8 calls, 2 at a time, each round held back about a second (the consumer's recheck of a full cap): 3 s and more
    expect(frames.length).toBeGreaterThanOrEqual(10);
    expect(frames[0]).toMatch(/^campaign watched · active · \d\d:\d\d:\d\d$/m);
    expect(frames.at(-1)).toContain(`] ${CALLS}/${CALLS} ended (100.0 %), 0 pending`);
    expect(frames.at(-1)).toContain(`outcomes: busy ${CALLS}`);
    expect(run.stdout).not.toContain('\u001b['); // not a terminal: no escape codes
    const ringing = frames.map((f) => Number(/now: (\d+) ringing/.exec(f)?.[1] ?? 0));
    expect(Math.max(...ringing)).toBeGreaterThan(0);
    expect(Math.max(...ringing)).toBeLessThanOrEqual(CAP);
    // the reason each held call was recorded with by the consumer, counted (src/core/heldCalls.ts)
    expect(run.stdout).toMatch(new RegExp(`held: campaign at its cap of ${CAP} calls in progress \\(\\d+ calls\\)`));
    expect(run.stdout).toMatch(/last minute: \d+ dials sent, \d+ calls ended/);
    expect(frames.at(-1)).toContain(`last minute: ${CALLS} dials sent, ${CALLS} calls ended`);
  }, 60_000);
});

describe('the watch counting dials', () => {
  it("counts an attempt's dial once when its claim was taken back and made again (a new dialSentAt, the same attempt)", async () => {
    const campaignId = 'watch-reclaimed';
    const callId = 'reclaimed-1';
    const identity = { callId, campaignId, phoneNumber: '+14155553300', metadata: {} };
    await p.store.createCalls(campaignId, [identity]);
    await p.store.beginAttempt(identity, 1, `call-${callId}-1`);
    // claimDial's sent mark: the attempt and when
    await p.redis.hset(p.store.keys.callRecord(campaignId, callId), 'dialSentAttempt', '1', 'dialSentAt', String(Date.now() - 10));
    const reader = new WatchReader(p.redis, p.store, new CampaignStore(p.redis, p.config.queuePrefix, systemClock), campaignId, { prefix: p.config.queuePrefix, timeZone: 'UTC' }, systemClock);
    expect((await reader.read()).lastMinute.dialed).toBe(1);
    // what a stale claim leaves: the sent mark of the same attempt, written again a moment later (dialAttempt.ts)
    await p.redis.hset(p.store.keys.callRecord(campaignId, callId), 'dialSentAt', String(Date.now() - 5));
    expect((await reader.read()).lastMinute.dialed).toBe(1);
  });
});

describe('report --watch --refresh', () => {
  it('redraws every second unless told otherwise, and refuses an interval it cannot read or outside 100ms to 1h', () => {
    expect(watchRefreshMs(undefined)).toBe(SECOND);
    expect(watchRefreshMs('250ms')).toBe(250);
    expect(watchRefreshMs('2s')).toBe(2 * SECOND);
    for (const bad of ['soon', '10ms', '2h']) expect(() => watchRefreshMs(bad)).toThrow(InvalidInputError);
  });
});

describe('runWatch on a terminal', () => {
  const snapshot = (terminal: number, total = 4): WatchSnapshot => ({
    campaignId: 'c',
    at: 1_000 * terminal,
    counters: { total, terminal, byOutcome: terminal ? { answered: terminal } : {} },
    lastMinute: { dialed: terminal, ended: terminal },
    states: { queued: total - terminal, dialing: 0, waiting_retry: 0, in_call: 0 },
    ringing: 0,
    returnedUndialed: 0,
    delayed: 0,
    activeLeases: 0,
    global: undefined,
    campaign: undefined,
    paused: false,
    held: [],
  });

  it('redraws in place with the cursor hidden, and gives the cursor back when Ctrl-C stops it', async () => {
    const written: string[] = [];
    const stop = new AbortController();
    let reads = 0;
    const last = await runWatch({
      read: async () => {
        reads += 1;
        if (reads === 2) stop.abort(); // Ctrl-C while the second frame is read
        return snapshot(1);
      },
      output: { isTTY: true, write: (t) => written.push(t) },
      signal: stop.signal,
      timeZone: 'UTC',
      refreshMs: 5,
    });
    expect(reads).toBe(2);
    expect(last && isDone(last)).toBe(false);
    expect(written[0]).toBe('\u001b[?25l');
    expect(written.filter((w) => w.startsWith('\u001b[H\u001b[2J'))).toHaveLength(2);
    expect(written.at(-1)).toBe('\u001b[?25h');
  });

  it('stops by itself once every call has ended', async () => {
    const readings = [snapshot(0), snapshot(2), snapshot(4), snapshot(4)];
    let i = 0;
    const written: string[] = [];
    await runWatch({ read: async () => readings[Math.min(i++, readings.length - 1)] ?? snapshot(4), output: { isTTY: false, write: (t) => written.push(t) }, signal: new AbortController().signal, timeZone: 'UTC', refreshMs: 1 });
    expect(written).toHaveLength(3);
    expect(written.at(-1)).toContain('4/4 ended (100.0 %)');
  });
});
