/**
 * Records as the API shows them: built from the CLI's own report line (results/campaignReport.ts reportCall), so
 * `GET /v1/calls/{id}` and `GET /v1/campaigns/{id}/report` say what `dialer call` and `dialer report --json` say, in
 * snake_case.
 */
import type { CallRecord } from '../core/callStore.js';
import type { CallTimes } from '../core/callTimes.js';
import { attemptWasDialed, reportCall, type ReportCall } from '../results/campaignReport.js';
import type { CallView, ReportLineView } from './schemas.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** A report line in the API's field names; optional fields stay absent when the call has none. */
export function reportLineOf(call: ReportCall): ReportLineView {
  return {
    call_id: call.callId,
    phone_number: call.phoneNumber,
    extension: call.extension,
    key: call.key,
    outcome: call.outcome,
    state: call.state,
    attempts: call.attempts,
    sip_status_code: call.sipStatusCode,
    sip_status: call.sipStatus,
    reason: call.reason,
    metadata: call.metadata,
    enqueued_at: call.enqueuedAt,
    first_attempt_at: call.firstAttemptAt,
    last_attempt_at: call.lastAttemptAt,
    ended_at: call.endedAt,
    due_at: call.dueAt,
    expires_at: call.expiresAt,
    duration_s: call.durationS,
    transfer: call.transfer,
    survey_answers: call.surveyAnswers,
    summary: call.summary,
  };
}

/**
 * A call's record: its report line, each attempt (and whether its dial went out), when a call not ended comes up and
 * expires (`times`, from its dial job), and the transcript when asked for (`[]` when it has none).
 */
export function callViewOf(record: CallRecord, key: string | undefined, withTranscript: boolean, times: CallTimes = {}): CallView {
  return {
    ...reportLineOf(reportCall(record, key, times)),
    campaign_id: record.campaignId,
    attempt_log: record.attemptLog.map((a) => ({
      attempt: a.attempt,
      started_at: iso(a.startedAt),
      ended_at: a.endedAt === undefined ? undefined : iso(a.endedAt),
      result: a.result,
      dial_sent: attemptWasDialed(record, a),
      sip_status_code: a.sipStatusCode,
      sip_status: a.sipStatus,
    })),
    transcript: withTranscript ? (record.details?.transcript ?? []) : undefined,
  };
}
