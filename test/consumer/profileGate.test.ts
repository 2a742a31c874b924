/**
 * Jobs other services push straight onto `calls` skip the producer's profile check: the consumer checks the agent
 * profile before dialing (src/consumer/dialGates.ts) and ends a call naming one the agent lacks as `failed`, without
 * a dispatch or a ring (the agent would only hang up on the callee 0.7 s after the answer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

let p: TestPipeline;
const campaignId = 'profile-gate';
let nextNumber = 0;
const freshNumber = () => `+1415556${String(1000 + nextNumber++).padStart(4, '0')}`;

beforeAll(async () => {
  p = await startTestPipeline('profile-gate');
});

afterAll(async () => {
  await p.close();
});

describe('the agent profile gate', () => {
  it.each(['no-such-profile', 'constructor', '__proto__'])(
    'a pushed job naming profile %s ends failed, "unknown agent profile", without ringing or dispatching',
    async (profile) => {
      const number = freshNumber();
      p.sim.network.setBehavior(number, { type: 'answer', afterMs: 20 });
      const callId = `gate-${profile.replace(/_/g, 'u')}`;
      await p.calls.add('dial', { call_id: callId, campaign_id: campaignId, phone_number: number, agent_profile: profile }, { jobId: callId });
      const record = await p.waitForOutcome(campaignId, callId);
      expect(record).toMatchObject({ outcome: 'failed', reason: `unknown agent profile "${profile}"`, attempts: 0 });
      expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toEqual([]);
      expect(p.sim.dispatches.filter((d) => d.room.startsWith(`call-${callId}-`))).toEqual([]);
    },
  );

  it('a pushed job naming a profile the agent has rings as usual', async () => {
    const number = freshNumber();
    p.sim.network.setBehavior(number, { type: 'answer', afterMs: 20 });
    await p.calls.add('dial', { call_id: 'gate-survey', campaign_id: campaignId, phone_number: number, agent_profile: 'survey' }, { jobId: 'gate-survey' });
    await waitFor(async () => ((await p.store.get(campaignId, 'gate-survey'))?.state === 'in_call' ? true : undefined), 15_000, 'the call answered');
    expect(p.sim.calls.filter((c) => c.phoneNumber === number)).toHaveLength(1);
  });
});
