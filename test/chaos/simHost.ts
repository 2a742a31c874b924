/**
 * The chaos test's LiveKit, as a process of its own: the simulator (src/sim) and the simulated agent
 * (src/agent/simulatedAgent.ts, the real agent code with a scripted model) in one process, as `npm run demo` wires
 * them, behind a loopback TCP proxy. The proxy is LiveKit's API as the dialer and the agent see it: an outage closes
 * the listener and resets every open connection for a while, and the phone network carries on meanwhile (calls keep
 * ringing, declining, ringing out and being answered), as a carrier's would while LiveKit's API is unreachable.
 *
 *   node --import tsx test/chaos/simHost.ts   (spawned with an IPC channel)
 *
 * Environment: CHAOS_SCENARIO (scenario JSON file), REDIS_URL, QUEUE_PREFIX, AGENT_NAME, CALL_OUTCOME_TIMEOUT_S (as the
 * consumers'), CHAOS_SPOOL_DIR (the agent's outcome spool, inside the test's temp dir), LOG_LEVEL (agent logs, stderr).
 * stdout: one line `{"url","apiKey","apiSecret","outboundTrunkId"}` once ready (url is the proxy's).
 * IPC requests `{id, cmd}` (see hostRequestSchema), each answered by `{id, ok: true, result}` or `{id, ok: false, error}`.
 */
import type { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { z } from 'zod';
import { createLogger } from '../../src/core/logger.js';
import { SECOND } from '../../src/core/time.js';
import { startSimulatedAgent } from '../../src/agent/simulatedAgent.js';
import { loadScenarioFile, startLiveKitSim, type SimEventName } from '../../src/sim/index.js';
import type { HostDump, HostStatus, SimCallLog, SimEventLog } from './chaosReport.js';

const LOOPBACK = '127.0.0.1';
const EXIT_FAILURE = 1;
const STALL_PROBE_MS = 20;
/** Event-loop stalls this long or longer are kept. */
const STALL_REPORT_MS = 200;

/** What the test may ask of this process. */
export const hostRequestSchema = z.discriminatedUnion('cmd', [
  z.object({ id: z.number(), cmd: z.literal('status') }),
  /** LiveKit's API unreachable for `ms`: answered when it is reachable again. */
  z.object({ id: z.number(), cmd: z.literal('outage'), ms: z.number().int().positive() }),
  /** Writes the sim's own log (HostDump) as JSON to `path`. */
  z.object({ id: z.number(), cmd: z.literal('dump'), path: z.string().min(1) }),
]);
export type HostRequest = z.infer<typeof hostRequestSchema>;

/** Events kept for the failure report, by name. */
const LOGGED_EVENTS: readonly SimEventName[] = [
  'dispatch_created',
  'room_deleted',
  'call_dialing',
  'call_ringing',
  'call_answered',
  'call_failed',
  'call_ended',
];

/** A TCP proxy in front of the simulator that can drop off the network and come back on the same port. */
class OutageProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly upstreamPort: number) {}

  async listen(port = 0): Promise<void> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, LOOPBACK, () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : port;
    this.server = server;
  }

  /** Stops accepting (connections are refused) and resets every open connection. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
    await closed;
  }

  private accept(client: Socket): void {
    const upstream = connect(this.upstreamPort, LOOPBACK);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const drop = (): void => {
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

async function main(): Promise<void> {
  const scenarioPath = process.env.CHAOS_SCENARIO;
  const redisUrl = process.env.REDIS_URL;
  const queuePrefix = process.env.QUEUE_PREFIX;
  const agentName = process.env.AGENT_NAME;
  const spoolDir = process.env.CHAOS_SPOOL_DIR;
  const outcomeTimeoutS = Number(process.env.CALL_OUTCOME_TIMEOUT_S);
  if (!scenarioPath || !redisUrl || !queuePrefix || !agentName || !spoolDir || !(outcomeTimeoutS > 0) || !process.send) {
    throw new Error('simHost needs CHAOS_SCENARIO, REDIS_URL, QUEUE_PREFIX, AGENT_NAME, CHAOS_SPOOL_DIR, CALL_OUTCOME_TIMEOUT_S and an IPC channel');
  }
  const send = process.send.bind(process);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn', 'chaos-sim-host');
  const sim = await startLiveKitSim({ network: await loadScenarioFile(scenarioPath) });
  const proxy = new OutageProxy(sim.port);
  await proxy.listen();
  const url = `http://${LOOPBACK}:${proxy.port}`;

  const events: SimEventLog[] = [];
  // Listen through the untyped view: one listener serves several event shapes (all carry `at` and `room`).
  const emitter: EventEmitter = sim.events;
  for (const name of LOGGED_EVENTS) {
    emitter.on(name, (payload: { at: number; room: string } & Record<string, unknown>) => {
      events.push({
        name,
        at: payload.at,
        room: payload.room,
        sipStatusCode: typeof payload.sipStatusCode === 'number' ? payload.sipStatusCode : undefined,
        reason: typeof payload.reason === 'string' ? payload.reason : undefined,
      });
    });
  }
  const outages: { from: number; to: number }[] = [];
  // This process's own event-loop stalls: requests that arrive during one are handled (and timestamped) together
  // after it, which would read as a burst of dial starts that the dialer never sent.
  const stalls: { at: number; ms: number }[] = [];
  let lastTick = Date.now();
  setInterval(() => {
    const now = Date.now();
    const gap = now - lastTick - STALL_PROBE_MS;
    if (gap >= STALL_REPORT_MS) stalls.push({ at: now, ms: gap });
    lastTick = now;
  }, STALL_PROBE_MS).unref();

  // The agent reaches LiveKit's API through the proxy too: an outage is LiveKit's, for every client.
  const agent = await startSimulatedAgent({
    sim: { url, apiKey: sim.apiKey, apiSecret: sim.apiSecret, events: sim.events, outboundTrunkId: sim.outboundTrunkId },
    redisUrl,
    queuePrefix,
    agentName,
    logger,
    outcomeSpoolDir: spoolDir,
    outcomeTimeoutMs: outcomeTimeoutS * SECOND,
  });

  const status = (): HostStatus => {
    const calls = sim.calls;
    return {
      dialing: calls.filter((c) => c.result === 'pending').length,
      ringing: calls.filter((c) => c.result === 'pending' && c.status === 'ringing').length,
      inConversation: calls.filter((c) => c.result === 'answered' && c.endedAt === undefined).length,
      dials: calls.length,
      lastDialAt: calls.at(-1)?.receivedAt,
    };
  };

  const dump = (): HostDump => ({
    calls: sim.calls
      .filter((c) => c.direction === 'outbound')
      .map(
        (c): SimCallLog => ({
          room: c.room,
          phoneNumber: c.phoneNumber,
          attempt: c.attempt,
          behavior: c.behavior?.type,
          receivedAt: c.receivedAt,
          ringingAt: c.ringingAt,
          answeredAt: c.answeredAt,
          endedAt: c.endedAt,
          result: c.result,
          endReason: c.endReason,
          sipStatusCode: c.sipStatusCode,
          twirpCode: c.twirpCode,
          clientDisconnected: c.clientDisconnected,
        }),
      ),
    events,
    outages,
    stalls,
  });

  const handle = async (request: HostRequest): Promise<unknown> => {
    switch (request.cmd) {
      case 'status':
        return status();
      case 'outage': {
        const from = Date.now();
        await proxy.down();
        await new Promise((resolve) => setTimeout(resolve, request.ms));
        await proxy.listen(proxy.port);
        outages.push({ from, to: Date.now() });
        return { from, to: Date.now() };
      }
      case 'dump':
        await writeFile(request.path, JSON.stringify(dump()));
        return { path: request.path };
    }
  };

  process.on('message', (message: unknown) => {
    const parsed = hostRequestSchema.safeParse(message);
    if (!parsed.success) {
      logger.error({ issues: parsed.error.issues }, 'malformed request from the chaos test');
      return;
    }
    const { id } = parsed.data;
    handle(parsed.data).then(
      (result) => send({ id, ok: true, result }),
      (err: unknown) => send({ id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  // The test going away (its IPC channel closes) ends this process too; it is normally SIGKILLed by PID.
  process.on('disconnect', () => {
    void Promise.allSettled([agent.close(), proxy.down(), sim.close()]).then(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ url, apiKey: sim.apiKey, apiSecret: sim.apiSecret, outboundTrunkId: sim.outboundTrunkId })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos sim host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
