import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { SECOND } from '../../src/core/time.js';
import { startProcess, waitUntilReady, type ManagedProcess } from './processes.js';

/**
 * The real LiveKit stack for test:livekit (issue 9): a Redis, `livekit-server --dev` and `livekit-sip`, all on one
 * non-loopback address inside the network namespace scripts/livekit/test.sh made. Every listener is bound to that
 * address or to loopback, STUN points inside the namespace, and external-IP discovery is off, so nothing reaches
 * for the outside (config keys read from livekit-server v1.13.5 config-sample.yaml / cmd/server/main.go and
 * livekit/sip v1.11.0 pkg/config/config.go, pkg/sip/config.go).
 */
export interface LiveKitStackOptions {
  /** Non-loopback address inside the namespace: livekit-sip skips loopback for signalling, libwebrtc for ICE. */
  stackIp: string;
  serverBin: string;
  sipBin: string;
  /** Where configs and logs go (one folder per run). */
  workDir: string;
  redisPort?: number;
}

export interface LiveKitStack {
  /** HTTP URL of livekit-server, for livekit-server-sdk clients. */
  url: string;
  /** WebSocket URL of livekit-server, for agents and rtc-node. */
  wsUrl: string;
  apiKey: string;
  apiSecret: string;
  /** The Redis both servers share; the dialer's tests use it too, under their own key prefixes. */
  redisUrl: string;
  stackIp: string;
  /** livekit-sip's SIP port on stackIp (UDP and TCP). */
  sipPort: number;
  workDir: string;
  /** How long each part took to become ready, and the whole start (ms). */
  startMs: { redis: number; server: number; sip: number; total: number };
  processes: ManagedProcess[];
  /** Ends every process by PID (SIP first, Redis last). Safe to call twice. */
  stop(): Promise<void>;
}

export const LIVEKIT_HTTP_PORT = 7880;
const LIVEKIT_RTC_TCP_PORT = 7881;
/** A small UDP range: a test run has a handful of participants. */
const LIVEKIT_RTC_UDP_PORTS = '50000-50199';
const STUN_PORT_INSIDE = 3478;
const SIP_PORT = 5060;
const SIP_RTP_PORTS = '20000-20199';
const SIP_HEALTH_PORT = 8090;
const DEFAULT_REDIS_PORT = 6399;
const API_KEY = 'devkey';
/** livekit-server warns about secrets shorter than 32 characters outside dev mode; keep one that is long enough. */
const API_SECRET = 'ai-dialer-livekit-test-secret-0123456789';
const READY_TIMEOUT_MS = 60 * SECOND;

function serverConfig(o: Required<Pick<LiveKitStackOptions, 'stackIp'>> & { redisPort: number }): string {
  return [
    `port: ${LIVEKIT_HTTP_PORT}`,
    `bind_addresses: ["${o.stackIp}"]`,
    'redis:',
    `  address: 127.0.0.1:${o.redisPort}`,
    'keys:',
    `  ${API_KEY}: ${API_SECRET}`,
    'rtc:',
    `  tcp_port: ${LIVEKIT_RTC_TCP_PORT}`,
    `  port_range_start: ${LIVEKIT_RTC_UDP_PORTS.split('-')[0]}`,
    `  port_range_end: ${LIVEKIT_RTC_UDP_PORTS.split('-')[1]}`,
    // no STUN discovery of a public IP; clients get a STUN server inside the namespace instead of Google's
    '  use_external_ip: false',
    `  node_ip: ${o.stackIp}`,
    `  stun_servers: ["${o.stackIp}:${STUN_PORT_INSIDE}"]`,
    '  ips:',
    `    includes: ["${o.stackIp}/32"]`,
    'turn:',
    '  enabled: false',
    'logging:',
    '  level: info',
    '  json: true',
    '',
  ].join('\n');
}

function sipConfig(o: { stackIp: string; redisPort: number; wsUrl: string }): string {
  return [
    `api_key: ${API_KEY}`,
    `api_secret: ${API_SECRET}`,
    `ws_url: ${o.wsUrl}`,
    'redis:',
    `  address: 127.0.0.1:${o.redisPort}`,
    `sip_port: ${SIP_PORT}`,
    `listen_ip: ${o.stackIp}`,
    `rtp_port: ${SIP_RTP_PORTS}`,
    // the signalling and media address announced in SIP/SDP: ours, never a STUN-discovered public one
    'use_external_ip: false',
    `nat_1_to_1_ip: ${o.stackIp}`,
    `health_port: ${SIP_HEALTH_PORT}`,
    // livekit-sip refuses every CreateSIPParticipant ("unavailable", no SIP status) while the machine's CPU is busier
    // than this share (pkg/stats/monitor.go Health, pkg/sip/client.go createSIPParticipant; default 0.9). On a shared
    // 2-core test machine that is often; 1.0 never counts as under load.
    'max_cpu_utilization: 1.0',
    'logging:',
    '  level: debug',
    '  json: true',
    '',
  ].join('\n');
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(SECOND) });
  await res.body?.cancel();
  return res.ok;
}

/**
 * Starts Redis, livekit-server (--dev, with a config) and livekit-sip, each waited for (Redis PING, the server's
 * `GET /` and livekit-sip's health port), and returns how to reach them. On any failure, whatever was started is
 * ended before the error is thrown.
 */
export async function startLiveKitStack(options: LiveKitStackOptions): Promise<LiveKitStack> {
  const redisPort = options.redisPort ?? DEFAULT_REDIS_PORT;
  const { stackIp, workDir } = options;
  mkdirSync(workDir, { recursive: true });
  const url = `http://${stackIp}:${LIVEKIT_HTTP_PORT}`;
  const wsUrl = `ws://${stackIp}:${LIVEKIT_HTTP_PORT}`;
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop();
  };
  const t0 = performance.now();
  try {
    const redis = startProcess(
      'redis-server',
      'redis-server',
      ['--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'],
      { logFile: join(workDir, 'redis.log') },
    );
    processes.push(redis);
    const redisMs = await waitUntilReady(
      redis,
      async () => {
        const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        // a refused connection while Redis starts is expected: connect() rejects with it, which the probe reports
        client.on('error', () => undefined);
        try {
          await client.connect();
          return (await client.ping()) === 'PONG';
        } finally {
          client.disconnect();
        }
      },
      READY_TIMEOUT_MS,
    );

    const serverYaml = join(workDir, 'livekit-server.yaml');
    writeFileSync(serverYaml, serverConfig({ stackIp, redisPort }));
    const server = startProcess('livekit-server', options.serverBin, ['--dev', '--config', serverYaml], {
      logFile: join(workDir, 'livekit-server.log'),
    });
    processes.push(server);
    const serverMs = await waitUntilReady(server, () => httpOk(`${url}/`), READY_TIMEOUT_MS);

    const sipYaml = join(workDir, 'livekit-sip.yaml');
    writeFileSync(sipYaml, sipConfig({ stackIp, redisPort, wsUrl }));
    const sip = startProcess('livekit-sip', options.sipBin, ['--config', sipYaml], { logFile: join(workDir, 'livekit-sip.log') });
    processes.push(sip);
    const sipMs = await waitUntilReady(sip, () => httpOk(`http://${stackIp}:${SIP_HEALTH_PORT}/`), READY_TIMEOUT_MS);

    return {
      url,
      wsUrl,
      apiKey: API_KEY,
      apiSecret: API_SECRET,
      redisUrl,
      stackIp,
      sipPort: SIP_PORT,
      workDir,
      startMs: { redis: redisMs, server: serverMs, sip: sipMs, total: performance.now() - t0 },
      processes,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
