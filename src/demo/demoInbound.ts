import { DEFAULT_DISPATCH_RULE_FILE, createInboundDispatchRule, readDispatchRuleFile } from '../agent/dispatchRule.js';
import { INBOUND_CAMPAIGN_ID, inboundCallId } from '../agent/callPlan.js';
import type { CallRecord, CallStore } from '../core/callStore.js';
import type { LiveKitClients } from '../core/livekitClients.js';
import { sleep } from '../core/time.js';
import type { LiveKitSim } from '../sim/index.js';

/** The demo's support line and the caller who rings it (someone who wants a person: the agent transfers them). */
export const DEMO_SUPPORT_LINE = '+15550109000';
export const DEMO_INBOUND_CALLER = '+14155550120';
const POLL_MS = 100;

export interface DemoInboundCall {
  ruleId: string;
  room: string;
  record: CallRecord;
}

/**
 * One inbound call as production takes it: the shipped dispatch rule created through the SIP API (what
 * `dialer setup inbound` does), a caller routed by it into a room of their own with AGENT_NAME dispatched, the
 * agent's outcome recorded under `in-<hash of the room>` (inboundCallId). Resolves once the call has its terminal record, or throws at `deadline`.
 */
export async function placeDemoInboundCall(options: {
  sim: LiveKitSim;
  sip: LiveKitClients['sip'];
  agentName: string;
  store: CallStore;
  deadline: number;
}): Promise<DemoInboundCall> {
  const rule = await createInboundDispatchRule(options.sip, await readDispatchRuleFile(DEFAULT_DISPATCH_RULE_FILE), options.agentName);
  const call = options.sim.inboundCall({
    from: DEMO_INBOUND_CALLER,
    to: DEMO_SUPPORT_LINE,
    caller: { kind: 'wants_human', name: 'Gus', lines: ['Hi, my internet keeps dropping out.', 'Can I talk to a real person about it?'] },
  });
  if (!call.ok) throw new Error(`the demo's inbound call was refused (${call.reason})`);
  const callId = inboundCallId(call.room);
  for (;;) {
    const record = await options.store.get(INBOUND_CAMPAIGN_ID, callId);
    if (record?.outcome) return { ruleId: rule.sipDispatchRuleId, room: call.room, record };
    if (Date.now() > options.deadline) throw new Error(`the demo's inbound call ${callId} has no outcome yet`);
    await sleep(POLL_MS);
  }
}
