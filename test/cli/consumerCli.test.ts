import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { runCli, startCli } from '../helpers/runCli.js';
import { waitFor } from '../helpers/waitFor.js';

const campaignId = 'cli';
let p: TestPipeline;

beforeAll(async () => {
  // no in-process dial worker: the CLI consumer under test dials
  p = await startTestPipeline('consumer-cli', { dialers: 0 });
});

afterAll(async () => {
  await p.close();
});

describe('dialer consumer / results / report', () => {
  it('refuses to start without LiveKit credentials and names the missing variable', async () => {
    const { LIVEKIT_URL: _url, ...env } = p.env;
    const run = await runCli(['consumer'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/LIVEKIT_URL/);
  });

  it('rejects malformed settings with a readable error', async () => {
    const run = await runCli(['consumer'], { ...p.env, DIAL_CPS: 'fast' });
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('dialer: DIAL_CPS: must be a number (got "fast")\n');
  });

  it('drains on SIGTERM sent to the installed `dialer` command: calls ringing at that moment are finished, then it exits 0', async () => {
    p.sim.network.setBehavior('+14155557001', { type: 'answer', afterMs: 1500 });
    p.sim.network.setBehavior('+14155557002', { type: 'busy' });
    const ringing = await p.enqueue({ phoneNumber: '+14155557001', campaignId });
    const busy = await p.enqueue({ phoneNumber: '+14155557002', campaignId });
    // Through bin/dialer.mjs, as a container's PID 1 or a supervisor runs it: the signal must reach the CLI itself.
    const consumer = startCli(['consumer'], { ...p.env, DIAL_RINGING_TIMEOUT_S: '10' });
    try {
      await waitFor(() => (p.sim.calls.some((c) => c.phoneNumber === '+14155557001' && c.status === 'ringing') ? true : undefined), 20_000, 'ringing');
      await p.waitForOutcome(campaignId, busy);
      consumer.child.kill('SIGTERM');
      const run = await consumer.done;
      expect(run.code).toBe(0);
      const record = await p.store.get(campaignId, ringing);
      expect(record?.state).toBe('in_call');
      expect(p.sim.calls.filter((c) => c.result === 'pending')).toHaveLength(0);
    } finally {
      if (consumer.child.exitCode === null) consumer.child.kill('SIGKILL');
    }
  });

  it('prints the campaign report as JSON in the documented shape', async () => {
    const run = await runCli(['report', '--campaign', campaignId, '--json'], p.env);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.keys(report).sort()).toEqual(['byOutcome', 'calls', 'campaign', 'pending', 'pickUp', 'total']);
    // the busy call was dialed (3 attempts), nobody picked up: 0 of 1
    expect(report).toMatchObject({ campaign: campaignId, total: 2, pending: 1, byOutcome: { busy: 1 }, pickUp: { percent: 0, people: 0, dialed: 1 } });
    const calls = report.calls as Record<string, unknown>[];
    // complete lines: state, reason, metadata and times besides the number, outcome, attempts and SIP status
    expect(calls).toContainEqual(
      expect.objectContaining({ callId: expect.any(String), phoneNumber: '+14155557002', outcome: 'busy', state: 'terminal', attempts: 3, sipStatusCode: 486, sipStatus: 'Busy Here', reason: expect.any(String), metadata: {}, enqueuedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), endedAt: expect.any(String) }),
    );
    expect(calls).toContainEqual(expect.objectContaining({ callId: expect.any(String), phoneNumber: '+14155557001', outcome: 'pending', state: 'in_call', attempts: 1 }));
  });

  it('prints a table by default', async () => {
    const run = await runCli(['report', '--campaign', campaignId], p.env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Campaign cli: 2 calls, 1 pending/);
    expect(run.stdout).toMatch(/busy\s+1/);
  });

  it('runs the results worker alone and stops cleanly on SIGINT', async () => {
    const results = startCli(['results'], p.env);
    try {
      await p.results.close(); // let the CLI's results worker do the work
      // a call no consumer will take for an hour: still queued, so ending it is the consumer's to report (an agent
      // outcome for a queued call is refused as impossible)
      const callId = await p.enqueue({ phoneNumber: '+14155557003', campaignId: 'cli-results', notBefore: Date.now() + 60 * 60 * 1000 });
      const { ResultReporter } = await import('../../src/core/reportResult.js');
      const reporter = new ResultReporter(p.redis, p.config.queuePrefix);
      await reporter.report({ callId, campaignId: 'cli-results', outcome: 'expired', reportedBy: 'consumer', endedAt: Date.now() });
      await reporter.close();
      await p.waitForOutcome('cli-results', callId, 60_000); // the CLI's own start takes a while on a loaded machine
      results.child.kill('SIGINT');
      expect((await results.done).code).toBe(0);
    } finally {
      if (results.child.exitCode === null) results.child.kill('SIGKILL');
    }
  });
});
