import { AccessToken, AgentDispatchClient, RoomServiceClient, SipClient } from 'livekit-server-sdk';
import type { SippCallee } from './sipp.js';

/** The stack globalSetup started, as this test file sees it (read from the environment it set). */
export interface LiveStackEnv {
  url: string;
  wsUrl: string;
  apiKey: string;
  apiSecret: string;
  redisUrl: string;
  workDir: string;
  /** Address of the far end inside the namespace: sipp callees listen there. */
  farIp: string;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this suite with \`npm run test:livekit\``);
  return value;
}

export function liveStack(): LiveStackEnv {
  return {
    url: env('LIVEKIT_TEST_URL'),
    wsUrl: env('LIVEKIT_TEST_WS_URL'),
    apiKey: env('LIVEKIT_TEST_KEY'),
    apiSecret: env('LIVEKIT_TEST_SECRET'),
    redisUrl: env('TEST_REDIS_URL'),
    workDir: env('LIVEKIT_TEST_WORKDIR'),
    farIp: env('LIVEKIT_FAR_IP'),
  };
}

/** Real livekit-server-sdk clients on the stack. */
export function liveClients(stack: LiveStackEnv = liveStack()) {
  return {
    sip: new SipClient(stack.url, stack.apiKey, stack.apiSecret),
    rooms: new RoomServiceClient(stack.url, stack.apiKey, stack.apiSecret),
    dispatch: new AgentDispatchClient(stack.url, stack.apiKey, stack.apiSecret),
  };
}

/** Creates an outbound trunk (UDP, no auth) whose address is the sipp callee; returns its id. */
export async function trunkTo(callee: SippCallee, name: string, stack: LiveStackEnv = liveStack()): Promise<string> {
  const trunk = await liveClients(stack).sip.createSipOutboundTrunk(name, callee.trunkAddress, ['+15550009999']);
  return trunk.sipTrunkId;
}

/** What the server answered a raw Twirp call with: HTTP status, body as text, and the time it took. */
export interface RawTwirpReply {
  status: number;
  body: string;
  elapsedMs: number;
}

/**
 * Calls any Twirp method over plain HTTP (JSON, as the SDK does) with a token granting SIP calls and admin of
 * `room`, to record LiveKit's exact reply (the SDK turns errors into a ServerError and bodies into messages).
 */
export async function rawTwirp(
  method: string,
  request: Record<string, unknown>,
  room: string,
  timeoutMs: number,
  stack: Pick<LiveStackEnv, 'url' | 'apiKey' | 'apiSecret'> = liveStack(),
  destinationRoom?: string,
): Promise<RawTwirpReply> {
  const token = new AccessToken(stack.apiKey, stack.apiSecret, { ttl: '10m' });
  token.addSIPGrant({ call: true, admin: true });
  token.addGrant({ room, roomAdmin: true, roomJoin: false, roomList: true, roomCreate: true, destinationRoom });
  const started = performance.now();
  const res = await fetch(`${stack.url}/twirp/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await token.toJwt()}` },
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = await res.text();
  return { status: res.status, body, elapsedMs: performance.now() - started };
}

/**
 * Calls CreateSIPParticipant over plain HTTP (JSON Twirp, as the SDK does) to record the exact error body LiveKit
 * sends, which the SDK turns into a ServerError.
 */
export async function rawCreateSipParticipant(
  request: Record<string, unknown>,
  timeoutMs: number,
  stack: Pick<LiveStackEnv, 'url' | 'apiKey' | 'apiSecret'> = liveStack(),
): Promise<RawTwirpReply> {
  const token = new AccessToken(stack.apiKey, stack.apiSecret, { ttl: '10m' });
  token.addSIPGrant({ call: true });
  const started = performance.now();
  const res = await fetch(`${stack.url}/twirp/livekit.SIP/CreateSIPParticipant`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await token.toJwt()}` },
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = await res.text();
  return { status: res.status, body, elapsedMs: performance.now() - started };
}
