/**
 * A LiveKit server-API simulator with a scripted phone network. The real livekit-server-sdk clients talk to it
 * unchanged over HTTP on 127.0.0.1 (Twirp JSON or protobuf, JWT auth), so the dialer can be exercised end to end
 * without a LiveKit server or a phone line.
 */
import { type Clock, systemClock } from '../core/time.js';
import { AGENT_PATH, AgentWorkers, type SimAgentJob } from './agentWorkers.js';
import { createSimEvents, type SimEvents } from './events.js';
import { PhoneNetwork } from './phoneNetwork.js';
import { RoomState, type RoomSnapshot, type SimDispatch, type SimParticipant } from './roomState.js';
import { agentDispatchMethods, roomServiceMethods } from './roomService.js';
import type { RingOutMode, ScenarioInput } from './scenarioSchema.js';
import { Scheduler } from './scheduler.js';
import { SipCalls, type InboundCallOptions, type InboundCallResult, type SimCallRecord, type SimTransferRecord } from './sipCalls.js';
import { DEFAULT_SEED_TRUNKS, type SeedTrunk, SipTrunks } from './sipTrunks.js';
import { type JsonNames, type RequestLogEntry, startTwirpServer } from './twirpServer.js';

export { waitForEvent } from './events.js';
export { AGENT_NAME_ATTRIBUTE, type SimAgentJob } from './agentWorkers.js';
export type * from './events.js';
export { PhoneNetwork, planCall, planTransfer, resolveCallee } from './phoneNetwork.js';
export type { NetworkCallPlan, TransferPlan } from './phoneNetwork.js';
export {
  ScenarioError,
  loadScenarioFile,
  parseScenario,
  scenarioSchema,
  behaviorSchema,
  calleeSchema,
  transferBehaviorSchema,
} from './scenarioSchema.js';
export type {
  Behavior,
  BehaviorType,
  Callee,
  NumberScript,
  NumberScriptInput,
  RingOutMode,
  Scenario,
  ScenarioInput,
  TransferBehavior,
} from './scenarioSchema.js';
export type { InboundCallOptions, InboundCallResult, SimCallOptions, SimCallRecord, SimCallResult, SimTransferRecord, SimTransferOutcome, SipCallStatus } from './sipCalls.js';
export { SIP_ATTR } from './sipCalls.js';
export type { RoomSnapshot, SimDispatch, SimParticipant } from './roomState.js';
export type { RequestLogEntry, JsonNames } from './twirpServer.js';
export type { SeedTrunk } from './sipTrunks.js';
export { DEFAULT_OUTBOUND_TRUNK_ID } from './sipTrunks.js';
export {
  SIP_STATUS_TWIRP_CODE,
  TWIRP_HTTP_STATUS,
  sipStatusToTwirpCode,
  sipReasonPhrase,
  type DisconnectReasonName,
  type TwirpCode,
} from './twirpErrors.js';

/** `livekit-server --dev` credentials. */
export const DEV_API_KEY = 'devkey';
export const DEV_API_SECRET = 'secret';

export interface SimOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  apiKey?: string;
  apiSecret?: string;
  /** The phone network: per-number behaviour, default, transfer targets (the JSON scenario shape). */
  network?: ScenarioInput;
  /**
   * Shorthand for `network.ringOut`: how a call that rings out fails (`timeout` = 408 canceled, livekit-sip's answer
   * and the default; `busy` = 486; `deadline` = 412 failed_precondition "context deadline exceeded").
   */
  ringOut?: RingOutMode;
  /** Outbound trunks present at start; default one trunk `ST_sim_outbound` with a caller number. */
  seedTrunks?: readonly SeedTrunk[];
  /** Reply JSON naming: `proto` (snake_case, defaults emitted: what livekit-server sends) or `camel`. */
  jsonNames?: JsonNames;
  /** Source of `now()` for timestamps in records and events. */
  clock?: Clock;
  /**
   * How long after its assignment a job's agent joins its room (default 0: at once). Meanwhile ListDispatch lists the
   * job (JS_RUNNING) and the room has no agent, like an agents-js job process still connecting.
   */
  agentJoinDelayMs?: number;
}

/** The scripted network's controls, as exposed on a running sim. */
export type SimNetwork = Pick<
  PhoneNetwork,
  'setBehavior' | 'setDefault' | 'load' | 'setTransfer' | 'setDefaultTransfer' | 'setRingOut' | 'attempts' | 'ringOut'
>;

export interface LiveKitSim {
  /** http://127.0.0.1:<port>; pass it to the SDK clients as the host. */
  url: string;
  port: number;
  apiKey: string;
  apiSecret: string;
  /** The first seeded outbound trunk's id. */
  outboundTrunkId: string;
  network: SimNetwork;
  events: SimEvents;
  /** Every CreateSIPParticipant received, in order, with its outcome. */
  readonly calls: readonly SimCallRecord[];
  /** Every dispatch ever created (including those of deleted rooms). */
  readonly dispatches: readonly SimDispatch[];
  readonly transfers: readonly SimTransferRecord[];
  /** Every inbound call placed with `inboundCall`, in order. */
  readonly inboundCalls: readonly SimCallRecord[];
  /**
   * A caller dials `to` from `from`: LiveKit's inbound trunks and dispatch rules route it (rules created through the
   * SIP API, e.g. `dialer setup inbound`), the room is created with the rule's room config (dispatching its agents)
   * and the caller's SIP participant joins. `{ok: false}` when no trunk or rule takes the call.
   */
  inboundCall(options: InboundCallOptions): InboundCallResult;
  readonly deletedRooms: readonly string[];
  /** Every Twirp request routed to a service, with its HTTP status once answered. */
  readonly requests: readonly RequestLogEntry[];
  /** Jobs handed to agent workers registered on `/agent` (explicit dispatch by agent name), in order. */
  readonly agentJobs: readonly SimAgentJob[];
  /** Agent workers connected now. */
  agentWorkers(): { id: string; agentName: string; available: boolean }[];
  /** Sets how long after its assignment a job's agent joins its room, for jobs assigned from now on (SimOptions). */
  setAgentJoinDelay(ms: number): void;
  rooms(): RoomSnapshot[];
  participants(room: string): SimParticipant[];
  /** The callee of the SIP participant hangs up (answered) or declines (still ringing). False if no such call. */
  hangupCallee(room: string, identity: string): boolean;
  /** Ends pending calls, closes every socket; idempotent. */
  close(): Promise<void>;
}

export async function startLiveKitSim(options: SimOptions = {}): Promise<LiveKitSim> {
  const clock = options.clock ?? systemClock;
  const apiKey = options.apiKey ?? DEV_API_KEY;
  const apiSecret = options.apiSecret ?? DEV_API_SECRET;
  const events = createSimEvents();
  const scheduler = new Scheduler();
  const network = new PhoneNetwork(options.network);
  if (options.ringOut) network.setRingOut(options.ringOut);
  const rooms = new RoomState(clock, events);
  const trunks = new SipTrunks(options.seedTrunks ?? DEFAULT_SEED_TRUNKS);
  const sipCalls = new SipCalls({ clock, events, rooms, network, trunks, scheduler });
  const requests: RequestLogEntry[] = [];
  const workers = new AgentWorkers({ apiKey, apiSecret, clock, events, rooms, agentJoinDelayMs: options.agentJoinDelayMs });

  const server = await startTwirpServer({
    port: options.port ?? 0,
    apiKey,
    apiSecret,
    clock,
    jsonNames: options.jsonNames ?? 'proto',
    requestLog: requests,
    upgrades: { [AGENT_PATH]: (req, socket, head) => workers.handleUpgrade(req, socket, head) },
    services: {
      RoomService: roomServiceMethods(rooms),
      AgentDispatchService: agentDispatchMethods(rooms),
      SIP: { ...trunks.methods(), ...sipCalls.methods() },
    },
  });

  const outboundTrunkId = [...trunks.outbound.keys()][0] ?? '';
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port,
    apiKey,
    apiSecret,
    outboundTrunkId,
    network,
    events,
    get calls() {
      return sipCalls.calls;
    },
    get dispatches() {
      return rooms.dispatchLog;
    },
    get transfers() {
      return sipCalls.transfers;
    },
    get inboundCalls() {
      return sipCalls.inboundCalls;
    },
    inboundCall: (options) => sipCalls.placeInbound(options),
    get deletedRooms() {
      return rooms.deletedRooms;
    },
    get requests() {
      return requests;
    },
    get agentJobs() {
      return workers.jobs;
    },
    agentWorkers: () => workers.registered(),
    setAgentJoinDelay: (ms) => {
      workers.agentJoinDelayMs = ms;
    },
    rooms: () => rooms.snapshot(),
    participants: (room) => rooms.participants(room),
    hangupCallee: (room, identity) => sipCalls.hangupCallee(room, identity),
    close() {
      closing ??= (async () => {
        sipCalls.closeAll();
        scheduler.close();
        workers.close();
        // Let replies to waiting requests ("service shutting down") reach their sockets before they close.
        await new Promise<void>((resolve) => setImmediate(resolve));
        await server.close();
      })();
      return closing;
    },
  };
}
