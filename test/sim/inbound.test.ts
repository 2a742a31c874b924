/** Inbound calls routed like LiveKit's SIP service: inbound trunk → dispatch rule → room, agent dispatch, caller. */
import { RoomAgentDispatch, RoomConfiguration } from '@livekit/protocol';
import { describe, expect, it } from 'vitest';
import { SIP_ATTR, waitForEvent, type LiveKitSim } from '../../src/sim/index.js';
import { useFreshSim, type SimClients } from './simClients.js';

const SUPPORT_NUMBER = '+15550109000';
const CALLER = '+14155550111';

let sim: LiveKitSim;
let clients: SimClients;

useFreshSim((started, sdk) => {
  sim = started;
  clients = sdk;
});

/** The shipped rule's shape: individual rooms `call-_<caller>_<random>`, dispatching the named agent. */
async function individualRule(options: { trunkIds?: string[]; hidePhoneNumber?: boolean; agentName?: string } = {}) {
  return clients.sip.createSipDispatchRule(
    { type: 'individual', roomPrefix: 'call-' },
    {
      name: 'inbound',
      metadata: 'rule-metadata',
      trunkIds: options.trunkIds,
      hidePhoneNumber: options.hidePhoneNumber,
      attributes: { line: 'support' },
      roomConfig: new RoomConfiguration({
        agents: [new RoomAgentDispatch({ agentName: options.agentName ?? 'telephony-agent', metadata: '{"agent_profile":"support-line"}' })],
      }),
    },
  );
}

describe('inbound calls', () => {
  it('an individual rule puts each caller in a room of their own, dispatches the rule’s agent, and joins the caller active', async () => {
    const trunk = await clients.sip.createSipInboundTrunk('support', [SUPPORT_NUMBER]);
    const rule = await individualRule({ trunkIds: [trunk.sipTrunkId] });
    const dispatched = waitForEvent(sim.events, 'dispatch_created');
    const answered = waitForEvent(sim.events, 'call_answered');

    const call = sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER, caller: { kind: 'wants_human', lines: ['I need a person'] } });
    if (!call.ok) throw new Error(call.reason);
    expect(call.room).toMatch(new RegExp(`^call-_\\${CALLER}_[2-9A-Za-z]{12}$`));
    expect(call).toMatchObject({ identity: `sip_${CALLER}`, trunkId: trunk.sipTrunkId, ruleId: rule.sipDispatchRuleId });
    expect(await dispatched).toMatchObject({ room: call.room, agentName: 'telephony-agent', metadata: '{"agent_profile":"support-line"}' });
    expect(await answered).toMatchObject({ room: call.room, identity: `sip_${CALLER}`, phoneNumber: CALLER, callee: { kind: 'wants_human' } });

    const [participant] = await clients.rooms.listParticipants(call.room);
    expect(participant).toMatchObject({ identity: `sip_${CALLER}`, name: `Phone ${CALLER}`, metadata: 'rule-metadata' });
    expect(participant?.attributes).toMatchObject({
      line: 'support',
      [SIP_ATTR.phoneNumber]: CALLER,
      [SIP_ATTR.trunkPhoneNumber]: SUPPORT_NUMBER,
      [SIP_ATTR.trunkId]: trunk.sipTrunkId,
      [SIP_ATTR.ruleId]: rule.sipDispatchRuleId,
      [SIP_ATTR.callStatus]: 'active',
    });
    expect(sim.inboundCalls.map((c) => [c.direction, c.phoneNumber, c.fromNumber])).toEqual([['inbound', CALLER, SUPPORT_NUMBER]]);
    expect(sim.calls).toEqual([]);

    const second = sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER });
    expect(second.ok && second.room).not.toBe(call.room);
  });

  it('the caller hanging up ends the call and they leave the room', async () => {
    await individualRule();
    const call = sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER, hangupAfterMs: 50 });
    if (!call.ok) throw new Error(call.reason);
    const ended = await waitForEvent(sim.events, 'call_ended', (e) => e.room === call.room);
    expect(ended.reason).toBe('callee_hangup');
    expect(await clients.rooms.listParticipants(call.room)).toEqual([]);
  });

  it('a rule with hidePhoneNumber hides the caller: hashed identity, last four digits in the name, no number attributes', async () => {
    await individualRule({ hidePhoneNumber: true });
    const call = sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER });
    if (!call.ok) throw new Error(call.reason);
    expect(call.identity).toMatch(/^sip_[0-9a-f]{16}$/);
    expect(call.room).toMatch(/^call-_0111_/);
    const [participant] = await clients.rooms.listParticipants(call.room);
    expect(participant?.name).toBe('Phone 0111');
    expect(participant?.attributes[SIP_ATTR.phoneNumber]).toBeUndefined();
  });

  it('is refused when no inbound trunk takes the number, or no rule takes the trunk', async () => {
    const trunk = await clients.sip.createSipInboundTrunk('support', [SUPPORT_NUMBER]);
    expect(sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER })).toEqual({ ok: false, reason: 'no_rule' });
    await individualRule({ trunkIds: [trunk.sipTrunkId] });
    expect(sim.inboundCall({ from: CALLER, to: '+15550109999' })).toEqual({ ok: false, reason: 'no_trunk' });
    await clients.sip.createSipInboundTrunk('vip', ['+15550109001'], { allowedNumbers: ['+14155550999'] });
    expect(sim.inboundCall({ from: CALLER, to: '+15550109001' })).toEqual({ ok: false, reason: 'no_trunk' });
    expect(sim.rooms()).toEqual([]);
  });

  it('a rule naming another trunk does not take the call; a rule naming none does', async () => {
    const support = await clients.sip.createSipInboundTrunk('support', [SUPPORT_NUMBER]);
    const sales = await clients.sip.createSipInboundTrunk('sales', ['+15550109002']);
    await individualRule({ trunkIds: [sales.sipTrunkId], agentName: 'sales-agent' });
    expect(sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER })).toEqual({ ok: false, reason: 'no_rule' });
    const wildcard = await individualRule();
    const call = sim.inboundCall({ from: CALLER, to: SUPPORT_NUMBER });
    expect(call).toMatchObject({ ok: true, trunkId: support.sipTrunkId, ruleId: wildcard.sipDispatchRuleId });
  });
});
