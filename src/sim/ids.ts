import { randomBytes } from 'node:crypto';

/** LiveKit's id prefixes (protocol utils/guid): rooms, participants, SIP calls, trunks, rules, agent dispatches, workers and jobs. */
export const ID_PREFIX = {
  room: 'RM_',
  participant: 'PA_',
  sipCall: 'SCL_',
  sipTrunk: 'ST_',
  dispatchRule: 'SDR_',
  agentDispatch: 'AD_',
  transfer: 'STR_',
  agentWorker: 'AW_',
  agentJob: 'AJ_',
} as const;

/** LiveKit guids are the prefix plus 12 base-57 characters. */
const GUID_LENGTH = 12;
const GUID_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function newId(prefix: string): string {
  const bytes = randomBytes(GUID_LENGTH);
  let id = prefix;
  for (const byte of bytes) id += GUID_ALPHABET[byte % GUID_ALPHABET.length];
  return id;
}
