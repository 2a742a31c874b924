/**
 * Keys that are never data: `__proto__` (at any depth; JSON.parse decodes escapes such as `\u005f_proto__` to it) and
 * a `constructor` whose value holds `prototype`. JSON.parse makes them plain own properties, so parsing pollutes
 * nothing; refusing them keeps them from code that copies them onto an object (Object.assign, spreads), where
 * `__proto__` changes the object's prototype and the data is silently lost. The API's body parser
 * (src/api/jsonBody.ts) and the command line's JSON flags (`--metadata`, `--settings`) refuse them alike.
 */

/** Why such a key is refused, in every message that names one. */
export const RESERVED_KEY_REASON = 'never accepted: it is not data here, and could change how objects behave; remove it';
/** Texts JSON must contain to hold a reserved key (escapes included); texts without any skip the walk. */
const MAY_HOLD_RESERVED = /__proto__|constructor|\\u/;
/** At most this many reserved keys are reported. */
const MAX_LISTED = 10;

/** A reserved key and the path of keys (array indexes as strings) that leads to it. */
export interface ReservedKey {
  key: '__proto__' | 'prototype';
  path: string[];
}

/**
 * Where reserved keys sit in `value` parsed from `text` (JSON), depth-first, without recursion (values may nest
 * deeply); at most MAX_LISTED. Empty when `text` cannot hold one.
 */
export function reservedKeysIn(text: string, value: unknown): ReservedKey[] {
  if (!MAY_HOLD_RESERVED.test(text)) return [];
  const found: ReservedKey[] = [];
  const stack: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  while (stack.length > 0 && found.length < MAX_LISTED) {
    const next = stack.pop();
    if (!next || next.value === null || typeof next.value !== 'object') continue;
    const entries = Array.isArray(next.value) ? next.value.map((v, i): [string, unknown] => [String(i), v]) : Object.entries(next.value);
    for (const [key, child] of entries.reverse()) {
      const path = [...next.path, key];
      if (key === '__proto__') {
        found.push({ key, path });
      } else if (key === 'constructor' && child !== null && typeof child === 'object' && Object.hasOwn(child, 'prototype')) {
        found.push({ key: 'prototype', path: [...path, 'prototype'] });
      } else {
        stack.push({ value: child, path });
      }
    }
  }
  return found;
}
