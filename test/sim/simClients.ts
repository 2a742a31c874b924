/** Real livekit-server-sdk clients pointed at a running sim, plus raw-HTTP helpers for wire-level checks. */
import { AccessToken, AgentDispatchClient, RoomServiceClient, SipClient, type VideoGrant } from 'livekit-server-sdk';
import type { SIPGrant } from 'livekit-server-sdk';
import { afterEach, beforeEach, expect } from 'vitest';
import { startLiveKitSim, type LiveKitSim } from '../../src/sim/index.js';

export interface SimClients {
  sip: SipClient;
  rooms: RoomServiceClient;
  dispatch: AgentDispatchClient;
}

export function clientsFor(sim: LiveKitSim, secret = sim.apiSecret): SimClients {
  const options = { failover: false };
  return {
    sip: new SipClient(sim.url, sim.apiKey, secret, options),
    rooms: new RoomServiceClient(sim.url, sim.apiKey, secret, options),
    dispatch: new AgentDispatchClient(sim.url, sim.apiKey, secret, options),
  };
}

/** Gives each test of the calling file a fresh sim and SDK clients (through `use`), closed after the test. */
export function useFreshSim(use: (sim: LiveKitSim, clients: SimClients) => void): void {
  let current: LiveKitSim | undefined;
  beforeEach(async () => {
    current = await startLiveKitSim();
    use(current, clientsFor(current));
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
}

export async function tokenFor(sim: LiveKitSim, video: VideoGrant, sip?: SIPGrant): Promise<string> {
  const token = new AccessToken(sim.apiKey, sim.apiSecret, { ttl: '1m' });
  token.addGrant(video);
  if (sip) token.addSIPGrant(sip);
  return token.toJwt();
}

export interface RawReply {
  status: number;
  contentType: string | null;
  text: string;
}

/** POSTs JSON to a Twirp path, as the SDK does, but returns the raw reply. */
export async function postTwirp(
  sim: LiveKitSim,
  path: string,
  body: unknown,
  init: { token?: string; contentType?: string; method?: string; signal?: AbortSignal } = {},
): Promise<RawReply> {
  const headers: Record<string, string> = { 'Content-Type': init.contentType ?? 'application/json' };
  if (init.token) headers.Authorization = `Bearer ${init.token}`;
  const response = await fetch(new URL(path, sim.url), {
    method: init.method ?? 'POST',
    headers,
    body: init.method === 'GET' ? undefined : JSON.stringify(body),
    signal: init.signal,
  });
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}

/** Awaits a promise expected to reject and returns the error for inspection. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  expect.fail('expected the call to fail');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 2000, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(stepMs);
  }
  expect.fail(`condition not met within ${timeoutMs} ms`);
}
