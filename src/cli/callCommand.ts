import { campaignCallsQueue } from '../core/callQueues.js';
import type { Command } from 'commander';
import type { RedisClient } from '../core/redisClient.js';
import { CallStore, type CallRecord } from '../core/callStore.js';
import { InvalidInputError } from '../core/errors.js';
import { idSchema } from '../core/queues.js';
import { systemClock } from '../core/time.js';
import { callTimes, type CallTimes } from '../core/callTimes.js';
import { attemptWasDialed, reportCall, shownNumber, type ReportCall } from '../results/campaignReport.js';
import { textTable } from '../results/textTable.js';
import { requireCampaign } from './campaignNames.js';
import { action, cliContext, withRedis } from './cliContext.js';

function validId(value: string, what: string): string {
  const parsed = idSchema.safeParse(value);
  if (!parsed.success) throw new InvalidInputError(`${what} "${value}": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** The campaigns that hold a record for `callId` (a call id names one call; the record key needs its campaign). */
async function campaignsOfCall(redis: RedisClient, store: CallStore, callId: string): Promise<string[]> {
  const campaigns = await store.campaigns();
  // one command per campaign, sent together: their records may live in different call shards (nodes of a cluster),
  // which one pipeline cannot span
  const replies = await Promise.all(campaigns.map((c) => redis.exists(store.keys.callRecord(c, callId))));
  return campaigns.filter((_, i) => replies[i] === 1);
}

/** One attempt as `call` shows it. */
export interface AttemptView {
  attempt: number;
  room: string;
  startedAt: string;
  endedAt?: string;
  result?: string;
  /** Whether this attempt's dial went out (marked sent, or a result from the far end). */
  dialSent: boolean;
  sipStatusCode?: number;
  sipStatus?: string;
}

/** Everything on record about one call: the report line plus each attempt, when it is due, and the transcript. */
export interface CallView extends ReportCall {
  campaignId: string;
  attemptLog: AttemptView[];
  transcript?: { role: string; text: string }[];
}

/** The `call --json` view of a record. */
export function callView(record: CallRecord, key: string | undefined, times: CallTimes = {}): CallView {
  return {
    campaignId: record.campaignId,
    // with when it comes up and expires (dueAt, expiresAt), as report --json shows them
    ...reportCall(record, key, times),
    attemptLog: record.attemptLog.map((a) => ({
      attempt: a.attempt,
      room: a.room,
      startedAt: new Date(a.startedAt).toISOString(),
      ...(a.endedAt === undefined ? {} : { endedAt: new Date(a.endedAt).toISOString() }),
      ...(a.result === undefined ? {} : { result: a.result }),
      dialSent: attemptWasDialed(record, a),
      ...(a.sipStatusCode === undefined ? {} : { sipStatusCode: a.sipStatusCode, sipStatus: a.sipStatus }),
    })),
    ...(record.details?.transcript?.length ? { transcript: record.details.transcript } : {}),
  };
}

/** What an attempt came to, in words: its result, else whether it is ringing, waiting for its slot, or never went out. */
function attemptStatus(a: AttemptView, view: CallView): string {
  if (a.result !== undefined) return a.result;
  if (view.outcome !== 'pending') return a.dialSent ? `ended with the call (${view.outcome})` : `not dialed (the call ended ${view.outcome} first)`;
  return a.dialSent ? 'in progress' : 'waiting for its dial slot';
}

/** CallTimes of a call not ended, read through a `calls` queue opened for it. */
async function waitingTimes(redis: RedisClient, prefix: string, campaignId: string, callId: string): Promise<CallTimes> {
  const queue = campaignCallsQueue(redis, prefix, campaignId);
  try {
    return await callTimes(redis, queue, callId);
  } finally {
    await queue.close();
  }
}

/** `call <id>` as text: who, how it went, each attempt, the summary and the transcript. */
export function formatCall(view: CallView): string {
  const lines = [`call ${view.callId} in campaign ${view.campaignId}`];
  const field = (label: string, value: string | number | undefined) => {
    if (value !== undefined && value !== '') lines.push(`  ${label.padEnd(12)} ${value}`);
  };
  field('number', shownNumber(view));
  field('key', view.key);
  field('outcome', view.outcome === 'pending' ? `pending (${view.state.replace('_', ' ')})` : view.outcome);
  field('reason', view.reason);
  field('sip', view.sipStatusCode === undefined ? undefined : `${view.sipStatusCode} ${view.sipStatus ?? ''}`.trim());
  field('enqueued', view.enqueuedAt);
  field('due', view.dueAt);
  field('expires', view.expiresAt);
  field('ended', view.endedAt);
  field('duration', view.durationS === undefined ? undefined : `${view.durationS} s`);
  field('transfer', view.transfer ? `${view.transfer.mode} → ${view.transfer.target}` : undefined);
  const metadata = Object.entries(view.metadata);
  field('metadata', metadata.length ? metadata.map(([k, v]) => `${k}=${String(v)}`).join(', ') : undefined);
  // `attempts` counts dials that went out; an attempt begun but never sent is listed below and noted here. An attempt
  // can be logged twice (a platform error, then its dial): it is one attempt begun.
  const begun = new Set(view.attemptLog.map((a) => a.attempt)).size;
  const undialedNote = begun === view.attempts ? '' : ` (${begun} begun, ${begun - view.attempts} not dialed)`;
  lines.push(`  attempts     ${view.attempts}${undialedNote}`);
  for (const a of view.attemptLog) {
    const sip = a.sipStatusCode === undefined ? '' : `  ${a.sipStatusCode} ${a.sipStatus ?? ''}`.trimEnd();
    lines.push(`    ${a.attempt}  ${a.startedAt}${a.endedAt ? ` → ${a.endedAt}` : ''}  ${attemptStatus(a, view)}${sip}  (room ${a.room})`);
  }
  for (const answer of view.surveyAnswers ?? []) lines.push(`  survey       ${answer.question} → ${answer.answer}`);
  field('summary', view.summary);
  if (view.transcript?.length) {
    lines.push('  transcript');
    for (const line of view.transcript) lines.push(`    ${line.role}: ${line.text}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `call <callId> [--campaign ID] [--json]`: one call in full. */
export function registerCallCommand(program: Command): void {
  program
    .command('call')
    .description('show one call: number, key, outcome and reason, each attempt with its SIP status, survey answers, summary, transcript')
    .argument('<callId>', 'the id `enqueue` printed (or a report lists)')
    .option('--campaign <id>', 'its campaign (found by itself when left out)')
    .option('--json', 'print it as one JSON object')
    .action(
      action(async (rawId: string, opts: { campaign?: string; json?: boolean }) => {
        const callId = validId(rawId, 'call id');
        const campaign = opts.campaign === undefined ? undefined : validId(opts.campaign, '--campaign');
        const { config } = cliContext();
        const view = await withRedis(config, async (redis) => {
          const store = new CallStore(redis, config.queuePrefix, systemClock);
          if (campaign !== undefined) await requireCampaign(redis, config.queuePrefix, campaign);
          const candidates = campaign === undefined ? await campaignsOfCall(redis, store, callId) : [campaign];
          const records = (await Promise.all(candidates.map((c) => store.get(c, callId)))).filter((r): r is CallRecord => r !== undefined);
          const record = records[0];
          if (!record) throw new InvalidInputError(`no call "${callId}"${campaign === undefined ? '' : ` in campaign ${campaign}`}`);
          if (records.length > 1) {
            throw new InvalidInputError(`call id "${callId}" is in campaigns ${records.map((r) => r.campaignId).join(', ')}: add --campaign`);
          }
          const keys = await store.idempotencyKeys(record.campaignId, [callId]);
          const times = record.state === 'terminal' ? {} : await waitingTimes(redis, config.queuePrefix, record.campaignId, callId);
          return callView(record, keys.get(callId), times);
        });
        process.stdout.write(opts.json ? `${JSON.stringify(view)}\n` : formatCall(view));
      }),
    );
}

/** One line of `campaigns --json`. */
export interface CampaignLine {
  campaign: string;
  total: number;
  pending: number;
  ended: number;
  paused: boolean;
}

/** `campaigns [--json]`: every campaign with calls on record. */
export function registerCampaignsCommand(program: Command): void {
  program
    .command('campaigns')
    .description('list the campaigns with calls on record: calls, pending, ended, and whether paused')
    .option('--json', 'print a JSON array [{campaign, total, pending, ended, paused}]')
    .action(
      action(async (opts: { json?: boolean }) => {
        const { config } = cliContext();
        const lines = await withRedis(config, async (redis) => {
          const store = new CallStore(redis, config.queuePrefix, systemClock);
          const names = await store.campaigns();
          return Promise.all(
            names.map(async (campaign): Promise<CampaignLine> => {
              const [counters, paused] = await Promise.all([store.counters(campaign), store.isPaused(campaign)]);
              return { campaign, total: counters.total, pending: Math.max(0, counters.total - counters.terminal), ended: counters.terminal, paused };
            }),
          );
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(lines)}\n`);
          return;
        }
        if (lines.length === 0) {
          process.stdout.write('no campaigns yet\n');
          return;
        }
        const rows = lines.map((l) => [l.campaign, String(l.total), String(l.pending), String(l.ended), l.paused ? 'paused' : '']);
        const out = textTable([['campaign', 'calls', 'pending', 'ended', ''], ...rows], ['left', 'right', 'right', 'right', 'left']);
        process.stdout.write(`${out.join('\n')}\n`);
      }),
    );
}
