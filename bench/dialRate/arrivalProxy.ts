/**
 * The dial-rate bench's view of LiveKit's door: a loopback TCP proxy in front of the simulator, in a process of its own,
 * that timestamps every CreateSIPParticipant (a dial start, as a carrier counts it) and every CreateDispatch (the
 * agent's dispatch) as its request line arrives, with the room named in its body. It does nothing else, so a busy
 * simulator cannot bunch the timestamps. Modelled on the chaos test's API proxy (test/chaos/apiProxy.ts).
 *
 *   node --import tsx bench/dialRate/arrivalProxy.ts   (spawned with an IPC channel)
 *
 * Environment: BENCH_PROXY_UPSTREAM_PORT (the simulator). stdout: `{"port"}` once listening on a free loopback port.
 * IPC: `{id, cmd: 'take'}` is answered by `{id, ok: true, result: ProxyArrivals}` (and forgets them), `{id, cmd:
 * 'count'}` by the number of dials kept so far.
 */
import { createServer, connect, type Socket } from 'node:net';
import { z } from 'zod';

const LOOPBACK = '127.0.0.1';
const EXIT_FAILURE = 1;
/** Request lines as livekit-server-sdk sends them (Twirp over HTTP/1.1). */
const DIAL_LINE = 'POST /twirp/livekit.SIP/CreateSIPParticipant ';
const DISPATCH_LINE = 'POST /twirp/livekit.AgentDispatchService/CreateDispatch ';
/** The room in a request's JSON body: `roomName` in CreateSIPParticipant, `room` in CreateDispatch (proto names too). */
const ROOM_FIELD = /"(?:roomName|room_name|room)"\s*:\s*"([^"]+)"/;
/** Bytes kept between chunks so a request line split across two reads is still found. */
const CARRY_BYTES = Math.max(DIAL_LINE.length, DISPATCH_LINE.length);
/** A request's body follows its request line within this many bytes (headers); the room is looked for there. */
const BODY_SEARCH_BYTES = 4096;

export interface Arrival {
  /** ms since the epoch, sub-millisecond (performance.timeOrigin + performance.now()). */
  at: number;
  room: string | undefined;
}

export interface ProxyArrivals {
  dials: Arrival[];
  dispatches: Arrival[];
}

const requestSchema = z.discriminatedUnion('cmd', [
  z.object({ id: z.number(), cmd: z.literal('take') }),
  z.object({ id: z.number(), cmd: z.literal('count') }),
]);

/** Finds dial and dispatch request lines in one connection's client-to-server bytes. */
class Sniffer {
  private carry = '';
  private open: { arrival: Arrival; text: string } | undefined;

  constructor(private readonly kept: ProxyArrivals) {}

  feed(chunk: Buffer, at: number): void {
    const text = chunk.toString('latin1');
    if (this.open) this.readRoom(this.open, text);
    const haystack = this.carry + text;
    const found: { index: number; line: string; into: Arrival[] }[] = [];
    for (const [line, into] of [
      [DIAL_LINE, this.kept.dials],
      [DISPATCH_LINE, this.kept.dispatches],
    ] as const) {
      for (let from = 0; ; ) {
        const index = haystack.indexOf(line, from);
        if (index < 0) break;
        // a line wholly inside the carried bytes was counted with the previous chunk
        if (index + line.length > this.carry.length) found.push({ index, line, into });
        from = index + line.length;
      }
    }
    found.sort((a, b) => a.index - b.index);
    for (const { index, into } of found) {
      const arrival: Arrival = { at, room: undefined };
      into.push(arrival);
      this.open = { arrival, text: '' };
      this.readRoom(this.open, haystack.slice(index));
    }
    this.carry = haystack.slice(-CARRY_BYTES);
  }

  private readRoom(open: { arrival: Arrival; text: string }, text: string): void {
    open.text = (open.text + text).slice(0, BODY_SEARCH_BYTES);
    // skip the request line and headers: the room is in the JSON body
    const bodyAt = open.text.indexOf('\r\n\r\n');
    if (bodyAt < 0) return;
    const match = ROOM_FIELD.exec(open.text.slice(bodyAt));
    if (match) {
      open.arrival.room = match[1];
      this.open = undefined;
    } else if (open.text.length >= BODY_SEARCH_BYTES) {
      this.open = undefined;
    }
  }
}

async function main(): Promise<void> {
  const upstreamPort = Number(process.env.BENCH_PROXY_UPSTREAM_PORT);
  if (!(upstreamPort > 0) || !process.send) throw new Error('arrivalProxy needs BENCH_PROXY_UPSTREAM_PORT and an IPC channel');
  const send = process.send.bind(process);
  let kept: ProxyArrivals = { dials: [], dispatches: [] };
  const server = createServer((client: Socket) => {
    const upstream = connect(upstreamPort, LOOPBACK);
    let entry = { kept, sniffer: new Sniffer(kept) };
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      const at = performance.timeOrigin + performance.now();
      // a connection kept alive across runs feeds the current run's lists
      if (entry.kept !== kept) entry = { kept, sniffer: new Sniffer(kept) };
      entry.sniffer.feed(chunk, at);
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('arrivalProxy: no port');

  process.on('message', (message: unknown) => {
    const parsed = requestSchema.safeParse(message);
    if (!parsed.success) {
      process.stderr.write(`arrivalProxy: malformed request ${JSON.stringify(message)}\n`);
      return;
    }
    const { id, cmd } = parsed.data;
    if (cmd === 'count') {
      send({ id, ok: true, result: kept.dials.length });
      return;
    }
    const taken = kept;
    kept = { dials: [], dispatches: [] };
    send({ id, ok: true, result: taken });
  });
  process.on('disconnect', () => process.exit(0));
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`arrivalProxy failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
