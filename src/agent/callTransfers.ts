import { llm, type voice } from '@livekit/agents';
import type { Logger } from '../core/logger.js';
import type { CallResult } from '../core/outcomes.js';
import { errorMessage } from '../core/errors.js';
import { SECOND, type Clock } from '../core/time.js';
import type { CallServerApi } from './callServerApi.js';
import { callBriefing } from './callSurvey.js';
import type { CallOutcomeTracker, OutcomeDecision } from './outcomeTracker.js';
import type { CallProfile } from './profiles.js';
import { playOut, speak } from './speech.js';
import { WarmTransferTimeoutError, type WarmTransferOutcome, type WarmTransferPort } from './warmTransfer.js';

/** Longest wait for the transfer announcement to play out. */
const ANNOUNCEMENT_PLAYOUT_TIMEOUT_MS = 30 * SECOND;

/** What a transfer needs of its call (CallController provides it). */
export interface TransferHost {
  readonly profile: CallProfile;
  readonly tracker: CallOutcomeTracker;
  readonly serverApi: CallServerApi;
  readonly log: Logger;
  isEnding(): boolean;
  /** The callee's SIP participant identity (on an inbound call, the caller's). */
  callee(): string | undefined;
  readonly confirmTimeoutMs: number;
  readonly ringingTimeoutS: number;
  /** Longest a warm transfer keeps the caller on hold (AGENT_WARM_TRANSFER_TIMEOUT_S). */
  readonly warmTimeoutMs: number;
  /** The call's clock, which the warm transfer's deadline runs on. */
  readonly clock: Clock;
  /** The call's session, or a ToolError when it is not connected. */
  requireSession(): voice.AgentSession;
  /** Runs `work` as something going on (the silence timer does not end the call meanwhile). */
  busy<T>(work: () => Promise<T>): Promise<T>;
  end(decision: OutcomeDecision, options: { hangup: boolean }): Promise<CallResult>;
  /** After a warm transfer the caller and the operator talk in this room: ending the call must not delete it. */
  keepRoom(): void;
}

/**
 * `transfer_call`: announce, then a cold transfer (SIP REFER, confirmed by the participant leaving) or a warm hand-off
 * (WarmTransferPort), by the destination's mode. Failure throws a ToolError starting "could not transfer call" so the
 * model can recover; the outcome stays open and the failure goes into the summary. While a transfer is carried out,
 * the callee leaving is the transfer working, not a hang-up: `settled()` lets other endings wait for it.
 */
export class CallTransfers {
  private inFlight: Promise<unknown> | undefined;

  constructor(
    private readonly host: TransferHost,
    private readonly warm: WarmTransferPort | undefined,
  ) {}

  /** Resolves once no transfer is being carried out (its own outcome, if any, is decided by then). */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight.catch(() => undefined);
  }

  async transfer(destinationName: string | undefined): Promise<string> {
    const flow = this.run(destinationName);
    this.inFlight = flow;
    try {
      return await flow;
    } finally {
      if (this.inFlight === flow) this.inFlight = undefined;
    }
  }

  private async run(destinationName: string | undefined): Promise<string> {
    const { host } = this;
    const session = host.requireSession();
    if (host.isEnding()) throw new llm.ToolError('could not transfer call: the call is already ending');
    const transfer = host.profile.transfer;
    const name = destinationName ?? transfer.defaultDestination;
    // Own keys only: a name the model makes up (`constructor`) is not a destination.
    const destination = name && Object.hasOwn(transfer.destinations, name) ? transfer.destinations[name] : undefined;
    if (!name || !destination) {
      const known = Object.keys(transfer.destinations);
      throw new llm.ToolError(`could not transfer call: unknown destination "${name ?? ''}" (known: ${known.join(', ') || 'none'})`);
    }
    const identity = host.callee();
    if (!identity) throw new llm.ToolError('could not transfer call: the caller is not on a phone line');
    const mode = destination.mode ?? transfer.mode;
    const log = host.log.child({ destination: name, mode });
    return host.busy(async () => {
      await playOut(speak(session, transfer.announcement), ANNOUNCEMENT_PLAYOUT_TIMEOUT_MS);
      if (mode === 'warm') return this.warmTransfer(session, name, destination.target);

      const result = await host.serverApi.transferCold(identity, destination.target, {
        confirmTimeoutMs: host.confirmTimeoutMs,
        ringingTimeoutS: host.ringingTimeoutS,
      });
      if (result.ok) {
        log.info('cold transfer confirmed');
        const decision: OutcomeDecision = {
          outcome: 'transferred',
          reason: `cold transfer to ${name}`,
          transfer: { mode: 'cold', target: destination.target },
        };
        host.tracker.decide(decision);
        void host.end({ outcome: 'transferred', reason: decision.reason }, { hangup: true });
        return `the call was transferred to ${name}`;
      }
      log.warn({ reason: result.reason }, 'cold transfer failed');
      host.tracker.note(`cold transfer to ${name} failed: ${result.reason}`);
      throw new llm.ToolError(`could not transfer call (${result.reason})`);
    });
  }

  /**
   * A warm hand-off through the port, bounded by its deadline (warmTimeoutMs on the call's clock): at the deadline
   * the port is told to stop (its signal: caller off hold, operator's leg hung up) and is not waited for any longer;
   * the caller hears the profile's `notConnectedMessage` and the call goes on, as after a refused transfer.
   */
  private async warmTransfer(session: voice.AgentSession, name: string, target: string): Promise<string> {
    const { host } = this;
    const warm = this.warm;
    if (!warm) throw new llm.ToolError('could not transfer call: warm transfer is not available here');
    const deadline = new AbortController();
    const outcome = await new Promise<WarmTransferOutcome>((resolve) => {
      const stopTimer = host.clock.setTimer(host.warmTimeoutMs, () => {
        deadline.abort(new WarmTransferTimeoutError(host.warmTimeoutMs));
        resolve({ ok: false, reason: errorMessage(deadline.signal.reason), timedOut: true });
      });
      warm
        .transfer({ target, destinationName: name, session, briefing: callBriefing(host.profile, host.tracker), signal: deadline.signal })
        .then(
          (result) => resolve(deadline.signal.aborted ? { ok: false, reason: errorMessage(deadline.signal.reason), timedOut: true } : result),
          (err: unknown) => resolve({ ok: false, reason: errorMessage(err) }),
        )
        .finally(stopTimer);
    });
    if (!outcome.ok && outcome.timedOut) {
      host.log.warn({ destination: name, timeoutMs: host.warmTimeoutMs }, 'warm transfer given up at its deadline; the caller is off hold and told so');
      host.tracker.note(`warm transfer to ${name} failed: ${outcome.reason}`);
      await playOut(speak(session, host.profile.transfer.notConnectedMessage), ANNOUNCEMENT_PLAYOUT_TIMEOUT_MS);
      throw new llm.ToolError(`could not transfer call: ${outcome.reason}. The caller has just been told so; offer other help.`);
    }
    if (!outcome.ok) {
      host.tracker.note(`warm transfer to ${name} failed: ${outcome.reason}`);
      throw new llm.ToolError(`could not transfer call: ${outcome.reason}. Tell the caller and offer other help.`);
    }
    host.tracker.decide({ outcome: 'transferred', reason: `warm transfer to ${name}`, transfer: { mode: 'warm', target } });
    host.keepRoom();
    void host.end({ outcome: 'transferred', reason: `warm transfer to ${name}` }, { hangup: false });
    return `the caller is now talking with ${name}; the assistant has left the call`;
  }
}
