/** The voice agent: the call's lifecycle (runCall), its conversation logic, and the LiveKit worker entry. */
export {
  loadAgentSettings,
  requireOpenAIKey,
  DEFAULT_PROFILES_FILE,
  type AgentSettings,
  type CallLimits,
  type ModelMode,
  type ModelSettings,
} from './agentConfig.js';
export { buildCallAgent, callInstructions, callTools, TOOL_NAMES } from './callAgent.js';
export { CallServerApi, dialFailureDecision, type DialResult, type TransferResult } from './callServerApi.js';
export { CallController, matchQuestion, type CallBehaviour, type DtmfSender } from './callController.js';
export {
  parseCallPlan,
  inboundCallId,
  INBOUND_CAMPAIGN_ID,
  DispatchMetadataError,
  type CallPlan,
  type CallDirection,
} from './callPlan.js';
export {
  runCallJob,
  runCall,
  openRoomSession,
  type CallJobDeps,
  type CallJobContext,
  type CallRoom,
  type CallRunDeps,
  type CallReporting,
  type AmdFactory,
  type ModelFactory,
  type WarmTransferContext,
  type SessionOpener,
  type SessionRequest,
} from './entry.js';
export {
  connectCallee,
  type AnsweringMachineDetector,
  type Connected,
  type Connection,
  type Conversation,
  type NotConnected,
} from './connectCallee.js';
export { createSessionModels, type SessionModels } from './models.js';
export { CallOutcomeTracker, type OutcomeDecision, type ResultSink } from './outcomeTracker.js';
export {
  agentProfileSchema,
  fillPlaceholders,
  loadProfiles,
  parseProfiles,
  resolveCallProfile,
  type AgentProfile,
  type CallProfile,
  type ProfileCatalog,
} from './profiles.js';
export {
  followCallee,
  waitForCaller,
  waitForLeave,
  waitForSipAnswer,
  type AnswerWait,
  type FollowOptions,
  type LifecycleRoom,
  type RoomParticipant,
} from './roomLifecycle.js';
export { agentsWarmTransfer, apiWarmTransfer, type WarmTransferPort } from './warmTransfer.js';
