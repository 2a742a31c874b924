/**
 * Runs the LiveKit simulator as a process, for manual use and child-process tests:
 *
 *   tsx src/sim/main.ts [scenario.json]
 *
 * Environment: LIVEKIT_SIM_SCENARIO (scenario file, if no argument), LIVEKIT_SIM_PORT (default 0 = free port),
 * LIVEKIT_SIM_API_KEY / LIVEKIT_SIM_API_SECRET (default devkey/secret), LIVEKIT_SIM_EVENTS=1 to print every event.
 *
 * stdout: first line `{"url","apiKey","apiSecret","outboundTrunkId","port"}`; with LIVEKIT_SIM_EVENTS=1, then one
 * `{"event","payload"}` JSON line per event. Stops on SIGINT/SIGTERM.
 */
import { loadScenarioFile, startLiveKitSim, type Scenario, type SimEventName } from './index.js';
import { errorMessage } from '../core/errors.js';

const EVENT_NAMES: readonly SimEventName[] = [
  'dispatch_created',
  'dispatch_deleted',
  'room_created',
  'room_deleted',
  'participant_joined',
  'participant_left',
  'call_dialing',
  'call_ringing',
  'call_answered',
  'call_failed',
  'call_ended',
  'transfer_requested',
  'transfer_completed',
  'transfer_failed',
];

const EXIT_USAGE = 2;

function parsePort(text: string | undefined): number {
  if (text === undefined || text === '') return 0;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`LIVEKIT_SIM_PORT is not a port: ${text}`);
  return port;
}

async function main(): Promise<void> {
  const scenarioPath = process.argv[2] ?? process.env.LIVEKIT_SIM_SCENARIO;
  const scenario: Scenario | undefined = scenarioPath ? await loadScenarioFile(scenarioPath) : undefined;
  const sim = await startLiveKitSim({
    port: parsePort(process.env.LIVEKIT_SIM_PORT),
    apiKey: process.env.LIVEKIT_SIM_API_KEY || undefined,
    apiSecret: process.env.LIVEKIT_SIM_API_SECRET || undefined,
    network: scenario,
  });
  const ready = { url: sim.url, apiKey: sim.apiKey, apiSecret: sim.apiSecret, outboundTrunkId: sim.outboundTrunkId, port: sim.port };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  if (process.env.LIVEKIT_SIM_EVENTS === '1') {
    for (const name of EVENT_NAMES) {
      sim.events.on(name, (payload: unknown) => process.stdout.write(`${JSON.stringify({ event: name, payload })}\n`));
    }
  }
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${errorMessage(err)}\n`);
  process.exit(EXIT_USAGE);
});
