/**
 * LiveKit's API door in the chaos test, as a small process of its own: a loopback TCP proxy in front of the sim host
 * that the dialer and the agent talk to. It can drop off the network (an outage: the listener closes and every open
 * connection is reset, then it listens again on the same port), and it timestamps every CreateSIPParticipant request
 * as it arrives. Those times are the dial starts a carrier would count: this process does nothing else, so a busy
 * sim host (whose event loop also runs the simulated agent's sessions) cannot bunch them.
 *
 *   node --import tsx test/chaos/apiProxy.ts   (spawned with an IPC channel)
 *
 * It also notes when each client connection closes and from which side, so the test can tell a consumer killed
 * after an answer went out (the answer died with it) from one that read it.
 *
 * Environment: CHAOS_PROXY_PORT (where to listen), CHAOS_UPSTREAM_PORT (the simulator). Prints `ready` once listening.
 * IPC requests `{id, cmd}` (proxyRequestSchema) are answered by `{id, ok: true, result}` or `{id, ok: false, error}`.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setPriority } from 'node:os';
import { z } from 'zod';

const LOOPBACK = '127.0.0.1';
const EXIT_FAILURE = 1;
/** The request line of a dial, as livekit-server-sdk sends it (Twirp over HTTP/1.1). */
const CREATE_SIP_PARTICIPANT = 'POST /twirp/livekit.SIP/CreateSIPParticipant ';
/** The room in the request's JSON body (protobuf-es writes camelCase; proto names accepted too). */
const ROOM_FIELD = /"(?:roomName|room_name)"\s*:\s*"([^"]+)"/;
/** Bytes kept between chunks so a request line split across two reads is still found. */
const CARRY_BYTES = CREATE_SIP_PARTICIPANT.length;
/** A dial's body follows its request line within this many bytes (headers); the room is looked for there. */
const BODY_SEARCH_BYTES = 4096;
const STALL_PROBE_MS = 20;
/** Event-loop stalls this long or longer are kept. */
const STALL_REPORT_MS = 100;
/**
 * The proxy is the instrument that timestamps each dial where a carrier would count it: starved of CPU by the
 * processes it measures (3 consumers, the simulator, the agent host, Redis on 2 cores), it reads requests late and
 * bunches them up (a 207 ms stall made 6 arrivals of a 5-CPS limit fall in one second). It asks for a higher
 * scheduling priority (nice -10; needs root or CAP_SYS_NICE, else it runs as is and says so).
 */
const PROXY_NICE = -10;

export const proxyRequestSchema = z.discriminatedUnion('cmd', [
  /** Unreachable for `ms`: answered when it listens again. */
  z.object({ id: z.number(), cmd: z.literal('outage'), ms: z.number().int().positive() }),
  /** Writes the arrivals and outages (ProxyDump) as JSON to `path`. */
  z.object({ id: z.number(), cmd: z.literal('dump'), path: z.string().min(1) }),
]);
export type ProxyRequest = z.infer<typeof proxyRequestSchema>;

/** One CreateSIPParticipant as it reached LiveKit's door. */
export interface DialArrival {
  at: number;
  /** Its room, when the body was found within the first few KB after the request line. */
  room: string | undefined;
  /** The client's port: dials with the same one came over the same connection, so from the same process. */
  clientPort: number | undefined;
}

/**
 * One client connection's end: `client` when the dialer's side closed or reset it (its process exited or was killed,
 * or it dropped the connection), `upstream` when the simulator's side did, `outage` when the proxy reset it.
 */
export interface ConnectionClose {
  at: number;
  clientPort: number | undefined;
  by: 'client' | 'upstream' | 'outage';
}

export interface ProxyDump {
  arrivals: DialArrival[];
  closes: ConnectionClose[];
  outages: { from: number; to: number }[];
  /** This process's own event-loop stalls (≥ 100 ms), `at` when it ran again: arrivals read after one bunch up. */
  stalls: { at: number; ms: number }[];
}

/** Finds dial request lines in one connection's client-to-server bytes. */
class DialSniffer {
  private carry = '';
  /** The arrival whose room is still to be read from the body, and the text seen since its request line. */
  private open: { arrival: DialArrival; text: string } | undefined;

  constructor(
    private readonly arrivals: DialArrival[],
    private readonly clientPort: number | undefined,
  ) {}

  feed(chunk: Buffer, at: number): void {
    const text = chunk.toString('latin1');
    if (this.open) this.readRoom(this.open, text);
    const haystack = this.carry + text;
    let from = 0;
    for (;;) {
      const index = haystack.indexOf(CREATE_SIP_PARTICIPANT, from);
      if (index < 0) break;
      const arrival: DialArrival = { at, room: undefined, clientPort: this.clientPort };
      this.arrivals.push(arrival);
      this.open = { arrival, text: '' };
      this.readRoom(this.open, haystack.slice(index));
      from = index + CREATE_SIP_PARTICIPANT.length;
    }
    this.carry = haystack.slice(-CARRY_BYTES);
  }

  private readRoom(open: { arrival: DialArrival; text: string }, text: string): void {
    open.text = (open.text + text).slice(0, BODY_SEARCH_BYTES);
    const match = ROOM_FIELD.exec(open.text);
    if (match) {
      open.arrival.room = match[1];
      this.open = undefined;
    } else if (open.text.length >= BODY_SEARCH_BYTES) {
      this.open = undefined;
    }
  }
}

class ApiProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Client sockets this proxy is resetting itself (an outage), so their close is not the client's. */
  private readonly resetting = new WeakSet<Socket>();
  readonly arrivals: DialArrival[] = [];
  readonly closes: ConnectionClose[] = [];
  readonly outages: { from: number; to: number }[] = [];

  constructor(
    private readonly port: number,
    private readonly upstreamPort: number,
  ) {}

  async listen(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, LOOPBACK, () => resolve());
    });
    this.server = server;
  }

  /** Stops accepting (connections are refused) and resets every open connection. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const socket of this.sockets) {
      this.resetting.add(socket);
      socket.resetAndDestroy();
    }
    this.sockets.clear();
    await closed;
  }

  private accept(client: Socket): void {
    const upstream = connect(this.upstreamPort, LOOPBACK);
    // read now: a closed socket no longer knows its peer's port
    const clientPort = client.remotePort;
    const sniffer = new DialSniffer(this.arrivals, clientPort);
    this.sockets.add(client);
    this.sockets.add(upstream);
    let closed = false;
    const drop = (by: 'client' | 'upstream'): void => {
      if (!closed) {
        closed = true;
        this.closes.push({ at: Date.now(), clientPort, by: this.resetting.has(client) ? 'outage' : by });
      }
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    const dropByClient = (): void => drop('client');
    const dropByUpstream = (): void => drop('upstream');
    client.on('error', dropByClient).on('close', dropByClient);
    upstream.on('error', dropByUpstream).on('close', dropByUpstream);
    client.on('data', (chunk: Buffer) => sniffer.feed(chunk, Date.now()));
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

async function main(): Promise<void> {
  const port = Number(process.env.CHAOS_PROXY_PORT);
  const upstreamPort = Number(process.env.CHAOS_UPSTREAM_PORT);
  if (!(port > 0) || !(upstreamPort > 0) || !process.send) {
    throw new Error('apiProxy needs CHAOS_PROXY_PORT, CHAOS_UPSTREAM_PORT and an IPC channel');
  }
  const send = process.send.bind(process);
  try {
    setPriority(PROXY_NICE);
  } catch (err) {
    process.stderr.write(`chaos API proxy: runs at normal priority (${err instanceof Error ? err.message : String(err)})\n`);
  }
  const proxy = new ApiProxy(port, upstreamPort);
  await proxy.listen();
  const stalls: { at: number; ms: number }[] = [];
  let lastTick = Date.now();
  setInterval(() => {
    const now = Date.now();
    const gap = now - lastTick - STALL_PROBE_MS;
    if (gap >= STALL_REPORT_MS) stalls.push({ at: now, ms: gap });
    lastTick = now;
  }, STALL_PROBE_MS).unref();

  const handle = async (request: ProxyRequest): Promise<unknown> => {
    switch (request.cmd) {
      case 'outage': {
        const from = Date.now();
        await proxy.down();
        await new Promise((resolve) => setTimeout(resolve, request.ms));
        await proxy.listen();
        proxy.outages.push({ from, to: Date.now() });
        return { from, to: Date.now() };
      }
      case 'dump': {
        const dump: ProxyDump = { arrivals: proxy.arrivals, closes: proxy.closes, outages: proxy.outages, stalls };
        await writeFile(request.path, JSON.stringify(dump));
        return { path: request.path };
      }
    }
  };
  process.on('message', (message: unknown) => {
    const parsed = proxyRequestSchema.safeParse(message);
    if (!parsed.success) {
      process.stderr.write(`apiProxy: malformed request ${JSON.stringify(message)}\n`);
      return;
    }
    const { id } = parsed.data;
    handle(parsed.data).then(
      (result) => send({ id, ok: true, result }),
      (err: unknown) => send({ id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  process.on('disconnect', () => {
    void proxy.down().then(() => process.exit(0));
  });
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos API proxy failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
