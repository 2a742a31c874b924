/** What the Redis benches share: Redis' own CPU, a bounded wait, and the settings of a dialer pointed at the simulator. */
import type { Redis } from 'ioredis';
import type { LiveKitSim } from '../src/sim/index.js';

const POLL_MS = 200;
/** Longest a bench waits for its calls to end. */
export const RUN_TIMEOUT_MS = 10 * 60 * 1000;

/** CPU seconds Redis' main thread has used so far (INFO cpu: used_cpu_user_main_thread + used_cpu_sys_main_thread). */
export async function redisMainThreadCpuS(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  // a field this Redis does not report reads NaN, so a figure made of it shows as NaN instead of a wrong number
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread');
}

/** Polls `check` until it is true; throws naming `what` after RUN_TIMEOUT_MS. */
export async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not done within ${RUN_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The environment of a dialer dialing through `sim` at `cps` with `concurrency` slots, logging nothing. */
export function simDialerEnv(sim: LiveKitSim, cps: number, concurrency: number): Record<string, string> {
  return {
    LIVEKIT_URL: sim.url,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    DIAL_CPS: String(cps),
    DIAL_CONCURRENCY: String(concurrency),
    LOG_LEVEL: 'silent',
  };
}
