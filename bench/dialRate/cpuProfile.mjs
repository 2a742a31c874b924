// Preloaded into each consumer by `bench:cps --cpu-prof DIR` (NODE_OPTIONS=--import, as Node 20 refuses --cpu-prof
// there): profiles the process's main thread with the inspector's Profiler from the start and writes a V8 CPU profile
// (DIR/consumer-<pid>.cpuprofile, readable in Chrome DevTools) when the process exits. The inspector session is in
// this thread, so its messages are answered synchronously, within the 'exit' handler.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import process from 'node:process';

const dir = process.env.BENCH_CPU_PROF_DIR;
/** Sampling interval (µs): V8's default for --cpu-prof. */
const SAMPLING_INTERVAL_US = 1000;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (err) process.stderr.write(`cpuProfile: ${err.message}\n`);
      else writeFileSync(join(dir, `${process.env.BENCH_CPU_PROF_NAME ?? 'consumer'}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
