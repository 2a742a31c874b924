import { dialerKeys } from '../core/keys.js';
import type { RedisClient } from '../core/redisClient.js';
import { UnknownCampaignError } from './exitCodes.js';

/** Names a typo is most likely to be, at most this many. */
const MAX_SUGGESTIONS = 5;
/** Campaigns listed when none is close to the name given. */
const MAX_LISTED = 10;
/** Edits a name may be away from a suggestion: two, or a third of its length for long names. */
const MIN_EDITS = 2;
const EDITS_PER_CHAR = 1 / 3;

/** Optimal string alignment distance (insertions, deletions, substitutions, adjacent swaps), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const rows: number[][] = Array.from({ length: s.length + 1 }, (_, i) => Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= s.length; i++) {
    const row = rows[i];
    if (!row) continue;
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(s.length, t.length);
}

/** Known campaigns close to `name` (few edits away, or containing it, or contained in it), closest first. */
export function nearbyCampaigns(name: string, known: readonly string[]): string[] {
  const lower = name.toLowerCase();
  const limit = Math.max(MIN_EDITS, Math.floor(name.length * EDITS_PER_CHAR));
  return known
    .map((k) => ({ k, d: editDistance(name, k), contains: k.toLowerCase().includes(lower) || lower.includes(k.toLowerCase()) }))
    .filter(({ d, contains }) => d <= limit || contains)
    .sort((x, y) => x.d - y.d || x.k.localeCompare(y.k))
    .slice(0, MAX_SUGGESTIONS)
    .map(({ k }) => k);
}

/** What to tell someone who named a campaign that does not exist: the close names, else the campaigns there are. */
export function unknownCampaignMessage(name: string, known: readonly string[]): string {
  const head = `no campaign "${name}"`;
  if (known.length === 0) return `${head}: there are no campaigns yet (enqueue or import calls, or define one with \`dialer campaign create ${name}\`)`;
  const near = nearbyCampaigns(name, known);
  if (near.length > 0) return `${head}; did you mean ${near.join(', ')}? (\`dialer campaigns\` lists them all)`;
  const listed = known.slice(0, MAX_LISTED).join(', ');
  const more = known.length > MAX_LISTED ? ` and ${known.length - MAX_LISTED} more (\`dialer campaigns\` lists them all)` : '';
  return `${head}; the campaigns are ${listed}${more}`;
}

/**
 * Every campaign that exists: those with calls on record (the campaign index) and those defined as objects (`campaign
 * create`), whether or not they have calls yet; sorted, each once.
 */
export async function knownCampaigns(redis: RedisClient, prefix: string): Promise<string[]> {
  const keys = dialerKeys(prefix);
  const [withCalls, defined] = await Promise.all([redis.smembers(keys.campaignIndex()), redis.smembers(keys.campaignDefinitions())]);
  return [...new Set([...withCalls, ...defined])].sort();
}

/**
 * Throws UnknownCampaignError (exit 2, naming the close campaigns, else the ones there are) unless the campaign exists
 * (knownCampaigns): for every command that acts on a campaign someone typed, so a typo is refused, not done on nothing.
 */
export async function requireCampaign(redis: RedisClient, prefix: string, campaignId: string): Promise<void> {
  const known = await knownCampaigns(redis, prefix);
  if (!known.includes(campaignId)) throw new UnknownCampaignError(unknownCampaignMessage(campaignId, known));
}
