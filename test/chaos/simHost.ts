/**
 * The chaos test's LiveKit, as a process of its own: the simulator (src/sim) and the simulated agent
 * (src/agent/simulatedAgent.ts, the real agent code with a scripted model) in one process, as `npm run demo` wires
 * them. The dialer and the agent reach the simulator's API through the API proxy (test/chaos/apiProxy.ts), which
 * can drop off the network: the phone network here carries on meanwhile (calls keep ringing, declining, ringing out
 * and being answered), as a carrier's would while LiveKit's API is unreachable.
 *
 *   node --import tsx test/chaos/simHost.ts   (spawned with an IPC channel)
 *
 * Environment: CHAOS_SCENARIO (scenario JSON file), CHAOS_API_URL (the proxy, for the agent's API calls), REDIS_URL,
 * QUEUE_PREFIX, AGENT_NAME, CALL_OUTCOME_TIMEOUT_S (as the consumers'), CHAOS_SPOOL_DIR (the agent's outcome spool,
 * inside the test's temp dir), LOG_LEVEL (agent logs, stderr).
 * stdout: one line `{"port","apiKey","apiSecret","outboundTrunkId"}` once ready (port: the simulator's own).
 * IPC requests `{id, cmd}` (see hostRequestSchema), each answered by `{id, ok: true, result}` or `{id, ok: false, error}`.
 */
import type { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { createLogger } from '../../src/core/logger.js';
import { SECOND } from '../../src/core/time.js';
import { startSimulatedAgent } from '../../src/agent/simulatedAgent.js';
import { loadScenarioFile, startLiveKitSim, type SimEventName } from '../../src/sim/index.js';
import type { HostDump, HostStatus, SimCallLog, SimEventLog } from './chaosReport.js';

const EXIT_FAILURE = 1;
const STALL_PROBE_MS = 20;
/** Event-loop stalls this long or longer are kept. */
const STALL_REPORT_MS = 200;

/** What the test may ask of this process. */
export const hostRequestSchema = z.discriminatedUnion('cmd', [
  z.object({ id: z.number(), cmd: z.literal('status') }),
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

async function main(): Promise<void> {
  const scenarioPath = process.env.CHAOS_SCENARIO;
  const redisUrl = process.env.REDIS_URL;
  const queuePrefix = process.env.QUEUE_PREFIX;
  const agentName = process.env.AGENT_NAME;
  const spoolDir = process.env.CHAOS_SPOOL_DIR;
  const apiUrl = process.env.CHAOS_API_URL;
  const outcomeTimeoutS = Number(process.env.CALL_OUTCOME_TIMEOUT_S);
  if (!scenarioPath || !apiUrl || !redisUrl || !queuePrefix || !agentName || !spoolDir || !(outcomeTimeoutS > 0) || !process.send) {
    throw new Error(
      'simHost needs CHAOS_SCENARIO, CHAOS_API_URL, REDIS_URL, QUEUE_PREFIX, AGENT_NAME, CHAOS_SPOOL_DIR, CALL_OUTCOME_TIMEOUT_S and an IPC channel',
    );
  }
  const send = process.send.bind(process);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn', 'chaos-sim-host');
  const sim = await startLiveKitSim({ network: await loadScenarioFile(scenarioPath) });

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
    sim: { url: apiUrl, apiKey: sim.apiKey, apiSecret: sim.apiSecret, events: sim.events, outboundTrunkId: sim.outboundTrunkId },
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
    stalls,
  });

  const handle = async (request: HostRequest): Promise<unknown> => {
    switch (request.cmd) {
      case 'status':
        return status();
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
    void Promise.allSettled([agent.close(), sim.close()]).then(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ port: sim.port, apiKey: sim.apiKey, apiSecret: sim.apiSecret, outboundTrunkId: sim.outboundTrunkId })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos sim host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
