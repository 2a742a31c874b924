/**
 * API authentication as livekit-server does it (pkg/service/auth.go), read not copied:
 * - a malformed `Authorization` header, an undecodable token, an unknown API key or a bad signature/expiry is
 *   rejected by the HTTP middleware before Twirp routing: HTTP 401 with a PLAIN TEXT body (no Twirp JSON, so the
 *   SDK's ServerError has `status` 401 and no `code`);
 * - no token at all passes the middleware, and every method then fails its grant check;
 * - a missing grant is `twirpAuthError(ErrPermissionDenied)`: Twirp `unauthenticated` (HTTP 401), message
 *   "permissions denied" — LiveKit does not use permission_denied/403 for grants.
 */
import { decodeJwt, errors as joseErrors, jwtVerify } from 'jose';
import { LIVEKIT_MESSAGES, twirpError, type TwirpError } from './twirpErrors.js';

const BEARER_PREFIX = 'Bearer ';
/** go-jose's default leeway for exp/nbf (jwt.DefaultLeeway). */
const CLOCK_LEEWAY_SECONDS = 60;

export interface VideoGrantClaims {
  roomCreate?: boolean;
  roomList?: boolean;
  roomAdmin?: boolean;
  roomJoin?: boolean;
  room?: string;
  destinationRoom?: string;
  /** Agent workers (`/agent`) need it. */
  agent?: boolean;
}

export interface SipGrantClaims {
  admin?: boolean;
  call?: boolean;
}

/** The grants of a verified request; `undefined` grants mean "no token was sent". */
export interface RequestGrants {
  apiKey: string | undefined;
  video: VideoGrantClaims | undefined;
  sip: SipGrantClaims | undefined;
}

export type AuthResult = { ok: true; grants: RequestGrants } | { ok: false; status: number; text: string };

const HTTP_UNAUTHORIZED = 401;

function rejected(text: string): AuthResult {
  return { ok: false, status: HTTP_UNAUTHORIZED, text };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function optionalBoolean(record: Record<string, unknown>, key: string): boolean | undefined {
  const value = record[key];
  return typeof value === 'boolean' ? value : undefined;
}

function optionalString(record: Record<string, unknown>, key: string): string | undefined {
  const value = record[key];
  return typeof value === 'string' ? value : undefined;
}

function readVideoGrant(value: unknown): VideoGrantClaims | undefined {
  const record = asRecord(value);
  if (!record) return undefined;
  return {
    roomCreate: optionalBoolean(record, 'roomCreate'),
    roomList: optionalBoolean(record, 'roomList'),
    roomAdmin: optionalBoolean(record, 'roomAdmin'),
    roomJoin: optionalBoolean(record, 'roomJoin'),
    room: optionalString(record, 'room'),
    destinationRoom: optionalString(record, 'destinationRoom'),
    agent: optionalBoolean(record, 'agent'),
  };
}

function readSipGrant(value: unknown): SipGrantClaims | undefined {
  const record = asRecord(value);
  if (!record) return undefined;
  return { admin: optionalBoolean(record, 'admin'), call: optionalBoolean(record, 'call') };
}

const NO_GRANTS: AuthResult = { ok: true, grants: { apiKey: undefined, video: undefined, sip: undefined } };

/**
 * Verifies the request's bearer token against the one API key/secret pair the sim knows. Expiry is checked against
 * the wall clock (the SDK signs with it), not the sim's injectable clock.
 */
export async function authenticate(authorization: string | undefined, apiKey: string, apiSecret: string): Promise<AuthResult> {
  if (authorization === undefined || authorization === '') return NO_GRANTS;
  if (!authorization.startsWith(BEARER_PREFIX)) {
    return rejected(`invalid authorization header. Must start with ${BEARER_PREFIX}`);
  }
  const token = authorization.slice(BEARER_PREFIX.length);
  if (token === '') return NO_GRANTS; // livekit-server treats an empty bearer token like no token
  let issuer: string | undefined;
  try {
    issuer = decodeJwt(token).iss;
  } catch {
    return rejected('invalid authorization token');
  }
  if (issuer !== apiKey) return rejected('invalid API key');
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(apiSecret), {
      algorithms: ['HS256'],
      issuer: apiKey,
      clockTolerance: CLOCK_LEEWAY_SECONDS,
    });
    return { ok: true, grants: { apiKey: issuer, video: readVideoGrant(payload.video), sip: readSipGrant(payload.sip) } };
  } catch (err) {
    return rejected(`invalid authorization token: ${goJoseReason(err)}`);
  }
}

/** go-jose's wording for the usual failures, so the 401 body reads like livekit-server's. */
function goJoseReason(err: unknown): string {
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'go-jose/go-jose: error in cryptographic primitive';
  if (err instanceof joseErrors.JWTExpired) return 'go-jose/go-jose/jwt: validation failed, token is expired (exp)';
  if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') {
    return 'go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)';
  }
  return err instanceof joseErrors.JOSEError ? err.message : 'invalid token';
}

function permissionDenied(): TwirpError {
  return twirpError('unauthenticated', LIVEKIT_MESSAGES.permissionDenied);
}

/** EnsureCreatePermission: `video.roomCreate`. */
export function ensureCreatePermission(grants: RequestGrants): void {
  if (!grants.video?.roomCreate) throw permissionDenied();
}

/** EnsureListPermission: `video.roomList`. */
export function ensureListPermission(grants: RequestGrants): void {
  if (!grants.video?.roomList) throw permissionDenied();
}

/** EnsureAdminPermission: `video.roomAdmin` for exactly this room. */
export function ensureAdminPermission(grants: RequestGrants, room: string): void {
  if (!grants.video?.roomAdmin || grants.video.room !== room) throw permissionDenied();
}

/** EnsureDestRoomPermission: `video.roomAdmin` for the source room and `destinationRoom` for the target. */
export function ensureDestRoomPermission(grants: RequestGrants, room: string, destinationRoom: string): void {
  const video = grants.video;
  if (!video?.roomAdmin || video.room !== room || video.destinationRoom !== destinationRoom) throw permissionDenied();
}

/** EnsureSIPAdminPermission: `sip.admin`. */
export function ensureSipAdminPermission(grants: RequestGrants): void {
  if (!grants.sip?.admin) throw permissionDenied();
}

/** EnsureSIPCallPermission: `sip.call`. */
export function ensureSipCallPermission(grants: RequestGrants): void {
  if (!grants.sip?.call) throw permissionDenied();
}

