/**
 * `dialer call <id>`: what it says of a call's attempts and of when a waiting call is due. An attempt canceled while it
 * waited for its DIAL_CPS slot is shown as never dialed, not as in progress, and counts as no attempt in the report; a call waiting for its time shows that
 * time (the one `enqueue --at` gave it, or the one `move` set) and when it expires, in the text and in `--json`.
 */
import { describe, expect, it } from 'vitest';
import { HOUR, MINUTE } from '../../src/core/time.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { moveCall } from '../../src/schedules/moveCall.js';
import { systemClock } from '../../src/core/time.js';
import { useProducerFixture, type ProducerFixture } from '../helpers/producerFixture.js';
import { runCliInProcess } from '../helpers/runCli.js';
import { testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

const prefix = uniquePrefix('call-command');
const campaignId = 'call-view';
let f: ProducerFixture;
useProducerFixture(prefix, 3, (fixture) => (f = fixture));
const env = () => ({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });

describe('dialer call', () => {
  it('shows an attempt canceled while it waited for its dial slot as not dialed, not as in progress', async () => {
    const { callId } = await f.producer.enqueueCall({ phoneNumber: '+14155550171', campaignId });
    // a consumer took it and waits for its DIAL_CPS slot: the attempt began, its dial not sent
    await f.store.beginAttempt({ callId, campaignId, phoneNumber: '+14155550171', metadata: {} }, 1, `room-${callId}-1`);
    // an id given twice is one call
    expect(await cancelCalls(f.connection, prefix, { campaignId, callIds: [callId, callId] })).toEqual({ canceled: [callId], inFlight: [], alreadyEnded: [], unknown: [] });

    const shown = await runCliInProcess(['call', callId], env());
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toContain('in progress');
    expect(shown.stdout).toMatch(/^ {4}1 {2}\S+ {2}not dialed \(the call ended canceled first\) {2}\(room /m);
    expect(shown.stdout).toContain('attempts     0 (1 begun, 1 not dialed)');
    const json = JSON.parse((await runCliInProcess(['call', callId, '--json'], env())).stdout) as { attempts: number; attemptLog: { dialSent: boolean }[] };
    expect(json.attemptLog.map((a) => a.dialSent)).toEqual([false]);
    expect(json.attempts).toBe(0);
    // the campaign report counts the dials that went out too: none
    const report = await runCliInProcess(['report', '--campaign', campaignId, '--json'], env());
    expect(report.code, report.stderr).toBe(0);
    const calls = (JSON.parse(report.stdout) as { calls: { callId: string; attempts: number }[] }).calls;
    expect(calls.find((c) => c.callId === callId)?.attempts).toBe(0);
    // no dial went out: no attempt times either
    expect(calls.find((c) => c.callId === callId)).not.toHaveProperty('firstAttemptAt');
    expect(calls.find((c) => c.callId === callId)).not.toHaveProperty('lastAttemptAt');
    const table = await runCliInProcess(['report', '--campaign', campaignId], env());
    expect(table.stdout).toMatch(new RegExp(`^ +${callId} .* canceled +0 `, 'm'));
  });

  it('counts an attempt logged twice (a platform error, then its dial) as one begun attempt', async () => {
    const { callId } = await f.producer.enqueueCall({ phoneNumber: '+14155550173', campaignId });
    const identity = { callId, campaignId, phoneNumber: '+14155550173', metadata: {} };
    await f.store.beginAttempt(identity, 1, `call-${callId}-1`);
    await f.store.endAttempt(campaignId, callId, 1, 'waiting_retry', { result: 'platform_error' });
    await f.store.beginAttempt(identity, 1, `call-${callId}-1`);
    await f.store.endAttempt(campaignId, callId, 1, 'in_call', { result: 'answered' });

    const shown = await runCliInProcess(['call', callId], env());
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^ {2}attempts {5}1$/m);
    expect(shown.stdout).toMatch(/^ {4}1 {2}\S+ → \S+ {2}platform_error {2}/m);
    expect(shown.stdout).toMatch(/^ {4}1 {2}\S+ → \S+ {2}answered {2}/m);
  });

  it('shows when a waiting call is due and when it expires, and the new time after a move', async () => {
    const start = Date.now() + HOUR;
    const expires = start + 2 * HOUR;
    const { callId } = await f.producer.enqueueCall({ phoneNumber: '+14155550172', campaignId, notBefore: start, expiresAt: expires });
    const before = await runCliInProcess(['call', callId, '--json'], env());
    expect(before.code, before.stderr).toBe(0);
    const shown = JSON.parse(before.stdout) as { dueAt?: string; expiresAt?: string };
    expect(shown.expiresAt).toBe(new Date(expires).toISOString());
    // the time asked for, to the millisecond (not the producer's now + the delay, a few ms later)
    expect(shown.dueAt).toBe(new Date(start).toISOString());

    const moved = await moveCall(f.connection, prefix, systemClock, { campaignId, callId }, start + 30 * MINUTE);
    expect(moved.status).toBe('moved');
    const after = await runCliInProcess(['call', callId], env());
    const due = /^ {2}due {10}(\S+)$/m.exec(after.stdout)?.[1];
    // changeDelay counts from BullMQ's own now, read a moment after the move's
    expect(Math.abs(Date.parse(due ?? '') - (start + 30 * MINUTE))).toBeLessThan(50);
    expect(after.stdout).toContain(`  expires      ${new Date(expires).toISOString()}`);
  });
});
