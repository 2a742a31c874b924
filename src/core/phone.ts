import { isSupportedCountry, validatePhoneNumberLength, type CountryCode } from 'libphonenumber-js';
import { Metadata, parsePhoneNumberFromString as parseWithMetadata, type MetadataJson, type PhoneNumber as ParsedNumber } from 'libphonenumber-js/core';
// the metadata the default libphonenumber-js export parses with ('min')
import minMetadata from 'libphonenumber-js/min/metadata';
import { InvalidInputError } from './errors.js';

/** A number ready to dial: the E.164 line and, when the input named one, the extension to key in after the answer. */
export interface PhoneNumber {
  /** The line to call, E.164 (`+16505550100`). */
  e164: string;
  /** Digits of the extension (`136`), dialed as DTMF once the far end answers; undefined when there is none. */
  extension?: string;
}

/** Longest extension accepted: PBX extensions are short; this leaves room for long direct-dial codes. */
export const MAX_EXTENSION_DIGITS = 15;
/**
 * Pauses before an extension's digits, in CreateSIPParticipant `dtmf` units ('w' = 0.5 s, livekit-server-sdk
 * SipClient docs; livekit/sip plays the string once the call is answered): 2 s for an auto-attendant to pick up and
 * start listening, as dialers do with "wwww" before the digits.
 */
export const EXTENSION_DTMF_PAUSES = 4;

/**
 * Thrown for a number that cannot be dialed. `message` masks the digits (it may be logged or stored as a call's
 * reason); `forPerson` quotes the input as given, for the person who typed it (CLI errors, import summaries).
 */
export class PhoneNumberError extends InvalidInputError {
  readonly forPerson: string;

  constructor(
    readonly input: string,
    readonly problem: string,
  ) {
    super(`not a valid phone number: ${shownMasked(input)} (${problem})`);
    this.forPerson = `not a valid phone number: ${JSON.stringify(input)} (${problem})`;
  }
}

/**
 * Where a default region can be given, as each edge names it: the shared parsing says what is wrong with a number and
 * the edge that took the number says how its user fixes it (a flag on the command line, a JSON field in the API), so
 * no edge's messages name another edge's inputs.
 */
export const REGION_SOURCES = {
  /** The library's own callers (and jobs pushed onto `calls`): the setting. */
  settings: 'DIAL_DEFAULT_REGION',
  /** `enqueue` and `import` on the command line (the flag, the CSV column, the setting). */
  cli: '--region US, a region column, or DIAL_DEFAULT_REGION',
  /** `schedule create`: no flag or column of its own; the campaign's region (set with `campaign update`) or the setting. */
  cliSchedule: "the campaign's default region (dialer campaign update <id> --region US) or DIAL_DEFAULT_REGION",
  /** The HTTP API: the campaign's field or the server's setting. */
  api: "the campaign's default_region or DIAL_DEFAULT_REGION on the server",
} as const;

/** What to do about a number without a country code, named once so every message says the same; `sources` is the edge's. */
export function noCountryCodeHint(sources: string = REGION_SOURCES.settings): string {
  return `no country code: add +<country code> (e.g. +1 415 555 0123), or set a default region: ${sources}`;
}

/** Excel writes long numbers in a General-format cell as 1.4155550233E+10, and may drop digits doing so. */
const SCIENTIFIC_NOTATION = /^[+-]?\d+(?:[.,]\d+)?e[+-]?\d+$/i;
const EXCEL_HINT =
  'this is scientific notation, as Excel shows a long number in a General-format cell, and digits may be lost: ' +
  'format the phone column as Text (or prefix the numbers with +) and export the file again';
/** `tel:` URIs (RFC 3966) are accepted as written: `tel:+1-650-555-0100;ext=136`. */
const TEL_URI_PREFIX = /^tel:/i;
/**
 * An extension at the end: `;ext=136` (RFC 3966), `x136`, `ext. 136`, `extension 136`, `#136`, or pause commas
 * `,,136` as phones store them. The number part must end in a digit (or a closing bracket) before it.
 */
const EXTENSION_SUFFIX = new RegExp(
  `^(.*[\\d)])\\s*(?:;\\s*ext\\s*=\\s*|(?:ext(?:ension)?\\.?|x)\\s*|#\\s*|,+\\s*)(\\d{1,${MAX_EXTENSION_DIGITS}})\\s*#?\\s*$`,
  'i',
);
/** The same suffix with more digits than an extension may have: refused as too long, not as letters in the number. */
const EXTENSION_TOO_LONG = new RegExp(
  `^.*[\\d)]\\s*(?:;\\s*ext\\s*=\\s*|(?:ext(?:ension)?\\.?|x)\\s*|#\\s*|,+\\s*)(\\d{${MAX_EXTENSION_DIGITS + 1},})\\s*#?\\s*$`,
  'i',
);
/** What may stand in a number as people write it, besides digits: spaces (also no-break), + ( ) - . / */
const NUMBER_PUNCTUATION = /^[\d\s\u00a0+().\-/]+$/;
/** 00 is the international prefix in most of the world (ITU-T E.164 recommends it): `0044 20 …` is `+44 20 …`. */
const INTERNATIONAL_00 = /^\s*\(?00/;

/**
 * libphonenumber's min metadata with each calling code that several countries share (1: US, CA, JM …; 44: GB, JE …)
 * listing its main country alone. Parsing a number of a shared code, libphonenumber tries each country's number-type
 * patterns to name the country, rebuilding NANPA's regular expressions on every call: half of the CPU of parsing a +1
 * number. The dialer reads only the E.164 number and isPossible(). With the country left unnamed they come out the
 * same unless (a) the number's length is possible in some of the code's countries and not in others (1: 7 digits,
 * possible in CA only), or (b) a national prefix could be stripped (libphonenumber asks the country whether the rest
 * is possible): parseForDialing then parses again with the full metadata. test/producer/phoneFastParse.test.ts
 * compares both with libphonenumber's own answers over every calling code and region.
 */
function collapseSharedCallingCodes(metadata: MetadataJson): { fast: MetadataJson; ambiguousLengths: Map<string, Set<number>> } {
  const json = metadata as unknown as { country_calling_codes: Record<string, string[]> };
  const codes: Record<string, string[]> = {};
  const ambiguousLengths = new Map<string, Set<number>>();
  for (const [code, countries] of Object.entries(json.country_calling_codes)) {
    codes[code] = countries;
    if (countries.length < 2) continue;
    const lengths = countries.map((country) => {
      const plan = new Metadata(metadata);
      plan.selectNumberingPlan(country as CountryCode);
      return new Set<number>(plan.numberingPlan?.possibleLengths() ?? []);
    });
    const inEvery = (n: number) => lengths.every((l) => l.has(n));
    ambiguousLengths.set(code, new Set(lengths.flatMap((l) => [...l]).filter((n) => !inEvery(n))));
    codes[code] = countries.slice(0, 1);
  }
  return { fast: { ...metadata, country_calling_codes: codes } as unknown as MetadataJson, ambiguousLengths };
}

const collapsed = collapseSharedCallingCodes(minMetadata);

/** The numbering plan method libphonenumber-js strips a national prefix with (es6/metadata.js; not in its types). */
interface PlanWithPrefix {
  nationalPrefixForParsing(): string | undefined;
}
/** Per region or calling code: the start of a national number libphonenumber would try to strip as a national prefix. */
const nationalPrefixes = new Map<string, RegExp | null>();

function nationalPrefixPattern(regionOrCallingCode: string): RegExp | null {
  let pattern = nationalPrefixes.get(regionOrCallingCode);
  if (pattern === undefined) {
    const plan = new Metadata(minMetadata);
    plan.selectNumberingPlan(regionOrCallingCode as CountryCode); // a calling code selects its main country's plan
    const prefix = (plan.numberingPlan as unknown as PlanWithPrefix | undefined)?.nationalPrefixForParsing();
    // the pattern libphonenumber builds (extractNationalNumberFromPossiblyIncompleteNumber.js)
    pattern = prefix ? new RegExp(`^(?:${prefix})`) : null;
    nationalPrefixes.set(regionOrCallingCode, pattern);
  }
  return pattern;
}

/**
 * libphonenumber-js's parsePhoneNumberFromString(text, region), with the same E.164 number and isPossible() answer,
 * without naming the country of a shared calling code when that cannot change them (see collapseSharedCallingCodes).
 * Undefined when it cannot parse.
 */
export function parseForDialing(text: string, region: CountryCode | undefined): ParsedNumber | undefined {
  // the arguments the default export passes: (text, region, metadata), or (text, metadata) without a region
  const parse = (metadata: MetadataJson) => (region === undefined ? parseWithMetadata(text, metadata) : parseWithMetadata(text, region, metadata));
  const fast = parse(collapsed.fast);
  if (!fast) return parse(minMetadata);
  const code = fast.countryCallingCode;
  const ambiguous = collapsed.ambiguousLengths.get(code);
  if (ambiguous === undefined) return fast; // a code of one country: the metadata is the same
  // the national digits as written: after the calling code of an international number, else all of them; when
  // libphonenumber changed them (a prefix stripped, an international call prefix read) the full parse decides
  const digits = text.replace(/\D/g, '');
  const international = /^\s*\+/.test(text);
  const written = international ? digits.slice(code.length) : digits;
  const plan = international ? code : (region ?? code);
  if (fast.nationalNumber !== written || ambiguous.has(written.length) || nationalPrefixPattern(plan)?.test(written)) return parse(minMetadata);
  return fast;
}

/** libphonenumber's bounds (constants.js): a national significant number of 2 to 17 digits, a calling code of 1 to 3. */
const MIN_NATIONAL_DIGITS = 2;
const MAX_NATIONAL_DIGITS = 17;
const MAX_CALLING_CODE_DIGITS = 3;
/** A number written as E.164 with nothing else: `+` and digits, no space, extension or scheme. */
const PLAIN_E164 = /^\+[1-9]\d+$/;
/** The country code libphonenumber names non-geographic calling codes (800, 870 …) by. */
const NON_GEOGRAPHIC = '001';

/** Per calling code of one country (or a shared one, see collapseSharedCallingCodes): the national lengths possible. */
const possibleLengthsByCode = new Map<string, ReadonlySet<number> | null>();
function possibleLengths(code: string): ReadonlySet<number> | null {
  let lengths = possibleLengthsByCode.get(code);
  if (lengths === undefined) {
    const plan = new Metadata(collapsed.fast);
    plan.selectNumberingPlan(code as CountryCode);
    const list = plan.numberingPlan?.possibleLengths();
    lengths = list ? new Set(list) : null;
    possibleLengthsByCode.set(code, lengths);
  }
  return lengths;
}

const fastCallingCodes = (collapsed.fast as unknown as { country_calling_codes: Record<string, string[]> }).country_calling_codes;

/**
 * The E.164 number parsePhoneNumber gives for `text` when `text` is plain E.164 (`+14155550100`) and certainly possible,
 * read without libphonenumber's general parser (most of the CPU of enqueueing such a number); undefined whenever
 * libphonenumber might read it otherwise, which parsePhoneNumber then asks. It follows libphonenumber-js's steps for a
 * `+` number (parse.js, extractCountryCallingCode.js, extractNationalNumber.js, checkNumberLength.js): the calling code
 * is the shortest prefix of 1 to 3 digits that is one; the rest is the national number unless the plan's national
 * prefix pattern matches its start (then the general parser decides); it is possible when its length is one of the
 * plan's possible lengths. Shared calling codes take the collapsed metadata's rules (lengths possible in only some of
 * the code's countries go to the general parser), non-geographic codes always do. test/producer/phoneFastParse.test.ts
 * compares this with libphonenumber on every calling code and length.
 */
export function plainE164ForDialing(text: string): string | undefined {
  if (!PLAIN_E164.test(text)) return undefined;
  for (let end = 2; end <= MAX_CALLING_CODE_DIGITS + 1 && end < text.length; end++) {
    const code = text.slice(1, end);
    const countries = fastCallingCodes[code];
    if (countries === undefined) continue;
    const national = text.slice(end);
    if (national.length < MIN_NATIONAL_DIGITS || national.length > MAX_NATIONAL_DIGITS) return undefined;
    if (countries[0] === NON_GEOGRAPHIC || collapsed.ambiguousLengths.get(code)?.has(national.length)) return undefined;
    if (nationalPrefixPattern(code)?.test(national)) return undefined;
    const lengths = possibleLengths(code);
    return lengths === null || lengths.has(national.length) ? text : undefined;
  }
  return undefined;
}

/**
 * Parses a number as people write it: E.164 or international (`+1 (415) 555-0123`, `0044 20 7946 0958`, `tel:` URIs),
 * or national when a `region` (ISO 3166-1 alpha-2 country, e.g. `US`, `GB`) says which country (`(415) 555-0125`,
 * `020 7946 0958`), with an optional extension (`x136`, `ext. 136`, `;ext=136`, `#136`). Number ranges a country has
 * not assigned (fictional 555 numbers, ranges newer than libphonenumber's metadata) are left to the carrier, whose
 * 404/484 ends the call as `invalid_number`. Throws PhoneNumberError naming what is wrong and what to do; a number
 * without a country code names where a default region is given as `regionSources` says (the edge's names, one of
 * REGION_SOURCES; the setting by default).
 */
export function parsePhoneNumber(raw: string, region?: CountryCode, regionSources?: string): PhoneNumber {
  // a `+` number reads the same in any region; plain E.164 has no extension, scheme or mark for the steps below
  const plain = plainE164ForDialing(raw);
  if (plain !== undefined) return { e164: plain };
  const trimmed = raw.trim().replace(/^'/, ''); // a leading ' is a spreadsheet's "keep as text" mark
  if (trimmed === '') throw new PhoneNumberError(raw, 'it is empty');
  if (SCIENTIFIC_NOTATION.test(trimmed)) throw new PhoneNumberError(raw, EXCEL_HINT);
  const withoutScheme = trimmed.replace(TEL_URI_PREFIX, '');
  const ext = EXTENSION_SUFFIX.exec(withoutScheme);
  const longExtension = ext ? undefined : EXTENSION_TOO_LONG.exec(withoutScheme)?.[1];
  if (longExtension !== undefined) {
    throw new PhoneNumberError(raw, `the extension is too long: ${longExtension.length} digits, at most ${MAX_EXTENSION_DIGITS}`);
  }
  const main = (ext?.[1] ?? withoutScheme).trim();
  const extension = ext?.[2];
  if (!/\d/.test(main)) throw new PhoneNumberError(raw, 'it has no digits');
  if (!NUMBER_PUNCTUATION.test(main)) {
    const problem = /\p{L}/u.test(main)
      ? 'it has letters: write the number in digits (vanity numbers such as 1-800-FLOWERS too); an extension goes last, as x136'
      : `unexpected character ${JSON.stringify(main.replace(/[\d\s\u00a0+().\-/]/g, '').charAt(0))}`;
    throw new PhoneNumberError(raw, problem);
  }
  let parsed = parseForDialing(main, region);
  if ((!parsed || !parsed.isPossible()) && INTERNATIONAL_00.test(main)) {
    parsed = parseForDialing(main.replace(INTERNATIONAL_00, '+'), undefined);
  }
  if (!parsed || !parsed.isPossible()) throw new PhoneNumberError(raw, whyNotPossible(main, region, regionSources));
  return extension === undefined ? { e164: parsed.number } : { e164: parsed.number, extension };
}

function whyNotPossible(main: string, region: CountryCode | undefined, regionSources: string | undefined): string {
  const international = main.startsWith('+') || INTERNATIONAL_00.test(main);
  if (!international && region === undefined) return noCountryCodeHint(regionSources);
  const reason = validatePhoneNumberLength(main, region);
  const where = international ? 'for its country code' : `for a national number of ${region}`;
  switch (reason) {
    case 'TOO_SHORT':
      return `too short ${where}`;
    case 'TOO_LONG':
      return `too long ${where}`;
    case 'INVALID_COUNTRY':
      return international ? 'unknown country code' : noCountryCodeHint(regionSources);
    default:
      return `not a possible number ${where}`;
  }
}

/**
 * Normalises a number to E.164 for inputs that take no extension (the do-not-call list); throws PhoneNumberError for a
 * bad number or one that carries an extension.
 */
export function normalizePhoneNumber(raw: string, defaultCountry?: CountryCode, regionSources?: string): string {
  const parsed = parsePhoneNumber(raw, defaultCountry, regionSources);
  if (parsed.extension !== undefined) throw new PhoneNumberError(raw, 'an extension is not taken here: give the main number');
  return parsed.e164;
}

/**
 * The line and extension of a job another service pushed straight onto `calls`: its number as people write it, split
 * by parsePhoneNumber's one rule (`;ext=136`, `x136`, `#136` … as enqueue and import read them), and its optional
 * `extension` field (digits). An extension in both must be the same; either alone is the call's extension. Throws
 * PhoneNumberError for a bad number or two different extensions. The field's own form is checked by callJobSchema.
 * `region` (DIAL_DEFAULT_REGION) reads a number written without a country code, as enqueue does.
 */
export function parsePushedNumber(raw: string, extensionField?: string, region?: CountryCode): PhoneNumber {
  const number = parsePhoneNumber(raw, region);
  if (extensionField === undefined) return number;
  if (number.extension !== undefined && number.extension !== extensionField) {
    throw new PhoneNumberError(raw, `its extension ${number.extension} is not the job's extension field ${extensionField}: give one of them`);
  }
  return { e164: number.e164, extension: extensionField };
}

/**
 * The number as a call record keeps it: E.164, plus `;ext=` and the digits (RFC 3966's parameter) when there is an
 * extension, so two extensions of one line stay two calls and the export shows what is dialed.
 */
export function formatPhoneNumber(number: PhoneNumber): string {
  return number.extension === undefined ? number.e164 : `${number.e164};ext=${number.extension}`;
}

/** Splits a record's number (formatPhoneNumber's form) back into line and extension. */
export function splitPhoneNumber(stored: string): PhoneNumber {
  const at = stored.indexOf(';ext=');
  return at === -1 ? { e164: stored } : { e164: stored.slice(0, at), extension: stored.slice(at + ';ext='.length) };
}

/** CreateSIPParticipant's `dtmf` for an extension: a short pause for the far end to answer, then the digits. */
export function extensionDtmf(extension: string): string {
  return `${'w'.repeat(EXTENSION_DTMF_PAUSES)}${extension}`;
}

/** Names people use for a country that are not its ISO 3166-1 code. */
const REGION_ALIASES: Record<string, string> = { UK: 'GB' };

/**
 * A default region (ISO 3166-1 alpha-2, case-insensitive, `UK` taken as `GB`) for national numbers; throws
 * InvalidInputError naming `what` (the flag, column or setting) when libphonenumber does not know it.
 */
export function parseRegion(text: string, what = 'region'): CountryCode {
  const upper = text.trim().toUpperCase();
  const code = REGION_ALIASES[upper] ?? upper;
  if (!isSupportedCountry(code)) {
    throw new InvalidInputError(`${what}: "${text}" is not a country code; use two letters such as US, GB, DE, FR`);
  }
  return code;
}

/** True for a region parseRegion accepts. */
export function isRegion(text: string): boolean {
  const upper = text.trim().toUpperCase();
  return isSupportedCountry(REGION_ALIASES[upper] ?? upper);
}

const VISIBLE_TAIL_DIGITS = 4;

function shownMasked(input: string): string {
  return /\d/.test(input) ? `"${redactPhoneNumber(input)}"` : '(no digits)';
}

/** Keeps only the last digits of a number, for logs and stored reasons (full numbers never reach logs). */
export function redactPhoneNumber(number: string): string {
  const digits = number.replace(/\D/g, '');
  if (digits.length <= VISIBLE_TAIL_DIGITS) return '*'.repeat(digits.length);
  return `${'*'.repeat(Math.min(digits.length - VISIBLE_TAIL_DIGITS, 8))}${digits.slice(-VISIBLE_TAIL_DIGITS)}`;
}
