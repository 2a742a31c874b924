/**
 * Moving a scheduled call before it rings (`dialer move`, moveCall): a delayed call comes up at its new time, moved to
 * now it rings at once; calls ringing, ended or already due are not moved, and the answer says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/core/errors.js';
import { HOUR, MINUTE, systemClock } from '../../src/core/time.js';
import { moveCall } from '../../src/schedules/moveCall.js';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { runCliInProcess as runCli } from '../helpers/runCli.js';

/** BullMQ's delayed set scores a job by its due time × 0x1000 (getDelayedScore.lua). */
const DELAYED_SCORE_FACTOR = 0x1000;
const campaignId = 'moves';
let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline('move-call', { dialers: 0, network: { default: { type: 'busy', afterMs: 10 } } });
});
afterAll(async () => {
  await p.close();
});

const dueAt = async (callId: string) => {
  const score = await p.redis.zscore(`${p.config.queuePrefix}:calls:delayed`, callId);
  return score === null ? undefined : Math.floor(Number(score) / DELAYED_SCORE_FACTOR);
};
const move = (callId: string, at: number) => moveCall(p.redis, p.config.queuePrefix, systemClock, { campaignId, callId }, at);

describe('moving a scheduled call', () => {
  it('moves a delayed call to a new time, and refuses one past its expiry or 90 days ahead', async () => {
    const now = Date.now();
    const callId = await p.enqueue({ phoneNumber: '+14155550301', campaignId, notBefore: now + HOUR, expiresAt: now + 5 * HOUR });
    expect(Math.abs(((await dueAt(callId)) ?? 0) - (now + HOUR))).toBeLessThan(5_000);
    const moved = await move(callId, now + 3 * HOUR);
    expect(moved).toMatchObject({ status: 'moved', at: now + 3 * HOUR });
    expect(Math.abs(((await dueAt(callId)) ?? 0) - (now + 3 * HOUR))).toBeLessThan(5_000);
    await expect(move(callId, now + 6 * HOUR)).rejects.toThrow(/after the call expires/);
    await expect(move(callId, now + 91 * 24 * HOUR)).rejects.toBeInstanceOf(InvalidInputError);
    expect(await move('c-missing', now + HOUR)).toMatchObject({ status: 'not_found' });
  });

  it('rings a call moved to now at once, and then refuses to move it: it is ringing or over', async () => {
    const callId = await p.enqueue({ phoneNumber: '+14155550302', campaignId, notBefore: Date.now() + HOUR });
    await p.startDialer();
    expect(await move(callId, Date.now())).toMatchObject({ status: 'moved' });
    const record = await p.waitForOutcome(campaignId, callId, 15_000);
    expect(record.outcome).toBe('busy');
    expect(p.sim.calls.filter((c) => c.phoneNumber === '+14155550302')).toHaveLength(record.attempts); // busy: each attempt rang once
    expect(await move(callId, Date.now() + HOUR)).toMatchObject({ status: 'not_movable', state: 'busy', why: 'it already ended as busy' });
  });

  it('moves a call by its key from the command line, and says why when it cannot', async () => {
    const callId = await p.enqueue({ phoneNumber: '+14155550303', campaignId, key: 'appt-303', notBefore: Date.now() + 30 * MINUTE });
    const moved = await runCli(['move', '--key', 'appt-303', '--campaign', campaignId, '--delay', '2h'], p.env);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(new RegExp(`^moved ${callId} \\(campaign ${campaignId}\\) to 20\\d\\d-`));
    expect(Math.abs(((await dueAt(callId)) ?? 0) - (Date.now() + 2 * HOUR))).toBeLessThan(60_000);
    // by id, the campaign found by itself
    expect((await runCli(['move', callId, '--at', new Date(Date.now() + 3 * HOUR).toISOString()], p.env)).code).toBe(0);

    const ended = (await p.store.list(campaignId)).find((r) => r.outcome === 'busy');
    const refused = await runCli(['move', ended?.callId ?? 'none', '--campaign', campaignId, '--delay', '1h'], p.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('cannot be moved: it already ended as busy');
    expect((await runCli(['move', '--key', 'appt-303', '--delay', '1h'], p.env)).stderr).toContain('--key needs --campaign');
  }, 60_000);
});
