/**
 * The SIP client's Twirp transport, with a gate checked right before the request is written to its socket.
 *
 * livekit-server-sdk sends every request with the global `fetch` (TwirpRpc.request, node_modules/livekit-server-sdk/
 * dist/TwirpRPC.js): between the call and the bytes leaving there are a dozen promise turns, a body stream and a
 * connection pool, so a dial whose start was counted against DIAL_CPS could still be held up, and bunch with later
 * ones, after the last check the dialer could make. This transport speaks the same Twirp (POST of the JSON request to
 * `/twirp/livekit.<Service>/<Method>`, the same headers, the same error shape: ServerError built as toTwirpError does)
 * over node:http(s) with a keep-alive agent, and when the request's socket is ready it runs the caller's gate
 * (withSendGate) and writes the request in the same synchronous step. A gate that refuses throws RequestNotSentError:
 * nothing was written. Region failover is not offered (the dialer turns it off: a replayed dial could ring twice).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { ServerError } from 'livekit-server-sdk';
import { SECOND } from './time.js';

/** TwirpRpc's default request timeout (s), used when the SDK passes none. */
const DEFAULT_TIMEOUT_S = 10;
const TWIRP_PREFIX = '/twirp';
const LIVEKIT_PACKAGE = 'livekit';
const REQUEST_ID_HEADER = 'X-Livekit-Request-Id';
const USER_AGENT = 'livekit-server-sdk-node (ai-dialer twirpTransport)';
/** Idle connections kept per host: enough for the dials in flight of one process to find one warm. */
const MAX_FREE_SOCKETS = 256;
/**
 * warm() makes sure at least this many connected sockets wait (kept-alive or spare): a consumer has up to four dial
 * claims in flight at once (MAX_CLAIMS_IN_FLIGHT, consumer/dialRateLimiter.ts), and each claimed dial must find a
 * connected socket, or it waits for a connection after its claim and may be refused by its gate (bench:cps --hog at
 * 200 CPS: new connections in the request path cost 0.75 ms of CPU per dial with two).
 */
export const WARM_SOCKETS = 4;
/** Spare connections kept at most (each a socket held open at LiveKit). */
const MAX_SPARE_SOCKETS = 8;
const HTTP_PORT = 80;
const HTTPS_PORT = 443;

/** The gate refused to send: the request was not written, so it cannot have reached LiveKit. */
export class RequestNotSentError extends Error {
  override readonly name = 'RequestNotSentError';
}

/**
 * A RequestNotSentError without a stack trace: on a loaded host refusals come in runs, and each one's stack would be
 * captured and, where source maps are on (tsx), mapped when Node's stream code reads it on destroy, for a message
 * that already says everything (the reason the gate gave).
 */
function notSent(reason: string): RequestNotSentError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new RequestNotSentError(reason);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The request got no answer in time (the SDK's timeout); it may have reached LiveKit. */
export class TwirpTimeoutError extends Error {
  override readonly name = 'TwirpTimeoutError';
}

/**
 * Returns undefined to send, or the reason not to. Runs synchronously right before the request is written, and also
 * when the request is made (a refusal there takes no socket); it must answer the same or let the later run decide.
 */
export type SendGate = () => string | undefined;

const gates = new AsyncLocalStorage<SendGate>();

/** Runs `send` with `gate` checked right before any request it makes through a GatedTwirpRpc is written. */
export function withSendGate<T>(gate: SendGate, send: () => Promise<T>): Promise<T> {
  return gates.run(gate, send);
}

/** The shape of livekit-server-sdk's TwirpRpc that its service clients call. */
export interface TwirpRequester {
  request(service: string, method: string, data: unknown, headers: Record<string, string>, timeout?: number): Promise<unknown>;
}

/** Builds the SDK's ServerError from a Twirp error answer, as TwirpRPC.js's toTwirpError does. */
function twirpError(response: IncomingMessage, body: string): ServerError {
  let message = 'Unknown internal error';
  let code: string | undefined;
  let metadata: Record<string, string> | undefined;
  if (response.headers['content-type'] === 'application/json') {
    try {
      const parsed = JSON.parse(body) as { msg?: string; code?: string; meta?: Record<string, string> };
      if (parsed.msg !== undefined) message = parsed.msg;
      code = parsed.code;
      metadata = parsed.meta;
    } catch {
      // as the SDK does: an unreadable error body keeps the defaults
    }
  } else {
    message = body;
  }
  return new ServerError(response.statusMessage ?? '', message, response.statusCode ?? 0, code, metadata);
}

/**
 * Twirp over node:http(s) with a keep-alive agent and a send gate (see the module comment). A gated request is
 * written at once on a connected socket: a kept-alive one, or a spare opened ahead by `warm()` (called before a dial's
 * start is claimed), so no connection set-up lies between the gate and the write. Only when neither is at hand does
 * it wait for a new connection, and the gate, run after it, may then refuse.
 */
export class GatedTwirpRpc implements TwirpRequester {
  private readonly origin: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly secure: boolean;
  /** Sockets known connected (and, over TLS, past the handshake): a request on one is written at once. */
  private readonly ready = new WeakSet<Socket>();
  /** Connected sockets opened by warm(), handed to the agent before it would open a new one. */
  private readonly spare: Socket[] = [];
  private readonly open: (options: http.ClientRequestArgs) => Socket;

  constructor(host: string) {
    this.origin = new URL(host.replace(/^ws/, 'http'));
    this.secure = this.origin.protocol === 'https:';
    this.transport = this.secure ? https : http;
    this.agent = this.secure
      ? new https.Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS })
      : new http.Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS });
    // Agent.createConnection is the documented place to supply an agent's new sockets (Node's http.Agent docs).
    const open = this.agent.createConnection.bind(this.agent);
    this.open = (options) => {
      const socket = open(options) as Socket;
      socket.once(this.readyEvent(), () => this.ready.add(socket));
      return socket;
    };
    this.agent.createConnection = (options) => this.takeSpare() ?? this.open(options);
  }

  private readyEvent(): 'secureConnect' | 'connect' {
    return this.secure ? 'secureConnect' : 'connect';
  }

  private takeSpare(): Socket | undefined {
    for (let socket = this.spare.pop(); socket; socket = this.spare.pop()) {
      if (socket.destroyed || !this.ready.has(socket)) continue;
      socket.ref();
      return socket;
    }
    return undefined;
  }

  /**
   * Makes sure a connected socket waits for the next request (a kept-alive one, or a spare opened now). Resolves when
   * one does, or when opening one failed: the request that needs a connection then meets the failure and reports it.
   */
  async warm(): Promise<void> {
    const free = Object.values(this.agent.freeSockets).reduce((n, list) => n + (list?.length ?? 0), 0);
    if (free + this.spare.length >= WARM_SOCKETS) return;
    const port = Number(this.origin.port) || (this.secure ? HTTPS_PORT : HTTP_PORT);
    const socket = this.open({ host: this.origin.hostname, port, ...(this.secure ? { servername: this.origin.hostname } : {}) });
    socket.unref(); // a spare does not keep the process alive
    socket.once('close', () => {
      const index = this.spare.indexOf(socket);
      if (index >= 0) this.spare.splice(index, 1);
    });
    const opened = await new Promise<boolean>((resolve) => {
      socket.once(this.readyEvent(), () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    if (!opened || this.spare.length >= MAX_SPARE_SOCKETS) {
      socket.destroy();
      return;
    }
    this.spare.push(socket);
  }

  request(service: string, method: string, data: unknown, headers: Record<string, string>, timeout = DEFAULT_TIMEOUT_S): Promise<unknown> {
    const gate = gates.getStore();
    // A gate that refuses already (the claim aged on the way here) is answered before any socket is taken: refused on
    // its socket, the request would have to destroy that kept-alive connection, and the next dial open a new one.
    const refusedEarly = gate?.();
    if (refusedEarly !== undefined) return Promise.reject(notSent(refusedEarly));
    const body = JSON.stringify(data);
    const url = new URL(`${TWIRP_PREFIX}/${LIVEKIT_PACKAGE}.${service}/${method}`, this.origin);
    return new Promise((resolve, reject) => {
      const request = this.transport.request(url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          'Content-Type': 'application/json;charset=UTF-8',
          'User-Agent': USER_AGENT,
          ...headers,
          [REQUEST_ID_HEADER]: randomUUID(),
          'Content-Length': Buffer.byteLength(body),
        },
      });
      const timer = setTimeout(() => request.destroy(new TwirpTimeoutError(`no answer from LiveKit within ${timeout} s`)), timeout * SECOND);
      request.once('close', () => clearTimeout(timer));
      request.once('error', reject);
      request.once('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('error', reject);
        response.once('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            reject(twirpError(response, text));
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      });
      // Written once the socket can take it (a kept-alive or spare one at once, a new one when connected), in the
      // same synchronous step as the gate.
      request.once('socket', (socket: Socket) => {
        const send = (): void => {
          const refused = gate?.();
          if (refused !== undefined) {
            request.destroy(notSent(refused));
            return;
          }
          request.end(body);
        };
        if (this.ready.has(socket)) send();
        else socket.once(this.readyEvent(), send);
      });
    });
  }
}
