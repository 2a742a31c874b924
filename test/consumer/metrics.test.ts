/** Prometheus metrics: attempts by result, dial times, ringing calls, held calls, applied outcomes, on /metrics. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { createDialerMetrics, startMetricsServer, type MetricsServer } from '../../src/core/metrics.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';

let p: TestPipeline;
let dialer: DialWorkerHandle;
let results: ResultsWorkerHandle;
let server: MetricsServer;
const metrics = createDialerMetrics();

beforeAll(async () => {
  p = await startTestPipeline('metrics', {
    dialers: 0,
    network: { default: { type: 'answer', afterMs: 10, callee: { kind: 'human' } }, numbers: { '+14155559302': { type: 'busy' } } },
  });
  await p.results.close(); // this test's results worker counts the outcomes
  results = await startResultsWorker({ config: p.config, logger: silentLogger, metrics });
  dialer = await startDialWorker({ config: p.config, logger: silentLogger, metrics });
  server = await startMetricsServer(metrics.registry, 0);
});

afterAll(async () => {
  await dialer.close(true);
  await results.close(true);
  await server.close();
  await p.close();
});

/** The value of one sample line of the scraped text, e.g. `dialer_dial_attempts_total{result="busy"}`. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('metrics', () => {
  it('counts attempts by result, dial times, held calls and applied outcomes, and serves them on /metrics', async () => {
    const answered = await p.enqueue({ phoneNumber: '+14155559301', campaignId: 'm' });
    const busy = await p.enqueue({ phoneNumber: '+14155559302', campaignId: 'm' });
    await p.store.pauseCampaign('m-paused');
    await p.enqueue({ phoneNumber: '+14155559303', campaignId: 'm-paused' });
    await p.waitForOutcome('m', busy);
    await p.store.applyTerminal({ callId: answered, campaignId: 'm', outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });

    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(sample(text, 'dialer_dial_attempts_total{result="answered"}')).toBe(1);
    expect(sample(text, 'dialer_dial_attempts_total{result="busy"}')).toBe(3);
    expect(sample(text, 'dialer_dial_seconds_count{result="busy"}')).toBe(3);
    expect(sample(text, 'dialer_calls_held_total{reason="paused"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'dialer_calls_ringing')).toBe(0);
    expect(sample(text, 'dialer_call_outcomes_total{outcome="busy"}')).toBe(1);
    expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
  });
});
