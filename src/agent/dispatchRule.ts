/** The inbound dispatch rule: `dispatch-rule.json` (the form `lk sip dispatch create` takes) and creating it for AGENT_NAME. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { SIPDispatchRuleInfo } from '@livekit/protocol';
import { RoomAgentDispatch, RoomConfiguration, type SipClient } from 'livekit-server-sdk';
import { z } from 'zod';
import { errorMessage, InvalidInputError } from '../core/errors.js';

/** The dispatch rule shipped at the package root (`lk sip dispatch create` reads the same file). */
export const DEFAULT_DISPATCH_RULE_FILE = fileURLToPath(new URL('../../dispatch-rule.json', import.meta.url));

/** `dispatch-rule.json`: the CreateSIPDispatchRule request in the JSON form `lk sip dispatch create` takes. */
const dispatchRuleFileSchema = z.object({
  dispatch_rule: z.object({
    rule: z.object({
      dispatchRuleIndividual: z.object({ roomPrefix: z.string().min(1), pin: z.string().optional() }),
    }),
    name: z.string().optional(),
    metadata: z.string().optional(),
    trunkIds: z.array(z.string()).optional(),
    trunk_ids: z.array(z.string()).optional(),
    hidePhoneNumber: z.boolean().optional(),
    attributes: z.record(z.string(), z.string()).optional(),
    roomConfig: z.object({
      agents: z.array(z.object({ agentName: z.string().min(1), metadata: z.string().optional() })).min(1),
    }),
  }),
});
export type DispatchRuleFile = z.infer<typeof dispatchRuleFileSchema>;

/** Reads and validates a dispatch rule file. */
export async function readDispatchRuleFile(file: string): Promise<DispatchRuleFile> {
  let document: unknown;
  try {
    document = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new InvalidInputError(`cannot read dispatch rule ${file}: ${errorMessage(err)}`);
  }
  const parsed = dispatchRuleFileSchema.safeParse(document);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new InvalidInputError(`invalid dispatch rule ${file} (only individual rules are supported): ${issues}`);
  }
  return parsed.data;
}

/**
 * Creates the file's individual rule through the SIP API, dispatching `agentName` (this deployment's AGENT_NAME,
 * whatever name the file was written with) with the file's agent metadata; `trunkIds` overrides the file's.
 */
export async function createInboundDispatchRule(
  sip: Pick<SipClient, 'createSipDispatchRule'>,
  file: DispatchRuleFile,
  agentName: string,
  trunkIds?: string[],
): Promise<SIPDispatchRuleInfo> {
  const rule = file.dispatch_rule;
  const agents = rule.roomConfig.agents.map((a) => new RoomAgentDispatch({ agentName, metadata: a.metadata ?? '' }));
  return sip.createSipDispatchRule(
    { type: 'individual', roomPrefix: rule.rule.dispatchRuleIndividual.roomPrefix, pin: rule.rule.dispatchRuleIndividual.pin },
    {
      name: rule.name,
      metadata: rule.metadata,
      trunkIds: trunkIds ?? rule.trunkIds ?? rule.trunk_ids,
      hidePhoneNumber: rule.hidePhoneNumber,
      attributes: rule.attributes,
      roomConfig: new RoomConfiguration({ agents }),
    },
  );
}
