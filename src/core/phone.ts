import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import { InvalidInputError } from './errors.js';

/** Normalises a dialable number to E.164, throwing InvalidInputError when it is not a valid number. */
export function normalizePhoneNumber(raw: string, defaultCountry?: CountryCode): string {
  const trimmed = raw.trim();
  const parsed = parsePhoneNumberFromString(trimmed, defaultCountry);
  if (!parsed || !parsed.isValid()) {
    throw new InvalidInputError(`not a valid phone number in E.164 form: "${redactPhoneNumber(trimmed)}"`);
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
