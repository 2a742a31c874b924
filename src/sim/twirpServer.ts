/**
 * HTTP + Twirp routing as livekit-server serves it (twirp v8 generated servers behind LiveKit's auth middleware):
 * - the API-key middleware runs first on every path (bad token → 401 plain text);
 * - `/twirp/livekit.<Service>/<Method>`; a path outside a registered service gets Go's mux "404 page not found";
 *   a non-POST, an unknown method or an unexpected Content-Type is a Twirp `bad_route` (404) with
 *   meta `twirp_invalid_route`;
 * - JSON (protojson, unknown fields discarded, camelCase or proto names) or protobuf bodies;
 * - JSON replies use proto field names and emit default values (twirp's server defaults, which LiveKit keeps);
 * - errors are `{"code","msg","meta"}` with `Content-Type: application/json` and Twirp's HTTP status.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AnyMessage, JsonWriteOptions, Message, MessageType } from '@bufbuild/protobuf';
import type { Clock } from '../core/time.js';
import { authenticate, type RequestGrants } from './auth.js';
import { LIVEKIT_MESSAGES, TwirpError, twirpError, type TwirpCode } from './twirpErrors.js';
import { errorMessage } from '../core/errors.js';

/** Twirp's path prefix and LiveKit's protobuf package. */
export const TWIRP_PREFIX = '/twirp/';
export const LIVEKIT_PACKAGE = 'livekit';
/**
 * livekit-server's default `limit.max_api_request_body_size` (pkg/config/config.go): a larger body is refused with
 * HTTP 413 plain text "request body too large" by `RequestBodyLimiter` (pkg/service/utils.go), a middleware that
 * runs before the API-key check and judges the declared Content-Length first.
 */
export const LIVEKIT_MAX_API_REQUEST_BODY_BYTES = 10 * 1024 * 1024;
const MAX_BODY_BYTES = LIVEKIT_MAX_API_REQUEST_BODY_BYTES;
const HTTP_OK = 200;
const HTTP_NOT_FOUND = 404;
const HTTP_PAYLOAD_TOO_LARGE = 413;
const HTTP_INTERNAL_ERROR = 500;
const LOOPBACK = '127.0.0.1';

/** How JSON replies name fields: `proto` = snake_case with defaults (livekit-server), `camel` = protobuf-es toJson(). */
export type JsonNames = 'proto' | 'camel';

const JSON_WRITE_OPTIONS: Readonly<Record<JsonNames, Partial<JsonWriteOptions>>> = {
  proto: { useProtoFieldName: true, emitDefaultValues: true },
  camel: {},
};

export interface TwirpCallContext {
  grants: RequestGrants;
  /** Aborted when the HTTP client goes away before the reply is written. */
  clientGone: AbortSignal;
  receivedAt: number;
}

/** A registered RPC, its request type erased so a table can hold them all. */
export interface TwirpMethod {
  run(body: Buffer, format: BodyFormat, ctx: TwirpCallContext): Promise<AnyMessage>;
}

type BodyFormat = 'json' | 'protobuf';

/** Binds a request message type to its handler. */
export function rpc<Req extends Message<Req>>(
  type: MessageType<Req>,
  handle: (request: Req, ctx: TwirpCallContext) => AnyMessage | Promise<AnyMessage>,
): TwirpMethod {
  return {
    async run(body, format, ctx) {
      let request: Req;
      try {
        request =
          format === 'json'
            ? type.fromJsonString(body.length > 0 ? body.toString('utf8') : '{}', { ignoreUnknownFields: true })
            : type.fromBinary(body);
      } catch (err) {
        throw twirpError('malformed', `the ${format} request could not be decoded: ${errorMessage(err)}`);
      }
      return handle(request, ctx);
    },
  };
}

/** Service name (e.g. "SIP", "RoomService") → method name → handler. */
export type TwirpServices = Record<string, Record<string, TwirpMethod>>;

export interface RequestLogEntry {
  at: number;
  service: string;
  method: string;
  httpStatus: number | undefined;
  twirpCode: TwirpCode | undefined;
  durationMs: number | undefined;
  clientDisconnected: boolean;
}

export interface TwirpServerOptions {
  port: number;
  apiKey: string;
  apiSecret: string;
  clock: Clock;
  services: TwirpServices;
  jsonNames: JsonNames;
  requestLog: RequestLogEntry[];
  /** WebSocket endpoints by path (the agent workers' `/agent`); other upgrades get `upgradeRefusal`. */
  upgrades?: Record<string, UpgradeHandler>;
}

/** Takes over an HTTP upgrade request's socket. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;

export interface TwirpServer {
  port: number;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function writeText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const STATUS_TEXT: Readonly<Record<number, string>> = { 401: 'Unauthorized', 404: 'Not Found', 500: 'Internal Server Error', 503: 'Service Unavailable' };

/** A plain-text HTTP answer on a socket that asked to upgrade (no ServerResponse exists for it). */
export function writeRawText(socket: Duplex, status: number, text: string): void {
  if (socket.destroyed) return;
  const head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n`;
  socket.end(`${head}Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
}

/** What a path outside the API answers; `/rtc` (joining a room, and the SDK's `/rtc/validate`) is the SFU's, which the sim has not. */
function upgradeRefusal(path: string): string {
  return path.startsWith('/rtc') ? 'the LiveKit simulator has no media server: rooms cannot be joined over /rtc\n' : '404 page not found\n';
}

function writeTwirpError(res: ServerResponse, error: TwirpError): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(error.toBody());
  res.writeHead(error.httpStatus, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function badRoute(msg: string, httpMethod: string, path: string): TwirpError {
  return twirpError('bad_route', msg, { twirp_invalid_route: `${httpMethod} ${path}` });
}

function bodyFormat(contentType: string | undefined): BodyFormat | undefined {
  const mediaType = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  if (mediaType === 'application/json') return 'json';
  if (mediaType === 'application/protobuf') return 'protobuf';
  return undefined;
}

function toTwirpError(err: unknown): TwirpError {
  if (err instanceof TwirpError) return err;
  return twirpError('internal', errorMessage(err));
}

export async function startTwirpServer(options: TwirpServerOptions): Promise<TwirpServer> {
  const sockets = new Set<Socket>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = options.clock.now();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const httpMethod = req.method ?? 'GET';
    const clientGone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) clientGone.abort();
    });

    const route = path.startsWith(TWIRP_PREFIX) ? path.slice(TWIRP_PREFIX.length).split('/') : [];
    const [qualifiedService, methodName] = route;
    const serviceName = qualifiedService?.startsWith(`${LIVEKIT_PACKAGE}.`)
      ? qualifiedService.slice(LIVEKIT_PACKAGE.length + 1)
      : undefined;
    const service = serviceName === undefined ? undefined : options.services[serviceName];
    const routed = service !== undefined && serviceName !== undefined && route.length === 2 && methodName !== undefined;

    const entry: RequestLogEntry | undefined = routed
      ? {
          at: receivedAt,
          service: serviceName,
          method: methodName,
          httpStatus: undefined,
          twirpCode: undefined,
          durationMs: undefined,
          clientDisconnected: false,
        }
      : undefined;
    if (entry) {
      options.requestLog.push(entry);
      clientGone.signal.addEventListener('abort', () => {
        entry.clientDisconnected = true;
      });
    }
    const finish = (status: number, code: TwirpCode | undefined): void => {
      if (!entry) return;
      entry.httpStatus = status;
      entry.twirpCode = code;
      entry.durationMs = options.clock.now() - receivedAt;
    };
    const fail = (error: TwirpError): void => {
      finish(error.httpStatus, error.code);
      writeTwirpError(res, error);
    };

    // LiveKit's body limiter, then its API-key middleware, run before any routing.
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      // The body is discarded unread, but the answer waits until the client has sent all of it: answering while an
      // 11 MiB upload is still going lets the client's fetch fail on the reset socket ("fetch failed", seen when the
      // machine was loaded) instead of reading the 413, and the status the SDK reports is what this simulator is for.
      req.on('end', () => {
        finish(HTTP_PAYLOAD_TOO_LARGE, undefined);
        writeText(res, HTTP_PAYLOAD_TOO_LARGE, LIVEKIT_MESSAGES.requestBodyTooLarge);
      });
      req.resume();
      return;
    }
    const auth = await authenticate(req.headers.authorization, options.apiKey, options.apiSecret);
    if (!auth.ok) {
      req.resume();
      finish(auth.status, undefined);
      writeText(res, auth.status, auth.text);
      return;
    }
    if (!routed) {
      req.resume();
      writeText(res, HTTP_NOT_FOUND, upgradeRefusal(path));
      return;
    }

    if (httpMethod !== 'POST') {
      req.resume();
      fail(badRoute(`unsupported method "${httpMethod}" (only POST is allowed)`, httpMethod, path));
      return;
    }
    const method = service[methodName];
    if (!method) {
      req.resume();
      fail(badRoute(`no handler for path "${path}"`, httpMethod, path));
      return;
    }
    const format = bodyFormat(req.headers['content-type']);
    if (!format) {
      req.resume();
      fail(badRoute(`unexpected Content-Type: "${req.headers['content-type'] ?? ''}"`, httpMethod, path));
      return;
    }
    const body = await readBody(req);
    if (body === undefined) {
      finish(HTTP_PAYLOAD_TOO_LARGE, undefined);
      writeText(res, HTTP_PAYLOAD_TOO_LARGE, LIVEKIT_MESSAGES.requestBodyTooLarge);
      return;
    }

    let reply: AnyMessage;
    try {
      reply = await method.run(body, format, { grants: auth.grants, clientGone: clientGone.signal, receivedAt });
    } catch (err) {
      fail(toTwirpError(err));
      return;
    }
    finish(HTTP_OK, undefined);
    if (res.destroyed) return;
    const payload =
      format === 'json'
        ? Buffer.from(JSON.stringify(reply.toJson(JSON_WRITE_OPTIONS[options.jsonNames])), 'utf8')
        : Buffer.from(reply.toBinary());
    res.writeHead(HTTP_OK, {
      'Content-Type': format === 'json' ? 'application/json' : 'application/protobuf',
      'Content-Length': payload.length,
    });
    res.end(payload);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => writeTwirpError(res, toTwirpError(err)));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const upgrade = options.upgrades?.[path];
    if (!upgrade) {
      writeRawText(socket, HTTP_NOT_FOUND, upgradeRefusal(path));
      return;
    }
    upgrade(req, socket, head).catch((err: unknown) => writeRawText(socket, HTTP_INTERNAL_ERROR, errorMessage(err)));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, LOOPBACK, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
