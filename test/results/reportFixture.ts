/**
 * A campaign's calls written through the store's own steps (createCalls, beginAttempt, endAttempt, applyTransition:
 * what the consumer, the agent and an operator do), on a clock that moves five minutes per call, so a report has
 * every kind of line to show: people reached (with talk time, survey answers, a transfer), voicemail, busy after
 * three attempts, no answer after two, an invalid number, a call still queued, one canceled.
 */
import type { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { terminalTransition, type CallResult, type Outcome } from '../../src/core/outcomes.js';
import { clockReading, MINUTE, SECOND, type Clock } from '../../src/core/time.js';

/** 2026-03-02T09:00:00Z: the first call's attempt. */
export const SEED_START_MS = Date.UTC(2026, 2, 2, 9, 0, 0);
const STEP_MS = 5 * MINUTE;

const CHAR_A = 97;
const NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Margaret', 'Dennis', 'Radia', 'Tim'];

/** What each call of the seed is, by its index modulo 9. */
const PLAN: (Outcome | 'pending')[] = ['answered', 'answered', 'voicemail', 'transferred', 'busy', 'no_answer', 'invalid_number', 'pending', 'canceled'];

export interface SeededCall {
  callId: string;
  phoneNumber: string;
  outcome: Outcome | 'pending';
  firstName: string;
  key?: string;
}

/** A number per call: +1 415 555 01xx. */
export const seedNumber = (i: number) => `+1415555${String(100 + i).padStart(4, '0')}`;

/** Writes `count` calls of `campaignId` (see the file's comment) and returns them. */
export async function seedCampaign(redis: Redis, prefix: string, campaignId: string, count: number): Promise<SeededCall[]> {
  let now = SEED_START_MS;
  const clock: Clock = clockReading(() => now);
  const store = new CallStore(redis, prefix, clock);
  const calls: SeededCall[] = [];
  for (let i = 0; i < count; i++) {
    const outcome = PLAN[i % PLAN.length] ?? 'pending';
    // unique names (Ada, Grace, … then Adab, Graceb, …) so a search for one finds one call
    const firstName = `${NAMES[i % NAMES.length] ?? 'Sam'}${i >= NAMES.length ? String.fromCharCode(CHAR_A + Math.floor(i / NAMES.length)) : ''}`;
    const call: SeededCall = { callId: `seed-${String(i).padStart(3, '0')}`, phoneNumber: seedNumber(i), outcome, firstName, key: i % 3 === 0 ? `appt-${i}` : undefined };
    calls.push(call);
    const identity = { callId: call.callId, campaignId, phoneNumber: call.phoneNumber, metadata: { first_name: firstName, clinic: i % 2 === 0 ? 'north' : 'south' } };
    await store.createCalls(campaignId, [{ ...identity, idempotencyKey: call.key }]);
    now = SEED_START_MS + i * STEP_MS;
    const end = async (attempt: number, fields: Omit<CallResult, 'callId' | 'campaignId' | 'endedAt' | 'attempt'>) => {
      const result: CallResult = { callId: call.callId, campaignId, endedAt: now, attempt, ...fields };
      const applied = await store.applyTransition(result, terminalTransition(result));
      if (applied.status !== 'applied') throw new Error(`seed: ${call.callId} not ended: ${JSON.stringify(applied)}`);
    };
    const ring = async (attempt: number) => {
      // the dial goes out (marked sent, as a consumer's claim marks it): the call counts as dialed
      await store.beginAttempt(identity, attempt, `room-${call.callId}-${attempt}`, { dialSent: true });
      now += 30 * SECOND;
    };
    switch (outcome) {
      case 'answered':
      case 'voicemail':
      case 'transferred': {
        await ring(1);
        await store.endAttempt(campaignId, call.callId, 1, 'in_call', { result: 'answered' });
        const talkS = outcome === 'voicemail' ? 20 : 60 + i;
        now += talkS * SECOND;
        await end(1, {
          outcome,
          reportedBy: 'agent',
          durationMs: talkS * SECOND,
          ...(outcome === 'transferred' ? { transfer: { mode: 'cold' as const, target: 'tel:+14155550999' } } : {}),
          ...(outcome === 'answered' ? { surveyAnswers: [{ question: 'Will you attend?', answer: i % 2 === 0 ? 'yes' : 'no' }] } : {}),
        });
        break;
      }
      case 'busy':
      case 'no_answer': {
        const attempts = outcome === 'busy' ? 3 : 2;
        for (let a = 1; a <= attempts; a++) {
          await ring(a);
          await store.endAttempt(campaignId, call.callId, a, a < attempts ? 'waiting_retry' : 'dialing', { result: outcome });
        }
        await end(attempts, { outcome, reportedBy: 'consumer', ...(outcome === 'busy' ? { sipStatusCode: 486, sipStatus: 'Busy Here' } : { reason: 'rang out' }) });
        break;
      }
      case 'invalid_number':
        await ring(1);
        await end(1, { outcome, reportedBy: 'consumer', sipStatusCode: 404, sipStatus: 'Not Found' });
        break;
      case 'canceled':
        await end(0, { outcome, reportedBy: 'operator', reason: 'canceled by the operator' });
        break;
      case 'pending':
        break;
    }
  }
  return calls;
}
