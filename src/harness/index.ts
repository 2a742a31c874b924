/**
 * The simulated agent: runs the agent's call lifecycle against src/sim (a room built from the simulator's events,
 * a text-mode session whose callee speaks from the simulator's scenario). Above src/agent and src/sim; the demo,
 * the tests and the chaos test use it; a deployment never does.
 */
export {
  startSimulatedAgent,
  DEFAULT_SIMULATED_TIMING,
  type SimLike,
  type SimulatedAgent,
  type SimulatedAgentOptions,
  type SimulatedTiming,
} from './simulatedAgent.js';
export { buildCallScript, ScriptedLLM, INBOUND_GREETING_TEXT, NO_ANSWER_TEXT, type CallScript, type ScriptRule } from './calleeScript.js';
export {
  connectSimAgentWorker,
  startStandInAgent,
  AGENT_IDENTITY_PREFIX,
  type AssignedSimJob,
  type SimAgentWorker,
  type SimAgentWorkerOptions,
} from './simAgentWorker.js';
