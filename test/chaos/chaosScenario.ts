/**
 * The chaos campaign: a few hundred fictional numbers, each scripted in the simulated phone network with one
 * behaviour, and the outcome that behaviour must end in whatever happens to the dialer meanwhile.
 */
import type { Outcome } from '../../src/core/outcomes.js';
import type { Behavior, NumberScriptInput, ScenarioInput } from '../../src/sim/index.js';

/** What a number does when it is dialed (every attempt, except `busy_then_human`). */
export const SCRIPT_KINDS = ['human', 'voicemail', 'busy', 'decline', 'ring_out', 'not_found', 'busy_then_human'] as const;
export type ScriptKind = (typeof SCRIPT_KINDS)[number];

/** The one outcome each script must end in (README's outcome table). */
export const EXPECTED_OUTCOME: Readonly<Record<ScriptKind, Outcome>> = {
  human: 'answered',
  voicemail: 'voicemail',
  busy: 'busy',
  decline: 'declined',
  ring_out: 'no_answer',
  not_found: 'invalid_number',
  busy_then_human: 'answered',
};

/** Share of the campaign per script; what is left after rounding goes to `human`. */
const SCRIPT_SHARES: Readonly<Record<ScriptKind, number>> = {
  human: 0.3,
  voicemail: 0.1,
  busy: 0.1,
  decline: 0.2,
  ring_out: 0.12,
  not_found: 0.1,
  busy_then_human: 0.08,
};

/** Ringing before a pick-up or a decline, in ms: long enough that a consumer can die while the phone rings. */
const ANSWER_AFTER_MS = { min: 300, max: 3000 };
const DECLINE_AFTER_MS = { min: 1500, max: 3500 };
const NOT_FOUND_AFTER_MS = { min: 100, max: 300 };

/** One number of the campaign. */
export interface ChaosNumber {
  phoneNumber: string;
  kind: ScriptKind;
  expected: Outcome;
  script: NumberScriptInput;
}

/** mulberry32: a small seeded generator, so a failing run's campaign can be built again from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function between(random: () => number, range: { min: number; max: number }): number {
  return Math.round(range.min + random() * (range.max - range.min));
}

function human(random: () => number): Behavior {
  return {
    type: 'answer',
    afterMs: between(random, ANSWER_AFTER_MS),
    callee: { kind: 'human', lines: ['Hello, who is this?', 'Yes, that still works for me. Thanks, bye!'] },
  };
}

function scriptFor(kind: ScriptKind, random: () => number): NumberScriptInput {
  switch (kind) {
    case 'human':
      return human(random);
    case 'voicemail':
      return {
        type: 'answer',
        afterMs: between(random, ANSWER_AFTER_MS),
        callee: { kind: 'voicemail', lines: ["Hi, you've reached this number. Please leave a message after the beep."] },
      };
    case 'busy':
      return { type: 'busy' };
    case 'decline':
      return { type: 'decline', afterMs: between(random, DECLINE_AFTER_MS) };
    case 'ring_out':
      return { type: 'ring_out' };
    case 'not_found':
      return { type: 'not_found', afterMs: between(random, NOT_FOUND_AFTER_MS) };
    case 'busy_then_human':
      return { sequence: [{ type: 'busy' }, human(random)] };
  }
}

/** Fisher–Yates with the seeded generator: behaviours come mixed through the campaign, as in a real list. */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  return items;
}

/** The `count` numbers (+1415557xxxx, shuffled) and the simulator scenario that scripts them. */
export function chaosCampaign(count: number, seed: number): { numbers: ChaosNumber[]; scenario: ScenarioInput } {
  const random = seededRandom(seed);
  const kinds: ScriptKind[] = [];
  for (const kind of SCRIPT_KINDS) {
    if (kind === 'human') continue;
    for (let i = 0; i < Math.round(count * SCRIPT_SHARES[kind]); i++) kinds.push(kind);
  }
  while (kinds.length < count) kinds.push('human');
  const numbers = shuffle(kinds.slice(0, count), random).map((kind, i): ChaosNumber => ({
    phoneNumber: `+1415557${String(i).padStart(4, '0')}`,
    kind,
    expected: EXPECTED_OUTCOME[kind],
    script: scriptFor(kind, random),
  }));
  const scenario: ScenarioInput = {
    description: `chaos campaign, ${count} numbers, seed ${seed}`,
    // What current livekit/sip returns at the ringing timeout: Twirp `canceled`, no SIP status (src/sim/README.md).
    ringOut: 'timeout',
    numbers: Object.fromEntries(numbers.map((n) => [n.phoneNumber, n.script])),
  };
  return { numbers, scenario };
}
