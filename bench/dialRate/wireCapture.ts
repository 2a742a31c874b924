/**
 * The dial-rate bench's second view of the arrivals: the kernel's timestamps of the CreateSIPParticipant requests'
 * packets on loopback (dumpcap, read back with tshark), when Wireshark's tools are installed. Unlike the arrival
 * proxy's clock, these do not move when a process on a saturated host waits for a CPU: they tell a dialer that bunched
 * its requests from a measuring process that bunched its timestamps. A remote LiveKit sees the same packets one network
 * latency later.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { SECOND } from '../../src/core/time.js';

const run = promisify(execFile);
const DIAL_PREFIX = Buffer.from('POST /twirp/livekit.SIP/CreateSIPParticipant ').toString('hex');
/** dumpcap prints its "Capturing on" line once the capture runs. */
const START_TIMEOUT_MS = 10 * SECOND;
const STOP_TIMEOUT_MS = 10 * SECOND;
/** tshark output for a run of a few thousand requests. */
const MAX_TSHARK_OUTPUT = 256 * 1024 * 1024;

export class WireCapture {
  private constructor(
    private readonly child: ChildProcess,
    private readonly file: string,
  ) {}

  /** Captures requests to `port` on loopback into `file`; undefined when dumpcap cannot run here. */
  static async start(port: number, file: string): Promise<WireCapture | undefined> {
    const child = spawn('dumpcap', ['-i', 'lo', '-f', `tcp dst port ${port}`, '-w', file, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const started = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), START_TIMEOUT_MS);
      child.once('error', () => resolve(false));
      child.once('exit', () => resolve(false));
      child.stderr?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('Capturing on')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
    if (!started) {
      child.kill('SIGKILL');
      return undefined;
    }
    return new WireCapture(child, file);
  }

  /** Stops the capture; the kernel times (ms since the epoch) of the packets that start a CreateSIPParticipant. */
  async stop(): Promise<number[]> {
    const exited = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, STOP_TIMEOUT_MS);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.child.kill('SIGINT');
    await exited;
    const { stdout } = await run('tshark', ['-r', this.file, '-Y', 'tcp.len > 0', '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'tcp.payload'], {
      maxBuffer: MAX_TSHARK_OUTPUT,
    });
    const times: number[] = [];
    for (const line of stdout.split('\n')) {
      const [epoch, payload] = line.split('\t');
      if (epoch && payload?.replaceAll(':', '').startsWith(DIAL_PREFIX)) times.push(Number(epoch) * SECOND);
    }
    return times.sort((a, b) => a - b);
  }
}
