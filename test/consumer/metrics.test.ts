/** Prometheus metrics: attempts by result, dial times, ringing calls, held calls, applied outcomes, on /metrics. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { ConfigError } from '../../src/core/errors.js';
import { loadConfig } from '../../src/core/config.js';
import { createDialerMetrics, startMetricsServer, type MetricsServer } from '../../src/core/metrics.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/waitFor.js';

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

describe('outcomes written outside the results worker', () => {
  it("counts a call canceled by an operator (the CLI or API process, which serves no metrics) once, from the cancel's report", async () => {
    await p.store.pauseCampaign('m-cancel');
    const queued = await p.enqueue({ phoneNumber: '+14155559304', campaignId: 'm-cancel' });
    const text = async () => (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    const before = sample(await text(), 'dialer_call_outcomes_total{outcome="canceled"}') ?? 0;
    const summary = await cancelCalls(p.redis, p.config.queuePrefix, { campaignId: 'm-cancel' });
    expect(summary.canceled).toEqual([queued]);
    const counted = await waitFor(async () => {
      const n = sample(await text(), 'dialer_call_outcomes_total{outcome="canceled"}') ?? 0;
      return n > before ? n : undefined;
    }, 10_000, 'the canceled outcome counted');
    expect(counted).toBe(before + 1);
    // a second cancel finds the call ended and reports nothing more
    expect((await cancelCalls(p.redis, p.config.queuePrefix, { campaignId: 'm-cancel' })).alreadyEnded).toEqual([queued]);
    expect(sample(await text(), 'dialer_call_outcomes_total{outcome="canceled"}')).toBe(before + 1);
  });
});

describe('where /metrics listens', () => {
  it('listens on loopback by default: the metrics have no authentication', async () => {
    const local = await startMetricsServer(createDialerMetrics().registry, 0);
    try {
      expect(local.host).toBe('127.0.0.1');
      expect((await fetch(`http://127.0.0.1:${local.port}/metrics`)).status).toBe(200);
    } finally {
      await local.close();
    }
  });

  it('listens where METRICS_HOST says', async () => {
    const config = loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' });
    const wide = await startMetricsServer(createDialerMetrics().registry, 0, config.metricsHost);
    try {
      expect(wide.host).toBe('0.0.0.0');
      expect((await fetch(`http://127.0.0.1:${wide.port}/metrics`)).status).toBe(200);
    } finally {
      await wide.close();
    }
  });

  it('defaults METRICS_HOST to 127.0.0.1 and refuses a value that is not an address', () => {
    expect(loadConfig({}).metricsHost).toBe('127.0.0.1');
    expect(loadConfig({ METRICS_HOST: '::' }).metricsHost).toBe('::');
    expect(loadConfig({ METRICS_HOST: 'metrics.internal' }).metricsHost).toBe('metrics.internal');
    expect(() => loadConfig({ METRICS_HOST: 'http://0.0.0.0:9464' })).toThrow(ConfigError);
    expect(() => loadConfig({ METRICS_HOST: 'http://0.0.0.0:9464' })).toThrow(/METRICS_HOST/);
  });
});
