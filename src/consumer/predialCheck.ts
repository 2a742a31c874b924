/**
 * The pre-dial eligibility check: before each attempt the consumer asks PREDIAL_CHECK_URL whether this call should
 * still ring (an appointment was canceled, the customer paid, a CRM opt-out). The receiver answers
 * `{"dial": true}` or `{"dial": false, "reason": "…"}`; anything else is an error, and the call then waits rather
 * than ring someone who may no longer be called.
 */
import { z } from 'zod';
import type { CallJob } from '../core/queues.js';
import { signedJsonHeaders } from '../core/signature.js';
import { SECOND, type Clock } from '../core/time.js';
import { errorMessage } from '../core/errors.js';

const CHECK_TIMEOUT_MS = 5 * SECOND;
const MAX_REASON_CHARS = 500;
const HTTP_OK_MIN = 200;
const HTTP_OK_MAX = 299;

const answerSchema = z.object({
  dial: z.boolean(),
  reason: z.string().max(MAX_REASON_CHARS).optional(),
});

export type PredialDecision = { kind: 'dial' } | { kind: 'skip'; reason: string } | { kind: 'error'; error: string };

/** Asks the eligibility service about one attempt; never throws (a failure is the `error` decision). */
export async function askPredialCheck(
  check: { url: string; secret: string | undefined },
  call: CallJob,
  attempt: number,
  clock: Clock,
): Promise<PredialDecision> {
  const body = JSON.stringify({
    event: 'call.predial',
    callId: call.callId,
    campaignId: call.campaignId,
    phoneNumber: call.phoneNumber,
    attempt,
    metadata: call.metadata,
  });
  let response: Response;
  try {
    response = await fetch(check.url, {
      method: 'POST',
      headers: signedJsonHeaders(body, String(clock.now()), check.secret),
      body,
      signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    });
  } catch (err) {
    return { kind: 'error', error: `pre-dial check unreachable: ${errorMessage(err)}` };
  }
  if (response.status < HTTP_OK_MIN || response.status > HTTP_OK_MAX) {
    await response.body?.cancel();
    return { kind: 'error', error: `pre-dial check answered HTTP ${response.status}` };
  }
  let answer: z.infer<typeof answerSchema>;
  try {
    answer = answerSchema.parse(await response.json());
  } catch {
    return { kind: 'error', error: 'pre-dial check answered something other than {"dial": true|false, "reason"?: "…"}' };
  }
  return answer.dial ? { kind: 'dial' } : { kind: 'skip', reason: `pre-dial check: ${answer.reason ?? 'not eligible'}` };
}
