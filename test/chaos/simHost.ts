/**
 * The chaos test's LiveKit simulator (src/sim) as a process of its own. The dialer and the agent reach its API through
 * the API proxy (test/chaos/apiProxy.ts), which can drop off the network: the phone network here carries on meanwhile
 * (calls keep ringing, declining, ringing out and being answered), as a carrier's would while LiveKit's API is
 * unreachable. Its events go to the test over IPC, which hands them to the simulated agent (test/chaos/agentHost.ts):
 * the agent's conversations run in a process of their own, so they do not hold up this one's phone network.
 *
 *   node --import tsx test/chaos/simHost.ts   (spawned with an IPC channel)
 *
 * Environment: CHAOS_SCENARIO (scenario JSON file).
 * stdout: one line `{"port","apiKey","apiSecret","outboundTrunkId"}` once ready (port: the simulator's own).
 * IPC: requests `{id, cmd}` (see hostRequestSchema), each answered by `{id, ok: true, result}` or `{id, ok: false,
 * error}`; every event in RELAYED_EVENTS is sent as `{event, payload}`.
 */
import type { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { loadScenarioFile, startLiveKitSim, type SimEventName } from '../../src/sim/index.js';
import type { HostDump, HostStatus, SimCallLog, SimEventLog } from './chaosReport.js';
import { RELAYED_EVENTS, type RelayedEvent } from './relayedEvents.js';

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
  if (!scenarioPath || !process.send) throw new Error('simHost needs CHAOS_SCENARIO and an IPC channel');
  const send = process.send.bind(process);
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
  for (const name of RELAYED_EVENTS) emitter.on(name, (payload: Record<string, unknown>) => send({ event: name, payload } satisfies RelayedEvent));
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
      process.stderr.write(`simHost: malformed request ${JSON.stringify(message)}\n`);
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
    void sim.close().then(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ port: sim.port, apiKey: sim.apiKey, apiSecret: sim.apiSecret, outboundTrunkId: sim.outboundTrunkId })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos sim host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
