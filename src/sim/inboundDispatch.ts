/**
 * Where an inbound call goes, as livekit/protocol's sip package decides it (MatchTrunk, MatchDispatchRule,
 * EvaluateDispatchRule), read not copied: the inbound trunk for the called number (a trunk listing that number wins
 * over one with no numbers; its allowed numbers must include the caller), then a dispatch rule of that trunk (or,
 * failing that, one naming no trunk; a rule's `numbers`/`inboundNumbers` must include the called/calling number),
 * then the room and the caller's participant. PINs, address masks, media and header mapping are not modelled.
 */
import { createHash } from 'node:crypto';
import type { RoomConfiguration, SIPDispatchRuleInfo, SIPInboundTrunkInfo } from '@livekit/protocol';
import { newId } from './ids.js';
import { SIP_ATTR } from '../core/sipAttributes.js';

/** A hidden caller keeps this many trailing digits in its name (EvaluateDispatchRule). */
const HIDDEN_NUMBER_DIGITS = 4;
const HIDDEN_ID_HASH_BYTES = 8;

export interface InboundCallRequest {
  /** The caller's number (From user). */
  from: string;
  /** The number called (To user): one of an inbound trunk's numbers. */
  to: string;
  /** The SIP host the call came from (From host). */
  fromHost?: string;
}

export type InboundRouting =
  | {
      ok: true;
      trunkId: string;
      ruleId: string;
      room: string;
      roomConfig: RoomConfiguration | undefined;
      identity: string;
      name: string;
      metadata: string;
      attributes: Record<string, string>;
    }
  | { ok: false; reason: 'no_trunk' | 'no_rule' | 'unsupported_rule' };

function allows(list: readonly string[], number: string): boolean {
  return list.length === 0 || list.includes(number);
}

/** MatchTrunk: the trunk for the called number; no trunks at all is no trunk (wildcard rules still apply). */
export function matchInboundTrunk(
  trunks: readonly SIPInboundTrunkInfo[],
  call: InboundCallRequest,
): { ok: true; trunk: SIPInboundTrunkInfo | undefined } | { ok: false } {
  if (trunks.length === 0) return { ok: true, trunk: undefined };
  const allowed = trunks.filter((t) => allows(t.allowedNumbers, call.from));
  const specific = allowed.find((t) => t.numbers.includes(call.to));
  const wildcard = allowed.find((t) => t.numbers.length === 0);
  const trunk = specific ?? wildcard;
  return trunk ? { ok: true, trunk } : { ok: false };
}

/** MatchDispatchRule: a rule naming the trunk, else one naming no trunk. */
export function matchDispatchRule(
  rules: readonly SIPDispatchRuleInfo[],
  trunk: SIPInboundTrunkInfo | undefined,
  call: InboundCallRequest,
): SIPDispatchRuleInfo | undefined {
  const candidates = rules.filter((r) => allows(r.inboundNumbers, call.from) && allows(r.numbers, call.to));
  const specific = trunk ? candidates.find((r) => r.trunkIds.includes(trunk.sipTrunkId)) : undefined;
  return specific ?? candidates.find((r) => r.trunkIds.length === 0);
}

/** EvaluateDispatchRule: the room and the caller's identity, name, metadata and attributes. */
export function routeInboundCall(
  trunks: readonly SIPInboundTrunkInfo[],
  rules: readonly SIPDispatchRuleInfo[],
  call: InboundCallRequest,
  sipCallId: string,
): InboundRouting {
  const matched = matchInboundTrunk(trunks, call);
  if (!matched.ok) return { ok: false, reason: 'no_trunk' };
  const rule = matchDispatchRule(rules, matched.trunk, call);
  if (!rule) return { ok: false, reason: 'no_rule' };
  const trunkId = matched.trunk?.sipTrunkId ?? '';

  let from = call.from;
  let identity = `sip_${call.from}`;
  const attributes: Record<string, string> = { ...rule.attributes, [SIP_ATTR.callId]: sipCallId, [SIP_ATTR.trunkId]: trunkId };
  if (rule.hidePhoneNumber) {
    identity = `sip_${createHash('sha256').update(call.from).digest('hex').slice(0, 2 * HIDDEN_ID_HASH_BYTES)}`;
    from = call.from.slice(-(call.from.length <= HIDDEN_NUMBER_DIGITS ? 1 : HIDDEN_NUMBER_DIGITS));
  } else {
    attributes[SIP_ATTR.phoneNumber] = call.from;
    attributes[SIP_ATTR.hostname] = call.fromHost ?? '';
    attributes[SIP_ATTR.trunkPhoneNumber] = call.to;
  }

  let room: string;
  const kind = rule.rule?.rule;
  switch (kind?.case) {
    case 'dispatchRuleIndividual': {
      const { roomPrefix, noRandomness } = kind.value;
      room = roomPrefix === '' ? from : `${roomPrefix}_${from}`;
      if (!noRandomness) room += `_${newId('')}`;
      break;
    }
    case 'dispatchRuleCallee': {
      const { roomPrefix, randomize } = kind.value;
      room = roomPrefix === '' ? call.to : `${roomPrefix}_${call.to}`;
      if (randomize) room += `_${newId('')}`;
      break;
    }
    case 'dispatchRuleDirect':
      room = kind.value.roomName;
      break;
    default:
      return { ok: false, reason: 'unsupported_rule' };
  }
  attributes[SIP_ATTR.ruleId] = rule.sipDispatchRuleId;
  return {
    ok: true,
    trunkId,
    ruleId: rule.sipDispatchRuleId,
    room,
    roomConfig: rule.roomConfig,
    identity,
    name: `Phone ${from}`,
    metadata: rule.metadata,
    attributes,
  };
}
