/**
 * How the callee gets on the line: one step per CallDirection (the consumer's SIP participant answering, the agent
 * placing the call itself, an inbound caller joining). Each returns the connected callee with the conversation that
 * serves them, or why the call never connected and what that leaves to do (a value: runCall's `endUnconnected`
 * carries it out in one place). The room events follow the telephony guide's SIP lifecycle (src/agent/roomLifecycle.ts).
 */
import type { voice } from '@livekit/agents';
import type { AgentCallBook } from './agentCallBook.js';
import type { AgentSettings } from './agentConfig.js';
import type { CallController } from './callController.js';
import type { CallDirection, CallPlan } from './callPlan.js';
import type { CallServerApi } from './callServerApi.js';
import type { OutcomeDecision, CallOutcomeTracker } from './outcomeTracker.js';
import type { CallProfile } from './profiles.js';
import { waitForCaller, waitForSipAnswer, type LifecycleRoom, type RoomParticipant } from './roomLifecycle.js';
import type { AttemptEndObservation } from '../core/callStore.js';
import type { DialerConfig } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { redactPhoneNumber } from '../core/phone.js';
import { SIP_ATTR } from '../core/sipAttributes.js';
import { SECOND } from '../core/time.js';

/** Seconds a self-dialed call may last beyond the profile's maximum, so LiveKit's own limit never cuts the goodbye. */
const SELF_DIAL_MAX_DURATION_GRACE_S = 60;

/** voice.AMD as runCall uses it (agents-js' class fits; the harness plays one from the callee's script). */
export type AnsweringMachineDetector = Pick<voice.AMD, 'execute' | 'aclose'>;

/** The conversation, made ready before its callee is on the line: the controller and a session already listening. */
export interface Conversation {
  controller: CallController;
  session: voice.AgentSession;
  profile: CallProfile;
  /** AMD for profiles with `amd: true` (outbound calls only). */
  detector: AnsweringMachineDetector | undefined;
}

/** A callee on the line, and the conversation that serves them. */
export interface Connected {
  connected: true;
  conversation: Conversation;
  /**
   * The agent saw the callee in the room (the answered consumer-dialed participant, the inbound caller). Not so for a
   * call it has just placed, whose participant the room may not show yet: runCall asks the server then.
   */
  calleeSeen: boolean;
}

/** The call never connected: what that leaves to do. */
export interface NotConnected {
  connected: false;
  /** The outcome to report; undefined when it is the consumer's to report (a consumer-dialed call that never answered). */
  decision?: OutcomeDecision;
  /** Delete the room (so nothing rings into a room nobody serves), with this reason for the log. */
  hangup?: string;
  /** What the room showed of a consumer-dialed callee that left before answering, for the call's record. */
  observed?: AttemptEndObservation;
  /** AMD opened for a call the agent placed, to close. */
  detector?: AnsweringMachineDetector;
  /** Why the job ends (JobContext.shutdown). */
  shutdownReason: string;
}

export type Connection = Connected | NotConnected;

/** Where the call is, for a shutdown that comes in the middle of it. */
export type CallPhase = 'connecting' | 'waiting_for_answer' | 'dialing' | 'connected';

/** What a connect step works with (runCall's, for one call). */
export interface ConnectContext {
  readonly room: LifecycleRoom<RoomParticipant>;
  readonly roomName: string;
  readonly plan: CallPlan;
  readonly config: DialerConfig;
  readonly settings: AgentSettings;
  readonly tracker: CallOutcomeTracker;
  readonly book: AgentCallBook;
  readonly serverApi: CallServerApi;
  readonly log: Logger;
  /** Set as the call goes: the shutdown callback reads it. */
  phase: CallPhase;
  /** Resolves the profile and opens the conversation (the session listening to `calleeIdentity`). Throws on a bad profile. */
  open(calleeIdentity: string): Promise<Conversation>;
}

/** The consumer dials; the agent waits for its SIP participant to answer (`sip.callStatus` active). */
export async function connectConsumerDialed(
  c: ConnectContext,
  direction: Extract<CallDirection, { kind: 'consumer_dialed' }>,
): Promise<Connection> {
  c.phase = 'waiting_for_answer';
  let observed: AttemptEndObservation | undefined;
  const answer = await waitForSipAnswer(c.room, direction.participantIdentity, c.settings.participantWaitMs, (seen) => {
    observed = seen;
  });
  if (answer !== 'answered') {
    c.phase = 'connecting';
    // Never connected: the consumer saw the SIP failure and reports it; nothing is the agent's to report. What the
    // room showed of the failure goes on the record, for a consumer that takes over if the dialing one died.
    c.log.info({ answer }, 'the callee did not connect');
    // After a failure (`gone`) the consumer deletes the room. After a timeout, or when the agent left the room
    // (agents-js disconnects from it before running shutdown callbacks), the call may still be ringing: deleting
    // the room stops the phone from ringing into a room nobody serves (the consumer then sees a platform failure
    // and dials again later). A room LiveKit deleted (`room_deleted`) is not deleted again: a room of that name
    // may exist again by then, made by the consumer that now holds the call for its own agent (seen in the chaos
    // test on a cluster: a taken-over attempt's old agent deleted the new holder's room right after its dispatch,
    // the callee declined with no agent to note it, and the number was rung again).
    const hangup =
      answer === 'timeout' ? 'the callee did not answer in time' : answer === 'closed' ? 'the agent left the room before the callee answered' : undefined;
    return {
      connected: false,
      observed,
      hangup,
      shutdownReason:
        answer === 'closed' ? 'room closed before the callee answered' : answer === 'room_deleted' ? 'room deleted before the callee answered' : `callee ${answer}`,
    };
  }
  c.phase = 'connected';
  c.tracker.markConnected();
  return { connected: true, calleeSeen: true, conversation: await c.open(direction.participantIdentity) };
}

/** Someone called in: the caller is the first participant in the room that is not an agent. Their call is the agent's to report. */
export async function connectInbound(c: ConnectContext): Promise<Connection> {
  const joined = await waitForCaller(c.room, c.settings.participantWaitMs);
  if (typeof joined === 'string') {
    const reason =
      joined === 'closed'
        ? 'the caller hung up before the agent answered'
        : `no caller joined the room within ${Math.round(c.settings.participantWaitMs / SECOND)} s`;
    c.log.info({ joined }, 'no inbound caller');
    // Decided now: a shutdown callback running meanwhile (the job leaving the room is how `closed` can come) keeps it.
    const decision = { outcome: 'failed' as const, reason };
    c.tracker.decide(decision);
    return { connected: false, decision, hangup: reason, shutdownReason: reason };
  }
  c.phase = 'connected';
  c.tracker.markConnected();
  const number = joined.attributes[SIP_ATTR.phoneNumber];
  if (number) c.tracker.setCaller(number);
  c.log.info({ caller: number ? redactPhoneNumber(number) : undefined }, 'inbound caller connected');
  return { connected: true, calleeSeen: true, conversation: await c.open(joined.identity) };
}

/**
 * Dispatched with only a phone number: the agent places the call itself. The session listens before the call is
 * placed, so the callee's first words are not lost (agents-js' telephony_amd.ts does the same); the call is on the
 * record (`dialing`, then `in_call`) so the results worker accepts its outcome and the watchdog covers it.
 */
export async function connectSelfDialed(c: ConnectContext, direction: Extract<CallDirection, { kind: 'self_dial' }>): Promise<Connection> {
  const conversation = await c.open(direction.participantIdentity);
  const call = { callId: c.plan.callId, campaignId: c.plan.campaignId, metadata: {}, phoneNumber: direction.phoneNumber };
  c.phase = 'dialing';
  await c.book.dialing(call, c.roomName);
  const trunkId = c.config.sipOutboundTrunkId;
  const dialed = trunkId
    ? await c.serverApi.dial(direction.phoneNumber, {
        trunkId,
        participantIdentity: direction.participantIdentity,
        ringingTimeoutS: c.config.dial.ringingTimeoutS,
        maxCallDurationS: Math.ceil(conversation.profile.limits.maxCallDurationMs / SECOND) + SELF_DIAL_MAX_DURATION_GRACE_S,
      })
    : undefined;
  if (!dialed?.ok) {
    c.phase = 'connecting';
    const decision = dialed?.ok === false ? dialed.decision : { outcome: 'failed' as const, reason: 'SIP_OUTBOUND_TRUNK_ID is not set' };
    c.tracker.decide(decision);
    return { connected: false, decision, hangup: decision.reason, detector: conversation.detector, shutdownReason: decision.reason };
  }
  c.phase = 'connected';
  c.tracker.markConnected();
  await c.book.connected(call, c.roomName, conversation.profile.limits.maxCallDurationMs);
  return { connected: true, calleeSeen: false, conversation };
}

/** The connect step of the call's direction. */
export function connectCallee(c: ConnectContext): Promise<Connection> {
  const direction = c.plan.direction;
  switch (direction.kind) {
    case 'consumer_dialed':
      return connectConsumerDialed(c, direction);
    case 'self_dial':
      return connectSelfDialed(c, direction);
    case 'inbound':
      return connectInbound(c);
  }
}
