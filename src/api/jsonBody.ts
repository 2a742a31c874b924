/**
 * The API's JSON body parser (in place of fastify's): JSON.parse, then a refusal of keys that are never data. A body
 * holding `__proto__` (at any depth, however it is spelt: JSON escapes such as `\u005f_proto__` decode to it), or a
 * `constructor` whose value holds `prototype`, is answered with a 422 naming the key and where it is, instead of
 * fastify's "Body is not valid JSON". JSON.parse makes such keys plain own properties, so parsing pollutes nothing;
 * refusing them keeps them from reaching code that might copy them onto an object (Object.assign, spreads into
 * records), where `__proto__` would change the object's prototype.
 */
import { RESERVED_KEY_REASON, reservedKeysIn } from '../core/reservedKeys.js';
import { ApiProblem, pointerOf, type FieldError } from './problem.js';

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
  const reserved = reservedKeysIn(text, value).map((r) => ({ key: r.key, pointer: pointerOf(r.path, 'body') }));
  const first = reserved[0];
  if (!first) return value;
  const errors: FieldError[] = reserved.map((r) => ({ pointer: r.pointer, detail: `"${r.key}" is ${RESERVED_KEY_REASON}` }));
  const more = reserved.length > 1 ? ` (and ${reserved.length - 1} more)` : '';
  throw new ApiProblem('reserved-key', `the body holds the key "${first.key}" at ${first.pointer}: it is ${RESERVED_KEY_REASON}${more}`, { errors });
}
