import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import { InvalidInputError } from './errors.js';

/**
 * Normalises a dialable number to E.164, throwing InvalidInputError when it cannot be one (unknown country code,
 * wrong length, letters). Number ranges a country has not assigned (fictional 555 numbers, new ranges the metadata
 * does not know yet) are left to the carrier, whose 404/484 ends the call as `invalid_number`.
 */
export function normalizePhoneNumber(raw: string, defaultCountry?: CountryCode): string {
  const trimmed = raw.trim();
  const parsed = /[a-z]/i.test(trimmed) ? undefined : parsePhoneNumberFromString(trimmed, defaultCountry);
  if (!parsed || !parsed.isPossible()) {
    const shown = /\d/.test(trimmed) ? `"${redactPhoneNumber(trimmed)}"` : '(it has no digits)';
    throw new InvalidInputError(`not a valid phone number in E.164 form: ${shown}`);
  }
  return parsed.number;
}

const VISIBLE_TAIL_DIGITS = 4;

/** Keeps only the last digits of a number, for logs and error messages (full numbers never reach logs). */
export function redactPhoneNumber(number: string): string {
  const digits = number.replace(/\D/g, '');
  if (digits.length <= VISIBLE_TAIL_DIGITS) return '*'.repeat(digits.length);
  return `${'*'.repeat(Math.min(digits.length - VISIBLE_TAIL_DIGITS, 8))}${digits.slice(-VISIBLE_TAIL_DIGITS)}`;
}
