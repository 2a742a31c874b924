import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError, errorMessage, InvalidInputError } from '../core/errors.js';
import type { CallMetadata } from '../core/queues.js';
import { SECOND } from '../core/time.js';

/** Limits that apply to every call unless the call's profile sets its own. */
export interface CallLimits {
  maxCallDurationMs: number;
  silenceTimeoutMs: number;
}

/** `tel:+E164` or `sip:user@host`; a bare `+E164` is accepted and turned into `tel:`. */
const transferTargetSchema = z
  .string()
  .trim()
  .transform((value) => (/^\+[1-9]\d{6,14}$/.test(value) ? `tel:${value}` : value))
  .pipe(
    z
      .string()
      .regex(/^(tel:\+[1-9]\d{6,14}|sips?:[^@\s]+@[^\s@]+)$/, 'transfer target must be "tel:+<E.164>" or "sip:user@host"'),
  );

export const transferModeSchema = z.enum(['cold', 'warm']);
export type TransferMode = z.infer<typeof transferModeSchema>;

/** A place the agent may transfer to. The model picks one by name; it never supplies a number itself. */
export const transferDestinationSchema = z.object({
  target: transferTargetSchema,
  /** Overrides the profile's transfer mode for this destination. */
  mode: transferModeSchema.optional(),
  /** What the destination is for, shown to the model ("billing questions and refunds"). */
  description: z.string().optional(),
});

const dtmfDigitSchema = z.string().regex(/^[0-9*#]$/, 'a DTMF menu digit is one of 0-9, * or #');

/** One line of a company-directory keypad menu: "press 1 for billing". */
export const dtmfMenuEntrySchema = z.object({
  digit: dtmfDigitSchema,
  label: z.string().min(1),
  /** Name of a transfer destination. */
  destination: z.string().min(1),
});

const positiveSeconds = z.number().positive();

/** What the caller hears when a warm transfer did not go through in time (the profile's `transfer.notConnectedMessage`). */
export const DEFAULT_TRANSFER_NOT_CONNECTED_MESSAGE = "I'm sorry, I couldn't connect you with someone right now.";

/** An agent profile: everything a campaign can say about how its calls are handled. */
export const agentProfileSchema = z
  .object({
    instructions: z.string().min(1),
    /** Voice of the realtime model or TTS; the settings' voice when absent. */
    voice: z.string().min(1).optional(),
    /** Inbound only: instructions for the greeting the agent speaks first. */
    greeting: z.string().min(1).optional(),
    /** Left on voicemail; without one the agent hangs up on machines without a message. */
    voicemailMessage: z.string().min(1).optional(),
    /** Run agents-js answering-machine detection (voice.AMD) on the callee's greeting. */
    amd: z.boolean().default(false),
    transfer: z
      .object({
        mode: transferModeSchema.default('cold'),
        announcement: z.string().min(1).default('Please hold while I transfer your call.'),
        /** Spoken when a warm transfer is given up at AGENT_WARM_TRANSFER_TIMEOUT_S, once the caller is off hold. */
        notConnectedMessage: z.string().min(1).default(DEFAULT_TRANSFER_NOT_CONNECTED_MESSAGE),
        defaultDestination: z.string().min(1).optional(),
        destinations: z.record(z.string().min(1), transferDestinationSchema).default({}),
      })
      .optional(),
    dtmfMenu: z.array(dtmfMenuEntrySchema).default([]),
    survey: z.object({ questions: z.array(z.string().min(1)).min(1) }).optional(),
    maxCallDurationS: positiveSeconds.optional(),
    silenceTimeoutS: positiveSeconds.optional(),
    /** Spoken before hanging up when the maximum call duration is reached. */
    maxDurationMessage: z.string().min(1).default("I'm sorry, we've reached the time limit for this call. Thank you, goodbye."),
    /** Spoken before hanging up after the silence timeout. */
    silenceMessage: z.string().min(1).default("I haven't heard anything for a while, so I'll end the call now. Goodbye."),
  })
  .superRefine((profile, ctx) => {
    const destinations = profile.transfer?.destinations ?? {};
    const known = Object.keys(destinations);
    if (profile.transfer?.defaultDestination && !known.includes(profile.transfer.defaultDestination)) {
      ctx.addIssue({
        code: 'custom',
        path: ['transfer', 'defaultDestination'],
        message: `unknown destination "${profile.transfer.defaultDestination}" (known: ${known.join(', ') || 'none'})`,
      });
    }
    const digits = new Set<string>();
    profile.dtmfMenu.forEach((entry, index) => {
      if (!known.includes(entry.destination)) {
        ctx.addIssue({
          code: 'custom',
          path: ['dtmfMenu', index, 'destination'],
          message: `unknown destination "${entry.destination}" (known: ${known.join(', ') || 'none'})`,
        });
      }
      if (digits.has(entry.digit)) {
        ctx.addIssue({ code: 'custom', path: ['dtmfMenu', index, 'digit'], message: `digit ${entry.digit} is used twice` });
      }
      digits.add(entry.digit);
    });
  });

export type AgentProfile = z.infer<typeof agentProfileSchema>;
export type AgentProfileInput = z.input<typeof agentProfileSchema>;
export type TransferDestination = z.infer<typeof transferDestinationSchema>;
export type DtmfMenuEntry = z.infer<typeof dtmfMenuEntrySchema>;

/** The profiles shipped with the package (`profiles/profiles.json` at the package root). */
export const DEFAULT_PROFILES_FILE = fileURLToPath(new URL('../../profiles/profiles.json', import.meta.url));

/** AGENT_PROFILES_FILE as every reader of the catalog takes it (the agent's settings, the producer, the consumer). */
export const profilesFileSetting = z.string().min(1).default(DEFAULT_PROFILES_FILE);

/** A name JavaScript objects treat specially: a profiles file may not use it. */
const RESERVED_PROFILE_NAME = '__proto__';

/** A profiles file: `{ "<name>": <profile>, … }` (zod drops a `__proto__` key: parseProfiles refuses it first). */
export const profilesFileSchema = z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'profile names use letters, digits, "_", "." and "-"'), agentProfileSchema);
/** Profiles by name. Look names up with profileNamed/hasProfile (own keys only), never by indexing. */
export type ProfileCatalog = Readonly<Record<string, AgentProfile>>;

/**
 * True when the catalog defines `name` itself: a name such as `constructor` or `__proto__` is not a profile just
 * because every JavaScript object answers to it.
 */
export function hasProfile(catalog: ProfileCatalog, name: string): boolean {
  return Object.hasOwn(catalog, name);
}

/** The profile called `name`, or undefined (own keys only, see hasProfile). */
export function profileNamed(catalog: ProfileCatalog, name: string): AgentProfile | undefined {
  return hasProfile(catalog, name) ? catalog[name] : undefined;
}

/** `unknown agent profile "x" (known: a, b)`: the one wording for a name the catalog lacks. */
export function unknownProfileMessage(catalog: ProfileCatalog, name: string): string {
  return `unknown agent profile "${name}" (known: ${Object.keys(catalog).join(', ') || 'none'})`;
}

/** Throws InvalidInputError (the caller's input: exit 2 on the command line) unless the catalog defines `name`. */
export function requireKnownProfile(catalog: ProfileCatalog, name: string): void {
  if (!hasProfile(catalog, name)) throw new InvalidInputError(unknownProfileMessage(catalog, name));
}

/** Raw (unvalidated) profile fields a dispatch may carry inline, merged over the named profile. */
export const profileOverrideSchema = z.record(z.string(), z.unknown());

function formatIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}

/** Validates a parsed profiles document; throws ConfigError naming the bad fields. */
export function parseProfiles(document: unknown, source = 'profiles'): ProfileCatalog {
  if (typeof document === 'object' && document !== null && Object.hasOwn(document, RESERVED_PROFILE_NAME)) {
    throw new ConfigError(`invalid agent profiles in ${source}: "${RESERVED_PROFILE_NAME}" is not a usable profile name`);
  }
  const parsed = profilesFileSchema.safeParse(document);
  if (!parsed.success) throw new ConfigError(`invalid agent profiles in ${source}: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

/**
 * The profile catalog as the agent reads it: AGENT_PROFILES_FILE, else the shipped profiles/profiles.json. The
 * producer (at enqueue) and the consumer (before dialing) read it through this too. Throws ConfigError.
 */
export async function loadProfileCatalog(env: NodeJS.ProcessEnv = process.env): Promise<ProfileCatalog> {
  const file = profilesFileSetting.safeParse(env.AGENT_PROFILES_FILE);
  if (!file.success) throw new ConfigError('AGENT_PROFILES_FILE is empty');
  return loadProfiles(file.data);
}

/** Reads and validates a profiles file. */
export async function loadProfiles(file: string): Promise<ProfileCatalog> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read agent profiles file ${file}: ${errorMessage(err)}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`agent profiles file ${file} is not valid JSON: ${errorMessage(err)}`);
  }
  return parseProfiles(document, file);
}

/** Longest value a `{{placeholder}}` may insert; call metadata comes from CSV files and other services. */
const MAX_PLACEHOLDER_VALUE_CHARS = 200;

/**
 * Fills `{{name}}` placeholders from the call's metadata. Values are flattened to one line and capped, since
 * they end up in the model's instructions. Unknown names become empty and are returned as `missing`.
 */
export function fillPlaceholders(template: string, values: CallMetadata): { text: string; missing: string[] } {
  const missing = new Set<string>();
  const text = template.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (_match, name: string) => {
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    if (value === undefined || value === null) {
      missing.add(name);
      return '';
    }
    return String(value).replace(/\s+/g, ' ').trim().slice(0, MAX_PLACEHOLDER_VALUE_CHARS);
  });
  return { text, missing: [...missing] };
}

/** A profile ready for one call: placeholders filled, limits resolved. */
export interface CallProfile {
  name: string;
  instructions: string;
  voice: string | undefined;
  greeting: string | undefined;
  voicemailMessage: string | undefined;
  amd: boolean;
  transfer: {
    mode: TransferMode;
    announcement: string;
    notConnectedMessage: string;
    defaultDestination: string | undefined;
    destinations: Record<string, TransferDestination>;
  };
  dtmfMenu: DtmfMenuEntry[];
  surveyQuestions: string[];
  limits: CallLimits;
  maxDurationMessage: string;
  silenceMessage: string;
  /** Placeholders that had no value in the call's metadata. */
  missingPlaceholders: string[];
}

export interface ResolveProfileInput {
  catalog: ProfileCatalog;
  /** Name from the dispatch (`agent_profile`); the default profile when absent. */
  name: string | undefined;
  defaultName: string;
  /** Inline profile fields from the dispatch, merged over the named profile. */
  override?: Record<string, unknown>;
  values: CallMetadata;
  limits: CallLimits;
}

/** Picks the call's profile (named or default, plus inline fields), validates it and fills its placeholders. */
export function resolveCallProfile(input: ResolveProfileInput): CallProfile {
  const name = input.name ?? input.defaultName;
  const base = profileNamed(input.catalog, name);
  if (!base && !input.override) throw new ConfigError(unknownProfileMessage(input.catalog, name));
  let profile: AgentProfile;
  if (input.override) {
    const merged = { ...(base ?? {}), ...input.override };
    const parsed = agentProfileSchema.safeParse(merged);
    if (!parsed.success) throw new ConfigError(`invalid inline agent profile: ${formatIssues(parsed.error)}`);
    profile = parsed.data;
  } else if (base) {
    profile = base;
  } else {
    throw new ConfigError(unknownProfileMessage(input.catalog, name));
  }

  const missing = new Set<string>();
  const fill = (template: string): string => {
    const filled = fillPlaceholders(template, input.values);
    filled.missing.forEach((m) => missing.add(m));
    return filled.text;
  };
  const fillOptional = (template: string | undefined) => (template === undefined ? undefined : fill(template));

  const transfer = profile.transfer;
  return {
    name,
    instructions: fill(profile.instructions),
    voice: profile.voice,
    greeting: fillOptional(profile.greeting),
    voicemailMessage: fillOptional(profile.voicemailMessage),
    amd: profile.amd,
    transfer: {
      mode: transfer?.mode ?? 'cold',
      announcement: fill(transfer?.announcement ?? 'Please hold while I transfer your call.'),
      notConnectedMessage: fill(transfer?.notConnectedMessage ?? DEFAULT_TRANSFER_NOT_CONNECTED_MESSAGE),
      defaultDestination: transfer?.defaultDestination ?? Object.keys(transfer?.destinations ?? {})[0],
      destinations: transfer?.destinations ?? {},
    },
    dtmfMenu: profile.dtmfMenu,
    surveyQuestions: (profile.survey?.questions ?? []).map(fill),
    limits: {
      maxCallDurationMs: profile.maxCallDurationS !== undefined ? profile.maxCallDurationS * SECOND : input.limits.maxCallDurationMs,
      silenceTimeoutMs: profile.silenceTimeoutS !== undefined ? profile.silenceTimeoutS * SECOND : input.limits.silenceTimeoutMs,
    },
    maxDurationMessage: fill(profile.maxDurationMessage),
    silenceMessage: fill(profile.silenceMessage),
    missingPlaceholders: [...missing],
  };
}
