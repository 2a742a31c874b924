/** SIP trunks and dispatch rules: the admin half of LiveKit's SIP service (pkg/service/sip.go). */
import {
  CreateSIPDispatchRuleRequest,
  CreateSIPInboundTrunkRequest,
  CreateSIPOutboundTrunkRequest,
  DeleteSIPDispatchRuleRequest,
  DeleteSIPTrunkRequest,
  ListSIPDispatchRuleRequest,
  ListSIPDispatchRuleResponse,
  ListSIPInboundTrunkRequest,
  ListSIPInboundTrunkResponse,
  ListSIPOutboundTrunkRequest,
  ListSIPOutboundTrunkResponse,
  SIPDispatchRuleInfo,
  SIPInboundTrunkInfo,
  SIPOutboundTrunkInfo,
  SIPTrunkInfo,
} from '@livekit/protocol';
import { ensureSipAdminPermission } from './auth.js';
import { ID_PREFIX, newId } from './ids.js';
import { LIVEKIT_MESSAGES, twirpError } from './twirpErrors.js';
import { rpc, type TwirpMethod } from './twirpServer.js';

/** A trunk the sim starts with (outbound). */
export interface SeedTrunk {
  sipTrunkId?: string;
  name?: string;
  address?: string;
  numbers?: string[];
  authUsername?: string;
  authPassword?: string;
}

export const DEFAULT_OUTBOUND_TRUNK_ID = 'ST_sim_outbound';
export const DEFAULT_SEED_TRUNKS: readonly SeedTrunk[] = [
  { sipTrunkId: DEFAULT_OUTBOUND_TRUNK_ID, name: 'sim outbound', address: 'sip.sim.invalid', numbers: ['+15550100000'] },
];

function filterByIds<T>(items: T[], ids: string[], idOf: (item: T) => string): T[] {
  return ids.length === 0 ? items : items.filter((item) => ids.includes(idOf(item)));
}

export class SipTrunks {
  readonly outbound = new Map<string, SIPOutboundTrunkInfo>();
  readonly inbound = new Map<string, SIPInboundTrunkInfo>();
  readonly dispatchRules = new Map<string, SIPDispatchRuleInfo>();

  constructor(seed: readonly SeedTrunk[]) {
    for (const trunk of seed) {
      const info = new SIPOutboundTrunkInfo({
        sipTrunkId: trunk.sipTrunkId ?? newId(ID_PREFIX.sipTrunk),
        name: trunk.name ?? '',
        address: trunk.address ?? 'sip.sim.invalid',
        numbers: trunk.numbers ?? [],
        authUsername: trunk.authUsername ?? '',
        authPassword: trunk.authPassword ?? '',
      });
      this.outbound.set(info.sipTrunkId, info);
    }
  }

  methods(): Record<string, TwirpMethod> {
    return {
      CreateSIPOutboundTrunk: rpc(CreateSIPOutboundTrunkRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        const trunk = req.trunk ?? new SIPOutboundTrunkInfo();
        if (trunk.sipTrunkId !== '') throw twirpError('invalid_argument', 'trunk ID must be empty');
        const info = trunk.clone();
        info.sipTrunkId = newId(ID_PREFIX.sipTrunk);
        this.outbound.set(info.sipTrunkId, info);
        return info;
      }),
      ListSIPOutboundTrunk: rpc(ListSIPOutboundTrunkRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        const items = filterByIds([...this.outbound.values()], req.trunkIds, (t) => t.sipTrunkId);
        return new ListSIPOutboundTrunkResponse({ items });
      }),
      CreateSIPInboundTrunk: rpc(CreateSIPInboundTrunkRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        const trunk = req.trunk ?? new SIPInboundTrunkInfo();
        if (trunk.sipTrunkId !== '') throw twirpError('invalid_argument', 'trunk ID must be empty');
        const info = trunk.clone();
        info.sipTrunkId = newId(ID_PREFIX.sipTrunk);
        this.inbound.set(info.sipTrunkId, info);
        return info;
      }),
      ListSIPInboundTrunk: rpc(ListSIPInboundTrunkRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        const items = filterByIds([...this.inbound.values()], req.trunkIds, (t) => t.sipTrunkId);
        return new ListSIPInboundTrunkResponse({ items });
      }),
      DeleteSIPTrunk: rpc(DeleteSIPTrunkRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        if (req.sipTrunkId === '') throw twirpError('invalid_argument', 'trunk ID is required');
        // LiveKit's store deletes without checking existence and echoes the id back.
        this.outbound.delete(req.sipTrunkId);
        this.inbound.delete(req.sipTrunkId);
        return new SIPTrunkInfo({ sipTrunkId: req.sipTrunkId });
      }),
      CreateSIPDispatchRule: rpc(CreateSIPDispatchRuleRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        const base = req.dispatchRule;
        const info = new SIPDispatchRuleInfo({
          sipDispatchRuleId: newId(ID_PREFIX.dispatchRule),
          rule: base?.rule ?? req.rule,
          trunkIds: base?.trunkIds.length ? base.trunkIds : req.trunkIds,
          hidePhoneNumber: base?.hidePhoneNumber ?? req.hidePhoneNumber,
          numbers: base?.numbers ?? [],
          inboundNumbers: base?.inboundNumbers ?? [],
          name: base?.name || req.name,
          metadata: base?.metadata || req.metadata,
          attributes: base && Object.keys(base.attributes).length > 0 ? base.attributes : req.attributes,
          roomPreset: base?.roomPreset || req.roomPreset,
          roomConfig: base?.roomConfig ?? req.roomConfig,
        });
        this.dispatchRules.set(info.sipDispatchRuleId, info);
        return info;
      }),
      ListSIPDispatchRule: rpc(ListSIPDispatchRuleRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        const items = filterByIds([...this.dispatchRules.values()], req.dispatchRuleIds, (r) => r.sipDispatchRuleId);
        return new ListSIPDispatchRuleResponse({ items });
      }),
      DeleteSIPDispatchRule: rpc(DeleteSIPDispatchRuleRequest, (req, ctx) => {
        ensureSipAdminPermission(ctx.grants);
        if (req.sipDispatchRuleId === '') throw twirpError('invalid_argument', 'dispatch rule ID is required');
        const rule = this.dispatchRules.get(req.sipDispatchRuleId);
        if (!rule) throw twirpError('not_found', LIVEKIT_MESSAGES.dispatchRuleNotFound);
        this.dispatchRules.delete(req.sipDispatchRuleId);
        return rule;
      }),
    };
  }
}
