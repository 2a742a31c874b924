import * as crypto from 'node:crypto';
import { createHash, randomUUID } from 'node:crypto';

const KEYED_ID_HEX_CHARS = 32;
/** crypto.hash (Node 20.12+): the same digest as createHash without a Hash object per call (a third cheaper). */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string) => string }).hash;

/** A fresh call id (BullMQ job ids must not contain ':'). */
export function newCallId(): string {
  return `c-${randomUUID()}`;
}

/** The call id an idempotency key maps to within a campaign: the same key always gives the same id. */
export function keyedCallId(campaignId: string, key: string): string {
  const input = `${campaignId}\u0000${key}`;
  const digest = oneShotHash ? oneShotHash('sha256', input) : createHash('sha256').update(input).digest('hex');
  return `k-${digest.slice(0, KEYED_ID_HEX_CHARS)}`;
}

/**
 * The idempotency key of "this number, once per campaign": the RFC 3966 form of an E.164 number, with its `;ext=`
 * parameter when the call goes to an extension, so two extensions of one line are two calls (and a number without
 * one keeps the id it always had).
 */
export function phoneNumberKey(e164: string, extension?: string): string {
  return extension === undefined ? `tel:${e164}` : `tel:${e164};ext=${extension}`;
}
