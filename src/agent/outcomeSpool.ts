/**
 * Durable outcome reports for the agent. An agent's outcome (with its transcript and survey answers) exists only in
 * the job process's memory until it is on `call-results`; when Redis is away at that moment (a restart, a failover,
 * a network cut) the report used to be given up after a few seconds and the watchdog later ended the answered call
 * as `failed`. Here every report is first written to a local spool file (one per call, written atomically), then
 * sent; the file goes once the report is on the queue. While the process lives it keeps trying in the background;
 * a job process that shuts down leaves the file behind (saying so in its log), and the worker's main process (or any
 * simulated agent) replays the spool until the report lands or the call's outcome deadline (CALL_OUTCOME_TIMEOUT_S,
 * when the watchdog ends the call anyway) has passed. Replaying twice is harmless: the report's BullMQ jobId is the
 * call id, so a second add is a no-op.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConnectionOptions } from 'bullmq';
import { z } from 'zod';
import type { Logger } from '../core/logger.js';
import { callResultSchema, type CallResult } from '../core/outcomes.js';
import { ResultReporter } from '../core/reportResult.js';
import { SECOND, sleep, systemClock, type Clock } from '../core/time.js';
import type { ReportStatus, ResultSink } from './outcomeTracker.js';
import { errorCode, errorMessage } from '../core/errors.js';

/** How long a report's first send may take before the call moves on (the report stays spooled and keeps trying). */
export const FIRST_SEND_WAIT_MS = 2 * SECOND;
/** Back-off between background sends: from the first value, doubling, up to the second. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5 * SECOND;
/** How often a replayer looks at the spool. */
export const REPLAY_INTERVAL_MS = 2 * SECOND;
/** A replayer leaves younger files to the process that wrote them (it is most likely still sending them). */
export const REPLAY_MIN_AGE_MS = 2 * SECOND;
/** Spool files hold transcripts and survey answers: readable by the agent's user only. */
const SPOOL_DIR_MODE = 0o700;
const SPOOL_FILE_MODE = 0o600;
const SPOOL_FILE_SUFFIX = '.json';
const TEMP_FILE_PREFIX = '.tmp-';
const SPOOL_FORMAT_VERSION = 1;

const spooledSchema = z.object({
  version: z.literal(SPOOL_FORMAT_VERSION),
  /** After this (epoch ms) the watchdog has ended the call: the report is dropped, with an error in the log. */
  deadlineAt: z.number(),
  result: callResultSchema,
});

/** A report waiting in the spool. */
export interface SpooledReport {
  file: string;
  deadlineAt: number;
  result: CallResult;
}

/** The spool directory of one queue prefix (QUEUE_PREFIX): reports are replayed to the queues they were meant for. */
export function spoolDirFor(baseDir: string, queuePrefix: string): string {
  return join(baseDir, queuePrefix.replace(/[^A-Za-z0-9_.-]/g, '_'));
}

/**
 * The spool files of one queue prefix. A file is named after a hash of the call id (call ids may carry a caller's
 * number), is written to a temporary name and renamed, so a reader never sees half a report.
 */
export class OutcomeSpool {
  constructor(readonly dir: string) {}

  private fileFor(callId: string): string {
    return join(this.dir, `${createHash('sha256').update(callId).digest('hex').slice(0, 32)}${SPOOL_FILE_SUFFIX}`);
  }

  /** Writes (or replaces) the call's report; returns its file. Throws the file system's error. */
  async write(result: CallResult, deadlineAt: number): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: SPOOL_DIR_MODE });
    const file = this.fileFor(result.callId);
    const temp = join(this.dir, `${TEMP_FILE_PREFIX}${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const body: z.input<typeof spooledSchema> = { version: SPOOL_FORMAT_VERSION, deadlineAt, result };
    await writeFile(temp, JSON.stringify(body), { mode: SPOOL_FILE_MODE });
    await rename(temp, file);
    return file;
  }

  /** Removes a call's report (sent, or expired); a file already gone is fine. */
  async remove(file: string): Promise<void> {
    await unlink(file).catch((err: unknown) => {
      if (errorCode(err) !== 'ENOENT') throw err;
    });
  }

  /**
   * The reports waiting, oldest first, that are at least `minAgeMs` old. A file that cannot be read as a report is
   * returned under `unreadable` (it is never replayed; the caller logs and removes it).
   */
  async pending(now: number, minAgeMs = 0): Promise<{ reports: SpooledReport[]; unreadable: string[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { reports: [], unreadable: [] };
      throw err;
    }
    const found: { report: SpooledReport; mtimeMs: number }[] = [];
    const unreadable: string[] = [];
    for (const name of names) {
      if (!name.endsWith(SPOOL_FILE_SUFFIX) || name.startsWith(TEMP_FILE_PREFIX)) continue;
      const file = join(this.dir, name);
      try {
        const info = await stat(file);
        // mtime has sub-millisecond precision and may run a fraction ahead of `now`: no age limit means none.
        if (minAgeMs > 0 && now - info.mtimeMs < minAgeMs) continue;
        const parsed = spooledSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
        if (parsed.success) found.push({ report: { file, deadlineAt: parsed.data.deadlineAt, result: parsed.data.result }, mtimeMs: info.mtimeMs });
        else unreadable.push(file);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ENOENT') continue; // sent (and removed) meanwhile
        if (err instanceof SyntaxError) unreadable.push(file);
        else throw err;
      }
    }
    return { reports: found.sort((a, b) => a.mtimeMs - b.mtimeMs).map((f) => f.report), unreadable };
  }
}

export interface DurableReporterOptions {
  connection: ConnectionOptions;
  queuePrefix: string;
  spool: OutcomeSpool;
  /** How long after its first send a report is worth trying: the outcome deadline (CALL_OUTCOME_TIMEOUT_S). */
  deadlineMs: number;
  logger: Logger;
  clock?: Clock;
  /** Sends the report; default: a ResultReporter on `connection` (tests pass one that fails). */
  sender?: ResultSink;
}

interface PendingReport {
  callId: string;
  campaignId: string;
  /** The spool file while the report waits in it (undefined: sent, or it could not be spooled). */
  file: string | undefined;
  delivered: boolean;
}

/**
 * A ResultSink that does not lose a report while Redis is away: it spools the report, sends it, and, when the first
 * send does not land within FIRST_SEND_WAIT_MS, resolves `spooled` and keeps sending in the background (backing off
 * up to RETRY_MAX_MS) until it lands, the deadline passes, or `close()`. `close()` stops trying and logs every report
 * still pending as left in the spool for replay (or as lost, when even the spool could not be written).
 */
export class DurableResultReporter implements ResultSink {
  private readonly sender: ResultSink;
  private readonly ownSender: ResultReporter | undefined;
  private readonly clock: Clock;
  private readonly stop = new AbortController();
  private readonly pending = new Set<PendingReport>();
  private closing: Promise<void> | undefined;

  constructor(private readonly options: DurableReporterOptions) {
    this.clock = options.clock ?? systemClock;
    this.ownSender = options.sender ? undefined : new ResultReporter(options.connection, options.queuePrefix, options.logger);
    this.sender = options.sender ?? this.ownSender ?? { report: async () => undefined };
  }

  /**
   * Spools the report and sends it: `delivered` once it is on `call-results`; `pending` when the first send did not
   * land within FIRST_SEND_WAIT_MS (it goes on in the background, and the spool keeps it for replay). Throws only
   * when the result is invalid, or when after close() the spool cannot be written.
   */
  async report(result: CallResult): Promise<ReportStatus> {
    const { logger, spool } = this.options;
    const valid = callResultSchema.parse(result);
    const ids = { callId: valid.callId, campaignId: valid.campaignId, attempt: valid.attempt };
    if (this.closing) {
      // A report after close (a late shutdown path): spooled for the replayer, never sent from here.
      const file = await spool.write(valid, this.clock.now() + this.options.deadlineMs);
      logger.warn({ ...ids, file }, 'outcome spooled after the reporter closed; the worker replays it');
      return 'pending';
    }
    const deadlineAt = this.clock.now() + this.options.deadlineMs;
    let file: string | undefined;
    try {
      file = await spool.write(valid, deadlineAt);
    } catch (err) {
      logger.error({ ...ids, err: errorMessage(err), dir: spool.dir }, 'could not spool the outcome; it is only sent from memory');
    }
    const entry: PendingReport = { callId: valid.callId, campaignId: valid.campaignId, file, delivered: false };
    this.pending.add(entry);
    const done = this.sendUntilDelivered(valid, entry, deadlineAt).finally(() => this.pending.delete(entry));
    const firstWait = new AbortController();
    await Promise.race([done, sleep(FIRST_SEND_WAIT_MS, firstWait.signal).catch(() => undefined)]);
    firstWait.abort();
    return entry.delivered ? 'delivered' : 'pending';
  }

  /** Sends until it lands (then removes the spool file), the deadline passes or the reporter closes. */
  private async sendUntilDelivered(result: CallResult, entry: PendingReport, deadlineAt: number): Promise<void> {
    const { logger, spool } = this.options;
    const ids = { callId: result.callId, campaignId: result.campaignId, attempt: result.attempt };
    let waitMs = RETRY_FIRST_MS;
    for (let tries = 1; ; tries += 1) {
      try {
        await this.sender.report(result);
        entry.delivered = true;
      } catch (err) {
        if (tries === 1) logger.warn({ ...ids, err: errorMessage(err) }, 'could not send the outcome; retrying until it lands');
      }
      if (entry.delivered) {
        if (tries > 1) logger.info({ ...ids, tries }, 'outcome delivered after Redis came back');
        const file = entry.file;
        entry.file = undefined;
        // A file left behind is replayed once more: a no-op on the queue (jobId = call id).
        if (file) await spool.remove(file).catch((err: unknown) => logger.error({ ...ids, file, err: errorMessage(err) }, 'could not remove a sent outcome from the spool'));
        return;
      }
      if (this.stop.signal.aborted || this.clock.now() + waitMs > deadlineAt) return;
      try {
        await this.clock.sleep(waitMs, this.stop.signal);
      } catch {
        return;
      }
      waitMs = Math.min(waitMs * 2, RETRY_MAX_MS);
    }
  }

  /** Reports still being sent (for tests and the shutdown log). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Stops sending; every report still pending is logged (left in the spool for the worker to replay, or lost when it
   * could not be spooled). Sends already in flight are not waited for (a stopped Redis could hold them for good).
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.abort();
      const { logger } = this.options;
      for (const entry of this.pending) {
        const ids = { callId: entry.callId, campaignId: entry.campaignId };
        if (entry.file) logger.warn({ ...ids, file: entry.file }, 'outcome not delivered yet: left in the spool, the worker replays it');
        else logger.error(ids, 'outcome not delivered and not spooled: lost');
      }
      await this.ownSender?.close();
    })();
    return this.closing;
  }
}

export interface ReplayerOptions {
  spool: OutcomeSpool;
  sender: ResultSink;
  logger: Logger;
  clock?: Clock;
  /** Default REPLAY_MIN_AGE_MS. */
  minAgeMs?: number;
}

/** What one replay pass did. */
export interface ReplayPass {
  delivered: number;
  expired: number;
  failed: number;
}

/**
 * One pass over the spool: sends each report old enough (removing it once sent), drops those past their deadline and
 * unreadable files (logging each), stops at the first send that fails (Redis is still away: the next pass retries).
 */
export async function replaySpool(options: ReplayerOptions): Promise<ReplayPass> {
  const { spool, sender, logger } = options;
  const now = (options.clock ?? systemClock).now();
  const pass: ReplayPass = { delivered: 0, expired: 0, failed: 0 };
  const { reports, unreadable } = await spool.pending(now, options.minAgeMs ?? REPLAY_MIN_AGE_MS);
  for (const file of unreadable) {
    logger.error({ file }, 'unreadable outcome spool file removed');
    await spool.remove(file);
  }
  for (const report of reports) {
    const ids = { callId: report.result.callId, campaignId: report.result.campaignId, attempt: report.result.attempt };
    if (now > report.deadlineAt) {
      logger.error({ ...ids, outcome: report.result.outcome }, 'spooled outcome dropped: its outcome deadline passed before Redis took it');
      await spool.remove(report.file);
      pass.expired += 1;
      continue;
    }
    try {
      await sender.report(report.result);
      await spool.remove(report.file);
      logger.info({ ...ids, outcome: report.result.outcome }, 'spooled outcome delivered');
      pass.delivered += 1;
    } catch (err) {
      logger.warn({ ...ids, err: errorMessage(err) }, 'spooled outcome not delivered yet; the next pass retries');
      pass.failed += 1;
      break;
    }
  }
  return pass;
}

/** How long close() waits for a replay pass in progress (a send to a stopped Redis can hang). */
const REPLAY_CLOSE_WAIT_MS = 2 * SECOND;

/** A running replayer: `close()` stops it after the pass in progress (waiting at most REPLAY_CLOSE_WAIT_MS). */
export interface SpoolReplayer {
  close(): Promise<void>;
}

/**
 * Replays the spool every `intervalMs` (default REPLAY_INTERVAL_MS) until closed. Its timer does not keep the process
 * alive. A pass that throws (a file system error) is logged and the next one runs.
 */
export function startSpoolReplayer(options: ReplayerOptions & { intervalMs?: number }): SpoolReplayer {
  const intervalMs = options.intervalMs ?? REPLAY_INTERVAL_MS;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = replaySpool(options)
      .then(
        () => undefined,
        (err: unknown) => options.logger.error({ err: errorMessage(err), dir: options.spool.dir }, 'outcome spool replay failed'),
      )
      .finally(() => {
        if (!closed) timer = setTimeout(tick, intervalMs).unref();
      });
  };
  tick();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      const wait = new AbortController();
      await Promise.race([running, sleep(REPLAY_CLOSE_WAIT_MS, wait.signal).catch(() => undefined)]);
      wait.abort();
    },
  };
}
