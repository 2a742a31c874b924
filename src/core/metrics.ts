/**
 * Prometheus metrics of a dialer process (prom-client): what operators watch on a campaign's way through. Each
 * process owns one registry (tests make their own); `METRICS_PORT` serves it on `/metrics`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DEFAULT_METRICS_HOST } from './config.js';

/** Dial time from CreateSIPParticipant to answer or failure: ringing takes seconds, a ring-out up to a minute. */
const DIAL_SECONDS_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90];
const HTTP_OK = 200;
const HTTP_NOT_FOUND = 404;
const HTTP_INTERNAL_ERROR = 500;

export interface DialerMetrics {
  registry: Registry;
  /** Dial attempts by how they ended: answered, an outcome (busy, no_answer …), or platform_error. */
  dialAttempts: Counter<'result'>;
  /** Seconds from dialing to answer or failure. */
  dialSeconds: Histogram<'result'>;
  /** Calls ringing in this process now. */
  callsRinging: Gauge;
  /** Calls held back before ringing, by gate: paused, window, predial_error. */
  callsHeld: Counter<'reason'>;
  /**
   * Answered attempts hung up because no agent joined the room within AGENT_JOIN_GRACE_MS (AGENT_JOIN_ASSIGNED_MAX_MS
   * while its job was assigned): counted per attempt, so a call hung up on in two attempts counts twice.
   */
  callsWithoutAgent: Counter;
  /** Terminal outcomes applied by the results worker. */
  callOutcomes: Counter<'outcome'>;
  /** Webhook deliveries by result: delivered, failed (retried), given_up. */
  webhookDeliveries: Counter<'result'>;
}

/** A registry with the dialer's metrics (and Node's process metrics when `processMetrics`). */
export function createDialerMetrics(options: { processMetrics?: boolean } = {}): DialerMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    dialAttempts: new Counter({ name: 'dialer_dial_attempts_total', help: 'Dial attempts by result', labelNames: ['result'], registers }),
    dialSeconds: new Histogram({
      name: 'dialer_dial_seconds',
      help: 'Seconds from dialing to answer or failure',
      labelNames: ['result'],
      buckets: DIAL_SECONDS_BUCKETS,
      registers,
    }),
    callsRinging: new Gauge({ name: 'dialer_calls_ringing', help: 'Calls ringing in this process now', registers }),
    callsHeld: new Counter({ name: 'dialer_calls_held_total', help: 'Calls held back before ringing, by gate', labelNames: ['reason'], registers }),
    callsWithoutAgent: new Counter({
      name: 'dialer_calls_without_agent_total',
      help: 'Answered attempts hung up because no agent joined the room in time (per attempt: a call retried counts again)',
      registers,
    }),
    callOutcomes: new Counter({ name: 'dialer_call_outcomes_total', help: 'Terminal call outcomes applied', labelNames: ['outcome'], registers }),
    webhookDeliveries: new Counter({
      name: 'dialer_webhook_deliveries_total',
      help: 'Result webhook deliveries by result',
      labelNames: ['result'],
      registers,
    }),
  };
}

export interface MetricsServer {
  /** The address it listens on, e.g. 127.0.0.1. */
  host: string;
  port: number;
  /** Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves `registry` on `GET /metrics` at `host:port`. There is no authentication, so the default host is loopback
 * (DEFAULT_METRICS_HOST); a scraper in another container needs METRICS_HOST widened (e.g. 0.0.0.0) behind a firewall.
 */
export async function startMetricsServer(registry: Registry, port: number, host: string = DEFAULT_METRICS_HOST): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(HTTP_NOT_FOUND).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(HTTP_OK, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(HTTP_INTERNAL_ERROR, { 'content-type': 'text/plain' }).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
