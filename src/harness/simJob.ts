/**
 * A dispatched job without an agents-js worker: the part of JobContext runCall uses, and a runner that ends the job
 * in the order agents-js' job process does (job_proc_lazy_main.ts): when the job is told to end (runCall's
 * ctx.shutdown, the harness closing, or the entry crashing) it waits a moment for the entry, closes the job's
 * sessions, disconnects from the room (Disconnected, CLIENT_INITIATED), then runs every shutdown callback.
 */
import { voice } from '@livekit/agents';
import { DisconnectReason } from '@livekit/rtc-node';
import type { CallJobContext } from '../agent/entry.js';
import type { Logger } from '../core/logger.js';
import { SECOND, sleep } from '../core/time.js';
import type { SimRoom } from './simRoom.js';

/** How long a job that was told to end waits for its entry before closing its sessions (agents-js waits 15 s). */
export const ENTRY_WAIT_MS = 250;
/** Longest wait for a session to close. */
const SESSION_CLOSE_TIMEOUT_MS = 5 * SECOND;

export class SimJob implements CallJobContext<SimRoom> {
  readonly job: { id: string; metadata: string; room: { name: string; metadata: string } };
  /** The sessions the call opened; the runner closes them when the job ends (agents-js closes the primary session). */
  private readonly sessions: { session: voice.AgentSession; closed: Promise<void>; isClosed: boolean }[] = [];
  private readonly callbacks: (() => Promise<void>)[] = [];
  private requestEnd: (reason: string) => void = () => undefined;
  /** Resolves with the reason when the job is told to end. */
  readonly ending: Promise<string>;
  /** Set when the harness, not the call, ended the job (a session is then closed as agents-js does on job shutdown). */
  private endedFromOutside = false;

  constructor(
    id: string,
    metadata: string,
    readonly room: SimRoom,
  ) {
    this.job = { id, metadata, room: { name: room.name, metadata: '' } };
    this.ending = new Promise((resolve) => {
      this.requestEnd = resolve;
    });
  }

  /** The job's id once a worker was assigned it (the job is prepared when its dispatch is made, before that). */
  assign(jobId: string): void {
    this.job.id = jobId;
  }

  /** The room's metadata, as agents-js hands it to the job (a dispatch rule's roomConfig may name a campaign). */
  setRoomMetadata(metadata: string): void {
    this.job.room.metadata = metadata;
  }

  /** The simulator needs no RTC connection: the room follows its events from the dispatch on. */
  async connect(): Promise<void> {}

  /** A session the call opened (call it right after creating it, before it starts). */
  addSession(session: voice.AgentSession): void {
    const entry = { session, isClosed: false, closed: Promise.resolve() };
    entry.closed = new Promise<void>((resolve) =>
      session.once(voice.AgentSessionEventTypes.Close, () => {
        entry.isClosed = true;
        resolve();
      }),
    );
    this.sessions.push(entry);
  }

  addShutdownCallback(callback: () => Promise<void>): void {
    this.callbacks.push(callback);
  }

  shutdown(reason = ''): void {
    this.requestEnd(reason);
  }

  /** The harness ends the job (closing, or a call that did not end in time). */
  requestClose(reason: string): void {
    this.endedFromOutside = true;
    this.requestEnd(reason);
  }

  /**
   * Runs `entry` to the job's end; resolves once the job has ended and the entry has returned. A crashing entry is
   * logged and ends the job too.
   */
  async run(entry: Promise<void>, log: Logger): Promise<void> {
    let entryDone = false;
    const tracked = entry.then(
      () => {
        entryDone = true;
      },
      (err: unknown) => {
        entryDone = true;
        log.error({ err }, 'simulated call crashed');
        this.requestEnd('job crashed');
      },
    );
    await this.ending;
    if (!entryDone) {
      const timeout = new AbortController();
      await Promise.race([tracked, sleep(ENTRY_WAIT_MS, timeout.signal).catch(() => undefined)]);
      timeout.abort();
    }
    // agents-js closes the session with USER_INITIATED; ending it for the job (JOB_SHUTDOWN) names the reason.
    const reason = this.endedFromOutside ? voice.CloseReason.JOB_SHUTDOWN : voice.CloseReason.USER_INITIATED;
    await Promise.all(this.sessions.filter((s) => !s.isClosed).map((s) => closeSession(s.session, s.closed, reason)));
    this.room.disconnect(DisconnectReason.CLIENT_INITIATED);
    for (const callback of this.callbacks) {
      await callback().catch((err: unknown) => log.error({ err }, 'shutdown callback failed'));
    }
    await tracked;
  }
}

/** Shuts a session down (without draining) and waits for it to close, at most SESSION_CLOSE_TIMEOUT_MS. */
async function closeSession(session: voice.AgentSession, closed: Promise<void>, reason: voice.CloseReason): Promise<void> {
  session.shutdown({ drain: false, reason });
  const timeout = new AbortController();
  await Promise.race([closed, sleep(SESSION_CLOSE_TIMEOUT_MS, timeout.signal).catch(() => undefined)]);
  timeout.abort();
}
