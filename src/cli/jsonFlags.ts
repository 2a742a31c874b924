import { InvalidInputError } from '../core/errors.js';
import { RESERVED_KEY_REASON, reservedKeysIn } from '../core/reservedKeys.js';

/**
 * Refuses a JSON flag's value (`--metadata`, `--settings`) holding `__proto__` or `constructor.prototype`, as the API
 * refuses such a body (422 there, exit 2 here), naming the key and where it is, instead of letting it be dropped on
 * the way into the call or campaign. `value` is `text` parsed.
 */
export function refuseReservedKeys(flag: string, text: string, value: unknown): void {
  const [first, ...more] = reservedKeysIn(text, value);
  if (!first) return;
  const also = more.length > 0 ? ` (and ${more.length} more)` : '';
  throw new InvalidInputError(`${flag}: the key "${first.key}" at ${first.path.join('.')} is ${RESERVED_KEY_REASON}${also}`);
}
