import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import * as dialer from '../src/index.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from './helpers/testRedis.js';

const prefix = uniquePrefix('library');

const savedEnv = { ...process.env };

afterEach(() => {
  // the test file's process runs other files after this one: give it its environment back
  for (const key of ['REDIS_URL', 'QUEUE_PREFIX', 'DIAL_MAX_ATTEMPTS']) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

afterAll(async () => {
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('the package as a library', () => {
  it('exports the entry points other services call', () => {
    for (const name of ['enqueueCall', 'enqueueCalls', 'startDialWorker', 'startResultsWorker'] as const) {
      expect(typeof dialer[name]).toBe('function');
    }
  });

  it('keeps the simulator, the simulated agent and the voice agent under entry points of their own', async () => {
    expect(Object.keys(dialer)).not.toContain('startLiveKitSim');
    expect(Object.keys(dialer)).not.toContain('startSimulatedAgent');
    const sim = await import('ai-dialer/sim');
    const harness = await import('ai-dialer/harness');
    const agent = await import('ai-dialer/agent');
    expect(typeof sim.startLiveKitSim).toBe('function');
    expect(typeof harness.startSimulatedAgent).toBe('function');
    expect(typeof agent.runCallJob).toBe('function');
    expect(Object.keys(agent)).not.toContain('startSimulatedAgent');
  });

  it('enqueues with settings from the environment when no options are given', async () => {
    process.env.REDIS_URL = testRedisUrl();
    process.env.QUEUE_PREFIX = prefix;
    process.env.DIAL_MAX_ATTEMPTS = '4';
    const { callId } = await dialer.enqueueCall('+14155550123');
    const { enqueued, rejected } = await dialer.enqueueCalls([{ phoneNumber: '+14155550124', campaignId: 'lib' }, { phoneNumber: 'nope' }]);
    expect(enqueued).toHaveLength(1);
    expect(rejected).toEqual([{ index: 1, reason: expect.stringMatching(/not a valid phone number/) }]);
    const queue = new Queue(dialer.CALLS_QUEUE, { connection: { url: testRedisUrl() }, prefix });
    const job = await queue.getJob(callId);
    expect(job?.data).toMatchObject({ phoneNumber: '+14155550123', campaignId: 'default' });
    expect(job?.opts.attempts).toBe(4);
    await queue.close();
  });
});
