import { createHmac } from 'node:crypto';

/** Header names of the dialer's signed HTTP calls (result webhooks, pre-dial checks). */
export const SIGNATURE_HEADER = 'x-dialer-signature';
export const TIMESTAMP_HEADER = 'x-dialer-timestamp';

/** `sha256=<hex HMAC of "<timestamp>.<body>">`: the receiver recomputes it with the shared secret. */
export function signBody(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** JSON POST headers with a timestamp, signed when a secret is set. */
export function signedJsonHeaders(body: string, timestamp: string, secret: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/json', [TIMESTAMP_HEADER]: timestamp };
  if (secret) headers[SIGNATURE_HEADER] = signBody(secret, timestamp, body);
  return headers;
}
