import { voice } from '@livekit/agents';
import type { CallOutcomeTracker } from './outcomeTracker.js';

/** A tool call's line in the transcript is cut to this many characters. */
const TRANSCRIPT_TOOL_LINE_CHARS = 300;

export interface SessionEvents {
  /** Something was said or done (restarts the silence timer). */
  onActivity(): void;
  /** The callee spoke (or started to). */
  onCalleeHeard(): void;
  /** The session closed, for whatever reason. */
  onClose(ev: voice.CloseEvent): void;
}

/**
 * Follows a started AgentSession: what the callee and the agent say and the tools that ran go into the call's
 * transcript (agents-js' ConversationItemAdded and FunctionToolsExecuted), and the call hears of activity, of the
 * callee speaking, and of the session closing.
 */
export function followSession(session: voice.AgentSession, tracker: CallOutcomeTracker, events: SessionEvents): void {
  const E = voice.AgentSessionEventTypes;
  session.on(E.ConversationItemAdded, (ev) => {
    const item = ev.item;
    if (item.type !== 'message') return;
    const text = item.textContent ?? '';
    if (item.role === 'user') {
      events.onCalleeHeard();
      tracker.addTranscript('callee', text);
    } else if (item.role === 'assistant') {
      tracker.addTranscript('agent', text);
    }
    events.onActivity();
  });
  session.on(E.FunctionToolsExecuted, (ev) => {
    ev.functionCalls.forEach((call, index) => {
      const output = ev.functionCallOutputs[index]?.output ?? '';
      tracker.addTranscript('system', `${call.name}(${call.args}) → ${output}`.slice(0, TRANSCRIPT_TOOL_LINE_CHARS));
    });
    events.onActivity();
  });
  session.on(E.UserInputTranscribed, () => {
    events.onCalleeHeard();
    events.onActivity();
  });
  session.on(E.UserStateChanged, (ev) => {
    if (ev.newState === 'speaking') events.onCalleeHeard();
    events.onActivity();
  });
  session.on(E.AgentStateChanged, () => events.onActivity());
  session.on(E.Close, (ev) => events.onClose(ev));
}
