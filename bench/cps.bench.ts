// Dial-rate benchmark: N real `dialer consumer` processes dial a campaign through the LiveKit simulator (its own
// process), measured where a carrier counts dial starts: a proxy process in front of the simulator timestamps each
// CreateSIPParticipant (and each CreateDispatch) as it arrives (bench/dialRate/arrivalProxy.ts). Per run it prints the
// steady rate as a share of DIAL_CPS (calls wait all along), the peak in any rolling second (sliding over every
// arrival), the dispatch-to-dial delay p50/p99/max, and the machine's load. It exits 1 with "GOAL MISSED" when a run
// misses a goal: steady rate ≥ 0.95 of the limit, peak ≤ the limit, dispatch-to-dial p99 ≤ 250 ms.
//
// Run: npm run bench:cps -- [--quick] [--hog] [--runs 3] [--consumers 1,2,3,4] [--cps 10,50,200]
//   --quick   fewer calls per run (about 4–6 s of dialing) and consumers 1,4 at 50 and 200 CPS
//   --hog     a CPU hog (one busy thread per core) runs beside every run
//   --cpu-prof DIR   each consumer writes a V8 CPU profile into DIR (bench/dialRate/cpuProfile.mjs); consumers are then stopped with
//             SIGTERM (a drain, so the profile is written) instead of SIGKILL at the end of each run; the simulator
//             writes one too (sim-<pid>.cpuprofile) when it is stopped with SIGTERM at the end of the bench
// Calls per run: 20 s of dialing at 10 and 50 CPS (200, 1,000), 10 s at 200 CPS (2,000); BENCH_CONCURRENCY sets
// DIAL_CONCURRENCY per consumer (default 200).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { redisAnswers, startRedisServer, type ProvidedRedis } from '../src/core/localRedis.js';
import { SECOND, sleep } from '../src/core/time.js';
import { startStandInAgent, type SimAgentWorker } from '../src/harness/simAgentWorker.js';
import { enqueueCalls } from '../src/producer/enqueueCalls.js';
import { ChildRegistry, ConsumerProcess, firstStdoutLine, waitForExit } from '../test/chaos/chaosProcesses.js';
import { deleteKeysWithPrefix } from '../test/helpers/testRedis.js';
import type { ProxyArrivals } from './dialRate/arrivalProxy.js';
import { peakInWindow, percentile, runFigures, steadyRate, type RunFigures } from './dialRate/figures.js';
import { WireCapture } from './dialRate/wireCapture.js';

const GOAL_RATE = 0.95;
const GOAL_DISPATCH_TO_DIAL_P99_MS = 250;
/** Seconds of dialing per run (calls = CPS × this), and the quick mode's. */
const RUN_SECONDS: Record<number, number> = { 10: 20, 50: 20, 200: 10 };
const DEFAULT_RUN_SECONDS = 15;
const QUICK_RUN_SECONDS: Record<number, number> = { 10: 10, 50: 6, 200: 4 };
const DEFAULT_CONCURRENCY = 200;
/** The simulated callee answers this long after the INVITE, and hangs up this long after answering. */
const ANSWER_AFTER_MS = 50;
const HANGUP_AFTER_MS = 1000;
/** A run gives up this long past its nominal length (calls / CPS). */
const RUN_GRACE_MS = 60 * SECOND;
const POLL_MS = 250;
/**
 * The arrival proxy is the bench's measuring device, standing in for a carrier's far-away clock: it runs at this
 * niceness so that its own wake-ups on a loaded host do not bunch the timestamps (the consumers, the simulator and
 * Redis run at the default). `--proxy-nice 0` measures with it at the default too.
 */
const PROXY_NICE = -10;
const START_TIMEOUT_MS = 180 * SECOND;
const EXIT_WAIT_MS = 10 * SECOND;

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const proxyPath = fileURLToPath(new URL('./dialRate/arrivalProxy.ts', import.meta.url));
const cpuProfilePath = fileURLToPath(new URL('./dialRate/cpuProfile.mjs', import.meta.url));
const simMainPath = fileURLToPath(new URL('../src/sim/main.ts', import.meta.url));

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    hog: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'proxy-nice': { type: 'string', default: String(PROXY_NICE) },
    runs: { type: 'string', default: '1' },
    consumers: { type: 'string' },
    cps: { type: 'string' },
  },
});
const list = (text: string) => text.split(',').map((v) => Number(v.trim()));
const consumerCounts = list(args.consumers ?? (args.quick ? '1,4' : '1,2,3,4'));
const cpsValues = list(args.cps ?? (args.quick ? '50,200' : '10,50,200'));
const runs = Number(args.runs);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? DEFAULT_CONCURRENCY);
if ([...consumerCounts, ...cpsValues, runs, concurrency].some((n) => !Number.isFinite(n) || n <= 0)) {
  throw new Error('--consumers, --cps, --runs and BENCH_CONCURRENCY take positive numbers');
}

const registry = new ChildRegistry();

/** The first stdout line of `child`, once it is up. */
function firstLine(child: ChildProcess, name: string): Promise<string> {
  return firstStdoutLine(child, name, START_TIMEOUT_MS);
}

const BENCH_AGENT_NAME = 'bench-agent';

const simReadySchema = z.object({ port: z.number(), apiKey: z.string(), apiSecret: z.string(), outboundTrunkId: z.string() });

type SimReady = z.infer<typeof simReadySchema> & { pid: number | undefined; child: ChildProcess };

async function startSim(dir: string): Promise<SimReady> {
  const scenario = join(dir, 'scenario.json');
  await writeFile(scenario, JSON.stringify({ default: { type: 'answer', afterMs: ANSWER_AFTER_MS, hangupAfterMs: HANGUP_AFTER_MS } }));
  // --cpu-prof: the simulator is profiled too (sim-<pid>.cpuprofile), written when it stops on SIGTERM at the end
  const profiled = args['cpu-prof'] ? ['--import', cpuProfilePath] : [];
  const child = spawn(process.execPath, ['--import', 'tsx', ...profiled, simMainPath, scenario], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...(args['cpu-prof'] ? { BENCH_CPU_PROF_DIR: args['cpu-prof'], BENCH_CPU_PROF_NAME: 'sim' } : {}) },
  });
  registry.add('sim', child);
  return { ...simReadySchema.parse(JSON.parse(await firstLine(child, 'sim'))), pid: child.pid, child };
}

/** The arrival proxy process: timestamps dials and dispatches; asked over IPC. */
class ArrivalProxy {
  private nextId = 1;
  private readonly waiting = new Map<number, (result: unknown) => void>();

  readonly pid: number | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.pid = child.pid;
    child.on('message', (message: unknown) => {
      const reply = z.object({ id: z.number(), result: z.unknown() }).safeParse(message);
      if (!reply.success) return;
      this.waiting.get(reply.data.id)?.(reply.data.result);
      this.waiting.delete(reply.data.id);
    });
  }

  static async start(upstreamPort: number, niceness: number): Promise<ArrivalProxy> {
    const child = spawn('nice', ['-n', String(niceness), process.execPath, '--import', 'tsx', proxyPath], {
      cwd: repoRoot,
      env: { ...process.env, BENCH_PROXY_UPSTREAM_PORT: String(upstreamPort) },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    registry.add('arrival-proxy', child);
    const { port } = z.object({ port: z.number() }).parse(JSON.parse(await firstLine(child, 'arrival proxy')));
    return new ArrivalProxy(child, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private ask(cmd: 'take' | 'count'): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`arrival proxy did not answer ${cmd}`)), 30 * SECOND);
      this.waiting.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      this.child.send({ id, cmd });
    });
  }

  async count(): Promise<number> {
    return z.number().parse(await this.ask('count'));
  }

  /** The arrivals kept since the last take (forgotten by the proxy). */
  async take(): Promise<ProxyArrivals> {
    return (await this.ask('take')) as ProxyArrivals;
  }
}

/** One busy thread per core, in a process of its own. */
function startHog(): ChildProcess {
  const script = `const { Worker } = require('node:worker_threads');
for (let i = 0; i < ${availableParallelism()}; i += 1) new Worker('for (;;) {}', { eval: true });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  registry.add('cpu-hog', child);
  return child;
}

const CLOCK_TICKS_PER_S = 100;

/** CPU time (ms) a process used so far, from /proc (Linux); 0 where it cannot be read. */
async function cpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat, i.e. 12 and 13 after the command name
    return ((Number(fields[11]) + Number(fields[12])) * SECOND) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Share of the machine's CPU time spent busy between two os.cpus() readings. */
function busyShare(before: ReturnType<typeof cpus>, after: ReturnType<typeof cpus>): number {
  let busy = 0;
  let total = 0;
  after.forEach((cpu, i) => {
    const prior = before[i];
    if (!prior) return;
    const spent = (key: keyof typeof cpu.times) => cpu.times[key] - prior.times[key];
    const all = spent('user') + spent('nice') + spent('sys') + spent('idle') + spent('irq');
    busy += all - spent('idle');
    total += all;
  });
  return total > 0 ? busy / total : 0;
}

interface RunResult extends RunFigures {
  arrivals: ProxyArrivals;
  /** The same dials by the kernel's packet times (WireCapture), when dumpcap could run. */
  wire: { dials: number; steadyCps: number; peak: number } | undefined;
  cps: number;
  consumers: number;
  calls: number;
  hog: boolean;
  load1: number;
  busy: number;
  /** CPU ms per dial used by the consumers, the simulator and the proxy during the run. */
  cpuPerDial: { consumers: number; sim: number; proxy: number };
  missed: string[];
}

function consumerEnv(redisUrl: string, prefix: string, cps: number, proxyUrl: string, sim: SimReady): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(DIAL_|LIVEKIT_|REDIS_URL|QUEUE_PREFIX|SIP_|AGENT_NAME|CALL_OUTCOME|RESULTS_|PREDIAL_|METRICS_)/.test(key)) continue;
    env[key] = value;
  }
  return {
    ...env,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    LIVEKIT_URL: proxyUrl,
    LIVEKIT_API_KEY: sim.apiKey,
    LIVEKIT_API_SECRET: sim.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: sim.outboundTrunkId,
    AGENT_NAME: BENCH_AGENT_NAME,
    DIAL_CPS: String(cps),
    DIAL_CONCURRENCY: String(concurrency),
    DIAL_MAX_ATTEMPTS: '1',
    LOG_LEVEL: args.trace ? 'debug' : 'info',
    DIAL_CALL_WINDOW: '',
    DIAL_CALL_DAYS: '',
    PREDIAL_CHECK_URL: '',
    RESULTS_WEBHOOK_URL: '',
    METRICS_PORT: '',
    ...(args['cpu-prof'] ? { NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import ${cpuProfilePath}`.trim(), BENCH_CPU_PROF_DIR: args['cpu-prof'] } : {}),
  };
}

/** A profiled consumer drains on SIGTERM and exits, writing its CPU profile (--cpu-prof); waited for up to this. */
const PROFILED_EXIT_WAIT_MS = 30 * SECOND;

async function oneRun(
  redisUrl: string,
  dir: string,
  proxy: ArrivalProxy,
  sim: SimReady,
  cps: number,
  consumers: number,
  serial: number,
): Promise<RunResult> {
  const seconds = (args.quick ? QUICK_RUN_SECONDS : RUN_SECONDS)[cps] ?? DEFAULT_RUN_SECONDS;
  const calls = Math.round(cps * seconds);
  const prefix = `bench-cps-${process.pid}-${serial}`;
  const env = consumerEnv(redisUrl, prefix, cps, proxy.url, sim);
  const started = Array.from({ length: consumers }, (_, i) => new ConsumerProcess(registry, `consumer-${serial}-${i + 1}`, env, join(dir, `consumer-${serial}-${i + 1}.log`)));
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await Promise.all(started.map((c) => c.ready()));
    await proxy.take(); // nothing from before this run counts
    const cpuBefore = cpus();
    const procBefore = await Promise.all([...started.map((c) => cpuMs(c.child.pid)), cpuMs(sim.pid), cpuMs(proxy.pid)]);
    const capture = await WireCapture.start(proxy.port, join(dir, `wire-${serial}.pcap`));
    const numbers = Array.from({ length: calls }, (_, i) => ({ phoneNumber: `+1415${String(2000000 + serial * 10000 + i).padStart(7, '0')}`, campaignId: 'bench' }));
    await enqueueCalls(numbers, { redisUrl, prefix, maxAttempts: 1 });
    const deadline = Date.now() + (calls / cps) * SECOND + RUN_GRACE_MS;
    while ((await proxy.count()) < calls && Date.now() < deadline) await sleep(POLL_MS);
    const arrivals = await proxy.take();
    const busy = busyShare(cpuBefore, cpus());
    const wireTimes = await capture?.stop();
    const wire = wireTimes && { dials: wireTimes.length, steadyCps: steadyRate(wireTimes), peak: peakInWindow(wireTimes, SECOND) };
    const procAfter = await Promise.all([...started.map((c) => cpuMs(c.child.pid)), cpuMs(sim.pid), cpuMs(proxy.pid)]);
    const used = procAfter.map((ms, i) => ms - (procBefore[i] ?? 0));
    const perDial = (ms: number) => ms / Math.max(1, arrivals.dials.length);
    const cpuPerDial = {
      consumers: perDial(used.slice(0, consumers).reduce((a, b) => a + b, 0)),
      sim: perDial(used[consumers] ?? 0),
      proxy: perDial(used[consumers + 1] ?? 0),
    };
    const figures = runFigures(arrivals);
    const missed: string[] = [];
    if (figures.dials < calls) missed.push(`only ${figures.dials} of ${calls} calls dialed`);
    if (figures.steadyCps / cps < GOAL_RATE) missed.push(`rate ${(figures.steadyCps / cps).toFixed(3)} < ${GOAL_RATE}`);
    if (figures.peak > cps) missed.push(`peak ${figures.peak} > ${cps}`);
    if (figures.dispatchToDial.p99 > GOAL_DISPATCH_TO_DIAL_P99_MS) missed.push(`dispatch-to-dial p99 ${figures.dispatchToDial.p99.toFixed(0)} ms > ${GOAL_DISPATCH_TO_DIAL_P99_MS}`);
    if (figures.dialsWithoutDispatch > 0) missed.push(`${figures.dialsWithoutDispatch} dials without a dispatch first`);
    return { ...figures, arrivals, wire, cps, consumers, calls, hog: args.hog, load1: loadavg()[0] ?? 0, busy, cpuPerDial, missed };
  } finally {
    if (args['cpu-prof']) {
      await Promise.all(
        started.map((c) => {
          c.child.kill('SIGTERM');
          return waitForExit(c.child, PROFILED_EXIT_WAIT_MS);
        }),
      );
    }
    await Promise.all(started.map((c) => c.kill()));
    await deleteKeysWithPrefix(redis, prefix);
    await redis.quit();
  }
}

/** --trace: where the time goes between a dial's claim and its arrival, from the consumers' debug lines. */
async function traceRun(dir: string, serial: number, consumers: number, arrivals: ProxyArrivals): Promise<string> {
  const sends = new Map<string, { askedAt: number; writtenAt: number; firstAsk: number; slotDue: number; dispatched: number; tries: number }>();
  let stale = 0;
  let late = 0;
  for (let i = 1; i <= consumers; i += 1) {
    const text = await readFile(join(dir, `consumer-${serial}-${i}.log`), 'utf8');
    for (const line of text.split('\n')) {
      if (line.includes('too late to send') || line.includes('dial not sent')) stale += 1;
      if (line.includes('woke too late')) late += 1;
      if (!line.includes('"dial request written"')) continue;
      const entry = z
        .object({ room: z.string(), askedAt: z.number(), writtenAt: z.number(), firstAsk: z.number(), slotDue: z.number(), dispatched: z.number(), tries: z.number() })
        .parse(JSON.parse(line));
      sends.set(entry.room, entry);
    }
  }
  const claimToSend: number[] = [];
  const sendToArrival: number[] = [];
  for (const a of arrivals.dials) {
    const sent = a.room === undefined ? undefined : sends.get(a.room);
    if (!sent) continue;
    claimToSend.push(sent.writtenAt - sent.askedAt);
    sendToArrival.push(a.at - sent.writtenAt);
  }
  const all = [...sends.values()];
  const slotToAsk = all.map((e) => e.firstAsk - e.slotDue);
  const dispatchedToSlot = all.map((e) => e.slotDue - e.dispatched);
  const firstAskToSend = all.map((e) => e.writtenAt - e.firstAsk);
  const sendTimes = [...sends.values()].map((s) => s.writtenAt).sort((x, y) => x - y);
  const stats = (v: number[]) => `p50 ${percentile(v, 50).toFixed(1)} p99 ${percentile(v, 99).toFixed(1)} max ${percentile(v, 100).toFixed(1)}`;
  return `    trace: claim asked→written ms ${stats(claimToSend)}; written→arrival ms ${stats(sendToArrival)}; peak of writes ${peakInWindow(sendTimes, SECOND)}; stale claims ${stale}, late slots ${late}
    slot→first ask ${stats(slotToAsk)}; dispatch done→slot ${stats(dispatchedToSlot)}; first ask→written ${stats(firstAskToSend)}; tries>1: ${all.filter((e) => e.tries > 1).length}`;
}

function describe(r: RunResult): string {
  const d = r.dispatchToDial;
  return [
    `cps ${String(r.cps).padStart(3)}`,
    `consumers ${r.consumers}`,
    `dials ${String(r.dials).padStart(4)}/${r.calls}`,
    `steady ${(r.steadyCps / r.cps).toFixed(3)} of limit`,
    `peak ${String(r.peak).padStart(3)}/${r.cps}`,
    r.wire ? `(on the wire: steady ${(r.wire.steadyCps / r.cps).toFixed(3)}, peak ${r.wire.peak})` : '(no wire capture)',
    `dispatch→dial p50 ${d.p50.toFixed(0)} p99 ${d.p99.toFixed(0)} max ${d.max.toFixed(0)} ms`,
    `load ${r.load1.toFixed(1)} busy ${(r.busy * 100).toFixed(0)}%${r.hog ? ' +hog' : ''}`,
    `cpu/dial ms: consumers ${r.cpuPerDial.consumers.toFixed(2)} sim ${r.cpuPerDial.sim.toFixed(2)} proxy ${r.cpuPerDial.proxy.toFixed(2)}`,
    r.missed.length === 0 ? 'ok' : `MISSED: ${r.missed.join('; ')}`,
  ].join('  ');
}

/**
 * The bench's own redis-server (as a deployment's Redis serves the dialer only), unless BENCH_REDIS_URL names one:
 * a Redis shared with unrelated work would put its queueing into the claim's round trip.
 */
async function benchRedis(): Promise<ProvidedRedis> {
  const url = process.env.BENCH_REDIS_URL;
  if (!url) return startRedisServer();
  if (!(await redisAnswers(url))) throw new Error(`BENCH_REDIS_URL is set to ${url} but no Redis answers there`);
  return { url, source: 'REDIS_URL', stop: async () => undefined };
}

const provided = await benchRedis();
const dir = await mkdtemp(join(tmpdir(), 'dialer-bench-cps-'));
const results: RunResult[] = [];
let hog: ChildProcess | undefined;
let agent: SimAgentWorker | undefined;
let sim: SimReady | undefined;
try {
  sim = await startSim(dir);
  // An agent host that joins every dispatch: without an agent in the room the consumer would hang each answered call
  // up after AGENT_JOIN_GRACE_MS, holding its slot meanwhile.
  agent = await startStandInAgent({ url: `http://127.0.0.1:${sim.port}`, apiKey: sim.apiKey, apiSecret: sim.apiSecret, agentName: BENCH_AGENT_NAME });
  const proxy = await ArrivalProxy.start(sim.port, Number(args['proxy-nice']));
  if (args.hog) hog = startHog();
  console.log(
    `dial rate at the arrival point: consumers ${consumerCounts.join(',')} × DIAL_CPS ${cpsValues.join(',')}, ${runs} run(s) each, ` +
      `DIAL_CONCURRENCY ${concurrency} per consumer, callee answers after ${ANSWER_AFTER_MS} ms, ${cpus().length} cores, ` +
      `load ${loadavg().map((l) => l.toFixed(1)).join(' ')}${args.hog ? ', CPU hog on every core' : ''}; arrival proxy at nice ${args['proxy-nice']}; ` +
      `redis ${provided.source}; logs in ${dir}`,
  );
  let serial = 0;
  for (const cps of cpsValues) {
    for (const consumers of consumerCounts) {
      for (let run = 0; run < runs; run += 1) {
        serial += 1;
        const result = await oneRun(provided.url, dir, proxy, sim, cps, consumers, serial);
        results.push(result);
        console.log(describe(result));
        if (args.trace) console.log(await traceRun(dir, serial, consumers, result.arrivals));
      }
    }
  }
} finally {
  await agent?.close();
  if (hog) {
    hog.kill('SIGKILL');
    await waitForExit(hog, EXIT_WAIT_MS);
  }
  if (args['cpu-prof'] && sim) {
    // the simulator writes its profile when it exits (SIGTERM: it closes and exits 0)
    sim.child.kill('SIGTERM');
    await waitForExit(sim.child, PROFILED_EXIT_WAIT_MS);
  }
  await registry.killAll();
  await provided.stop();
}
const missed = results.filter((r) => r.missed.length > 0);
console.log(
  missed.length === 0
    ? `goals met in ${results.length} run(s): ≥ ${GOAL_RATE} of DIAL_CPS, never above it in any rolling second, dispatch-to-dial p99 ≤ ${GOAL_DISPATCH_TO_DIAL_P99_MS} ms`
    : `GOAL MISSED in ${missed.length} of ${results.length} run(s)`,
);
if (missed.length === 0) await rm(dir, { recursive: true, force: true });
process.exitCode = missed.length === 0 ? 0 : 1;
