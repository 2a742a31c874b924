/**
 * The API's JSON body parser (in place of fastify's): JSON.parse, then a refusal of keys that are never data. A body
 * holding `__proto__` (at any depth, however it is spelt: JSON escapes such as `\u005f_proto__` decode to it), or a
 * `constructor` whose value holds `prototype`, is answered with a 422 naming the key and where it is, instead of
 * fastify's "Body is not valid JSON". JSON.parse makes such keys plain own properties, so parsing pollutes nothing;
 * refusing them keeps them from reaching code that might copy them onto an object (Object.assign, spreads into
 * records), where `__proto__` would change the object's prototype.
 */
import { ApiProblem, pointerOf, type FieldError } from './problem.js';

/** Texts a body must contain to hold a reserved key (escapes included); bodies without any skip the walk. */
const MAY_HOLD_RESERVED = /__proto__|constructor|\\u/;
/** At most this many reserved keys are listed in one answer. */
const MAX_LISTED = 10;
const NEVER_ACCEPTED = 'never accepted: it is not data here, and could change how objects behave; remove it';

/** Where reserved keys sit in `value` (JSON pointers), depth-first, without recursion (bodies may nest deeply). */
function reservedKeys(value: unknown): { key: string; pointer: string }[] {
  const found: { key: string; pointer: string }[] = [];
  const stack: { value: unknown; path: string[] }[] = [{ value, path: [] }];
  while (stack.length > 0 && found.length < MAX_LISTED) {
    const next = stack.pop();
    if (!next || next.value === null || typeof next.value !== 'object') continue;
    const entries = Array.isArray(next.value) ? next.value.map((v, i): [string, unknown] => [String(i), v]) : Object.entries(next.value);
    for (const [key, child] of entries.reverse()) {
      const path = [...next.path, key];
      if (key === '__proto__') {
        found.push({ key, pointer: pointerOf(path, 'body') });
      } else if (key === 'constructor' && child !== null && typeof child === 'object' && Object.hasOwn(child, 'prototype')) {
        found.push({ key: 'prototype', pointer: pointerOf([...path, 'prototype'], 'body') });
      } else {
        stack.push({ value: child, path });
      }
    }
  }
  return found;
}

/**
 * Parses a request body as JSON: a 400 problem for an empty body or one that is not JSON, a 422 (`reserved-key`) for
 * one holding `__proto__` or `constructor.prototype`, naming each (pointer) and never parsing them into an object's
 * prototype.
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0) throw new ApiProblem('invalid-request', 'the body is empty: send a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiProblem('invalid-request', `the body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!MAY_HOLD_RESERVED.test(text)) return value;
  const reserved = reservedKeys(value);
  const first = reserved[0];
  if (!first) return value;
  const errors: FieldError[] = reserved.map((r) => ({ pointer: r.pointer, detail: `"${r.key}" is ${NEVER_ACCEPTED}` }));
  const more = reserved.length > 1 ? ` (and ${reserved.length - 1} more)` : '';
  throw new ApiProblem('reserved-key', `the body holds the key "${first.key}" at ${first.pointer}: it is ${NEVER_ACCEPTED}${more}`, { errors });
}
