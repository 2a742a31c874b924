import { createHmac } from 'node:crypto';
import { AgentDispatchClient, RoomServiceClient, SipClient, type ClientOptions, type SIPGrant, type VideoGrant } from 'livekit-server-sdk';
import type { LiveKitSettings } from './config.js';
import { MINUTE } from './time.js';
import { GatedTwirpRpc, type TwirpRequester } from './twirpTransport.js';

/** The three LiveKit API clients the dialer and agent use. */
export interface LiveKitClients {
  sip: SipClient;
  rooms: RoomServiceClient;
  dispatch: AgentDispatchClient;
}

/**
 * A signed SIP token is reused this long. The SDK signs its tokens for 10 minutes (ServiceBase's default `ttl`,
 * node_modules/livekit-server-sdk/dist/ServiceBase.js), so a reused one has at least 5 minutes left when sent.
 */
export const SIP_TOKEN_REUSE_MS = 5 * MINUTE;
/** The grant livekit-server-sdk asks for on CreateSIPParticipant (SipClient.createSipParticipant). */
const DIAL_GRANT: [VideoGrant, SIPGrant] = [{}, { call: true }];
/** Grants signed ahead are kept for this many distinct grant sets at most (the SIP API uses a handful). */
const MAX_CACHED_GRANTS = 16;

/**
 * How long a token signed here is valid (s): the SDK's own lifetime for service tokens (ServiceBase's default `ttl`,
 * 10 minutes, node_modules/livekit-server-sdk/dist/ServiceBase.js).
 */
export const SERVICE_TOKEN_TTL_S = 600;
const MS_PER_S = 1000;
/** The JOSE header jose writes for the SDK (AccessToken.toJwt: `setProtectedHeader({ alg: 'HS256' })`), encoded. */
const JWT_HEADER = Buffer.from(JSON.stringify({ alg: 'HS256' })).toString('base64url');

/**
 * Signs the service token the SDK would for `grant` (and `sip`), synchronously: the same HS256 JWT as AccessToken.toJwt
 * (node_modules/livekit-server-sdk/dist/AccessToken.js): claims `video` and `sip` as given, then `iss` (the API key),
 * `exp` (now + SERVICE_TOKEN_TTL_S) and `nbf` (now), in seconds. The SDK signs with jose, asynchronously, creating a
 * key object and a chain of promises per request; a room-scoped token (every dispatch, every room deletion) serves
 * only its room (RoomTokenCache reuses it there), so on a loaded consumer that cost came with every call. `nowMs` is the epoch time to sign at.
 */
export function signServiceToken(apiKey: string, apiSecret: string, grant: VideoGrant | undefined, sip: SIPGrant | undefined, nowMs: number): string {
  const now = Math.floor(nowMs / MS_PER_S);
  const claims = { ...(grant ? { video: { ...grant } } : {}), ...(sip ? { sip: { ...sip } } : {}), iss: apiKey, exp: now + SERVICE_TOKEN_TTL_S, nbf: now };
  const signingInput = `${JWT_HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${signingInput}.${createHmac('sha256', apiSecret).update(signingInput).digest('base64url')}`;
}

/** The `Authorization` header of a service request, signed at once (signServiceToken). */
function signedHeader(apiKey: string, apiSecret: string, grant: VideoGrant | undefined, sip: SIPGrant | undefined): Record<string, string> {
  return { Authorization: `Bearer ${signServiceToken(apiKey, apiSecret, grant, sip, Date.now())}` };
}

/**
 * A room-scoped token is reused this long: a dial asks for its room's grant at least twice in a second or two (the
 * agent's dispatch, then the look for the agent after the answer, more when it polls or deletes the room), and each
 * signing serialises, encodes and HMACs the claims (bench:cps --cpu-prof: about 4 % of a consumer's CPU). A reused
 * token has at least SERVICE_TOKEN_TTL_S less this left when sent (9 minutes).
 */
export const ROOM_TOKEN_REUSE_MS = MINUTE;
/** Room-scoped tokens kept at most (the oldest goes first): a few seconds of dials at a high DIAL_CPS. */
export const MAX_CACHED_ROOM_TOKENS = 1024;

/** Room-scoped headers signed by signedHeader, reused for ROOM_TOKEN_REUSE_MS, at most MAX_CACHED_ROOM_TOKENS of them. */
class RoomTokenCache {
  private readonly signed = new Map<string, { header: Record<string, string>; signedAt: number }>();

  constructor(private readonly keys: Pick<LiveKitSettings, 'apiKey' | 'apiSecret'>) {}

  /** The header for `grant` (and `sip`): the one signed for the same grants within ROOM_TOKEN_REUSE_MS, else a new one. */
  header(grant: VideoGrant, sip: SIPGrant | undefined): Record<string, string> {
    const key = JSON.stringify([grant, sip ?? null]);
    const now = Date.now();
    const kept = this.signed.get(key);
    if (kept && now - kept.signedAt < ROOM_TOKEN_REUSE_MS) return kept.header;
    const header = signedHeader(this.keys.apiKey, this.keys.apiSecret, grant, sip);
    this.signed.delete(key); // re-inserted last: the oldest entries are the first in the map's order
    this.signed.set(key, { header, signedAt: now });
    if (this.signed.size > MAX_CACHED_ROOM_TOKENS) {
      const oldest = this.signed.keys().next();
      if (!oldest.done) this.signed.delete(oldest.value);
    }
    return header;
  }
}

/**
 * A SipClient that writes its requests through GatedTwirpRpc (a send gate right before the write; no region failover)
 * and signs its access tokens ahead of time instead of per request. livekit-server-sdk signs a JWT for
 * every request (ServiceBase.authHeader, with jose: asynchronous, through the thread pool); before a dial that is a
 * wait of its own between the moment the dial's start is counted against DIAL_CPS and the moment the request leaves.
 * Here a token is signed once per grant set and reused for SIP_TOKEN_REUSE_MS; a token about to age is re-signed in
 * the background while the current one is still sent. Room-scoped grants (a transfer's) are signed per request, as
 * the SDK does, so nothing grows per room.
 */
export class PresignedSipClient extends SipClient {
  private readonly transport: GatedTwirpRpc;
  private readonly signed = new Map<string, { header: Promise<Record<string, string>>; signedAt: number; renewing: boolean }>();

  constructor(host: string, apiKey: string, apiSecret: string, options: ClientOptions = {}) {
    super(host, apiKey, apiSecret, { ...options, failover: false });
    // The SDK's own transport (`rpc`, a TwirpRpc set in SipClient's constructor, node_modules/livekit-server-sdk/dist/
    // SipClient.js) is replaced by one that runs a send gate right before it writes (twirpTransport.ts).
    this.transport = new GatedTwirpRpc(host);
    (this as unknown as { rpc: TwirpRequester }).rpc = this.transport;
  }

  /** Gets a dial ready to be written at once: its token signed, a connection to LiveKit open. */
  async prepareDial(): Promise<void> {
    await Promise.all([this.authHeader(...DIAL_GRANT), this.transport.warm()]);
  }

  override async authHeader(grant: VideoGrant, sip?: SIPGrant): Promise<Record<string, string>> {
    if (grant.room !== undefined) return super.authHeader(grant, sip);
    const key = JSON.stringify([grant, sip ?? null]);
    const now = Date.now();
    const entry = this.signed.get(key);
    if (!entry) {
      if (this.signed.size >= MAX_CACHED_GRANTS) this.signed.clear();
      const header = super.authHeader(grant, sip);
      this.signed.set(key, { header, signedAt: now, renewing: false });
      header.catch(() => this.signed.delete(key)); // a failed signing is not kept; the caller sees the error
      return header;
    }
    if (now - entry.signedAt >= SIP_TOKEN_REUSE_MS && !entry.renewing) {
      entry.renewing = true;
      const header = super.authHeader(grant, sip);
      header.then(
        () => this.signed.set(key, { header, signedAt: Date.now(), renewing: false }),
        () => {
          entry.renewing = false; // the next request tries again; the current token is still valid for minutes
        },
      );
    }
    return entry.header;
  }
}

/**
 * Gets a dial ready to go out the moment its start is claimed (PresignedSipClient.prepareDial; a no-op for another
 * SipClient): called before the claim, so neither signing nor connecting lies between the claim and the write.
 */
export async function prepareDial(sip: SipClient): Promise<void> {
  if (sip instanceof PresignedSipClient) await sip.prepareDial();
}

/**
 * Creates the clients with region failover off: the SDK replays a POST to another region after a 5xx or
 * transport error, and a replayed CreateSIPParticipant can ring a phone twice. Every client writes through
 * GatedTwirpRpc (twirpTransport.ts); the SIP client also signs ahead (PresignedSipClient), the room and dispatch
 * clients sign synchronously (signServiceToken), reusing a room's token for a minute (RoomTokenCache).
 */
export function createLiveKitClients(settings: LiveKitSettings): LiveKitClients {
  const options = { failover: false };
  const host = settings.url.replace(/^ws/, 'http');
  // one cache for both: a dial's dispatch and the look for its agent ask for the same room grant
  const tokens = new RoomTokenCache(settings);
  return {
    sip: new PresignedSipClient(host, settings.apiKey, settings.apiSecret, options),
    rooms: throughOwnTransport(new RoomServiceClient(host, settings.apiKey, settings.apiSecret, options), host, tokens),
    dispatch: throughOwnTransport(new AgentDispatchClient(host, settings.apiKey, settings.apiSecret, options), host, tokens),
  };
}

/**
 * Sends `client`'s requests through GatedTwirpRpc instead of the SDK's fetch: the same Twirp, with kept-alive
 * connections and a fraction of fetch's CPU per request (a dial makes a dispatch, and on a loaded host the CPU a
 * consumer spends per call is time its pacing timers wait), and signs each request's token synchronously
 * (signServiceToken, through `tokens`) instead of through jose. No gate applies outside withSendGate.
 */
function throughOwnTransport<T extends RoomServiceClient | AgentDispatchClient>(client: T, host: string, tokens: RoomTokenCache): T {
  // `rpc` is the TwirpRpc each client's constructor sets (node_modules/livekit-server-sdk/dist/*Client.js)
  (client as unknown as { rpc: TwirpRequester }).rpc = new GatedTwirpRpc(host);
  // ServiceBase.authHeader (node_modules/livekit-server-sdk/dist/ServiceBase.js) is what every request asks its header of
  client.authHeader = (grant: VideoGrant, sip?: SIPGrant) => Promise.resolve(tokens.header(grant, sip));
  return client;
}
