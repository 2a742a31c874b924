/** Agent settings, profiles with {{placeholders}}, dispatch metadata and the instructions/tools a call gets. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PROFILES_FILE, loadAgentSettings, requireOpenAIKey } from '../../src/agent/agentConfig.js';
import { callInstructions, callTools, TOOL_NAMES } from '../../src/agent/callAgent.js';
import { CallServerApi } from '../../src/agent/callServerApi.js';
import { CallController } from '../../src/agent/callController.js';
import { DispatchMetadataError, idFromRoomName, inboundCallId, parseCallPlan, redactNumbersIn } from '../../src/agent/callPlan.js';
import { CallOutcomeTracker } from '../../src/agent/outcomeTracker.js';
import {
  fillPlaceholders,
  hasProfile,
  loadProfileCatalog,
  loadProfiles,
  parseProfiles,
  resolveCallProfile,
} from '../../src/agent/profiles.js';
import { ConfigError } from '../../src/core/errors.js';
import { SECOND } from '../../src/core/time.js';

const logger = pino({ level: 'silent' });
const limits = { maxCallDurationMs: 600 * SECOND, silenceTimeoutMs: 20 * SECOND };

describe('agent settings', () => {
  it('has defaults for everything but the API key', () => {
    const settings = loadAgentSettings({});
    expect(settings.models).toMatchObject({ mode: 'realtime', realtimeModel: 'gpt-realtime', llmModel: 'gpt-4.1-mini', baseURL: undefined });
    expect(settings.limits).toEqual(limits);
    expect(settings.profilesFile).toBe(DEFAULT_PROFILES_FILE);
    expect(() => requireOpenAIKey(settings.models)).toThrow(/OPENAI_API_KEY is not set/);
  });

  it('reads OPENAI_BASE_URL, the model mode and limits, and names every bad variable', () => {
    const settings = loadAgentSettings({
      OPENAI_API_KEY: 'k',
      OPENAI_BASE_URL: 'http://127.0.0.1:9999/v1',
      AGENT_MODEL_MODE: 'pipeline',
      AGENT_SILENCE_TIMEOUT_S: '5',
      AGENT_MAX_CALL_DURATION_S: '',
    });
    expect(settings.models).toMatchObject({ mode: 'pipeline', baseURL: 'http://127.0.0.1:9999/v1', apiKey: 'k' });
    expect(settings.limits).toEqual({ maxCallDurationMs: 600 * SECOND, silenceTimeoutMs: 5 * SECOND });
    expect(() => loadAgentSettings({ AGENT_MODEL_MODE: 'duplex', AGENT_SILENCE_TIMEOUT_S: 'soon' })).toThrow(
      /AGENT_MODEL_MODE[\s\S]*AGENT_SILENCE_TIMEOUT_S/,
    );
  });
});

describe('profiles', () => {
  it('the shipped profiles file is valid', async () => {
    const catalog = await loadProfiles(DEFAULT_PROFILES_FILE);
    expect(Object.keys(catalog)).toEqual(expect.arrayContaining(['default', 'survey', 'support-line', 'warm-handoff']));
    expect(catalog['support-line']?.dtmfMenu.map((e) => e.digit)).toEqual(['1', '2', '3']);
  });

  it('fills {{placeholders}} from call metadata, flattening and capping values, and reports missing ones', () => {
    expect(fillPlaceholders('Hi {{ first_name }}, {{company}}{{missing}}!', { first_name: 'Ada\nLovelace', company: 'Acme' })).toEqual({
      text: 'Hi Ada Lovelace, Acme!',
      missing: ['missing'],
    });
    expect(fillPlaceholders('{{x}}', { x: 'y'.repeat(500) }).text).toHaveLength(200);
  });

  it('validates transfer targets, menu destinations and duplicate digits', () => {
    expect(() =>
      parseProfiles({
        bad: {
          instructions: 'x',
          transfer: { destinations: { desk: { target: '555-0100' } } },
          dtmfMenu: [
            { digit: '1', label: 'a', destination: 'nowhere' },
            { digit: '1', label: 'b', destination: 'desk' },
          ],
        },
      }),
    ).toThrow(ConfigError);
    const ok = parseProfiles({ p: { instructions: 'x', transfer: { destinations: { desk: { target: '+12025550100' } } } } });
    expect(ok.p?.transfer?.destinations.desk?.target).toBe('tel:+12025550100');
  });

  it('resolves the named profile, an inline override, and the per-profile limits', () => {
    const catalog = parseProfiles({ base: { instructions: 'Call {{first_name}}.', silenceTimeoutS: 7 } });
    const named = resolveCallProfile({ catalog, name: 'base', defaultName: 'base', values: { first_name: 'Ada' }, limits });
    expect(named).toMatchObject({ instructions: 'Call Ada.', limits: { silenceTimeoutMs: 7 * SECOND, maxCallDurationMs: 600 * SECOND } });
    const inline = resolveCallProfile({
      catalog,
      name: 'base',
      defaultName: 'base',
      override: { voicemailMessage: 'Bye {{first_name}}' },
      values: { first_name: 'Ada' },
      limits,
    });
    expect(inline.voicemailMessage).toBe('Bye Ada');
    expect(() => resolveCallProfile({ catalog, name: 'nope', defaultName: 'base', values: {}, limits })).toThrow(/unknown agent profile "nope"/);
    expect(() => resolveCallProfile({ catalog, name: 'base', defaultName: 'base', override: { amd: 'yes' }, values: {}, limits })).toThrow(
      /invalid inline agent profile/,
    );
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    'a profile named %s is an unknown profile (own keys only), not a crash',
    (name) => {
      const catalog = parseProfiles({ base: { instructions: 'Hi.' } });
      expect(hasProfile(catalog, name)).toBe(false);
      const resolve = () => resolveCallProfile({ catalog, name, defaultName: 'base', values: {}, limits });
      expect(resolve).toThrow(ConfigError);
      expect(resolve).toThrow(`unknown agent profile "${name}" (known: base)`);
    },
  );

  it('a profiles file may define "constructor" (found as its own), but not "__proto__"', () => {
    const catalog = parseProfiles({ constructor: { instructions: 'Built.' } });
    expect(hasProfile(catalog, 'constructor')).toBe(true);
    expect(resolveCallProfile({ catalog, name: 'constructor', defaultName: 'x', values: {}, limits }).instructions).toBe('Built.');
    expect(() => parseProfiles(JSON.parse('{"__proto__": {"instructions": "Hi."}}'))).toThrow(/"__proto__" is not a usable profile name/);
  });

  it('{{constructor}} is a missing placeholder, not a function from the prototype', () => {
    expect(fillPlaceholders('Hi {{constructor}}{{toString}}.', { first_name: 'Ada' })).toEqual({ text: 'Hi .', missing: ['constructor', 'toString'] });
  });

  it('the catalog is read as the agent reads it: AGENT_PROFILES_FILE, else the shipped file', async () => {
    expect(Object.keys(await loadProfileCatalog({}))).toEqual(Object.keys(await loadProfiles(DEFAULT_PROFILES_FILE)));
    await expect(loadProfileCatalog({ AGENT_PROFILES_FILE: '/nonexistent/profiles.json' })).rejects.toThrow(/cannot read agent profiles file/);
  });
});

describe('dispatch metadata → call plan', () => {
  it('the consumer flag means: wait for that SIP participant', () => {
    const plan = parseCallPlan(
      JSON.stringify({
        phone_number: '+12025550123',
        call_id: 'c-1',
        campaign_id: 'spring',
        attempt: 2,
        dialed_by: 'consumer',
        sip_participant_identity: 'sip-c-1',
        agent_profile: 'survey',
        metadata: { first_name: 'Ada' },
      }),
      'call-c-1-2',
    );
    expect(plan).toMatchObject({
      direction: { kind: 'consumer_dialed', participantIdentity: 'sip-c-1', phoneNumber: '+12025550123' },
      callId: 'c-1',
      campaignId: 'spring',
      attempt: 2,
      profileName: 'survey',
      values: { first_name: 'Ada', campaign_id: 'spring' },
    });
  });

  it('only phone_number (lk dispatch create) means: dial it yourself, reported under an id from the room name', () => {
    const plan = parseCallPlan('{"phone_number": "+12025550123"}', 'outbound:room/1');
    expect(plan).toMatchObject({ direction: { kind: 'self_dial', participantIdentity: 'sip-outbound-room-1' }, callId: 'outbound-room-1', campaignId: 'default' });
    expect(idFromRoomName('a:b')).toBe('a-b');
  });

  it('no phone number is an inbound call; an inline profile object is accepted', () => {
    expect(parseCallPlan('', 'call-_+1202_abc').direction).toEqual({ kind: 'inbound' });
    const plan = parseCallPlan(JSON.stringify({ agent_profile: { instructions: 'Be brief.' } }), 'r');
    expect(plan.profileOverride).toEqual({ instructions: 'Be brief.' });
  });

  it("an inbound call is reported under in-<16 hex of the room's SHA-256>: stable per room, without the caller's number; campaign inbound", async () => {
    const room = 'call-_+12025550123_aBc9';
    const plan = parseCallPlan('', room);
    const hash = createHash('sha256').update(room).digest('hex').slice(0, 16);
    expect(plan).toMatchObject({ direction: { kind: 'inbound' }, callId: `in-${hash}`, campaignId: 'inbound' });
    expect(plan.callId).not.toMatch(/5550123/);
    expect(plan.values.campaign_id).toBe('inbound');
    expect(parseCallPlan('', room).callId).toBe(plan.callId);
    expect(inboundCallId('call-_+12025550123_aBc8')).not.toBe(plan.callId);
    expect(inboundCallId('x'.repeat(300))).toMatch(/^in-[0-9a-f]{16}$/);

    // The shipped dispatch rule's agent metadata is an inbound dispatch with its profile.
    const rule = JSON.parse(await readFile(new URL('../../dispatch-rule.json', import.meta.url), 'utf8')) as {
      dispatch_rule: { roomConfig: { agents: { metadata: string }[] } };
    };
    const ruleMetadata = rule.dispatch_rule.roomConfig.agents[0]?.metadata ?? '';
    expect(parseCallPlan(ruleMetadata, room)).toMatchObject({ direction: { kind: 'inbound' }, profileName: 'support-line', campaignId: 'inbound' });
  });

  it("an inbound call's campaign: dispatch metadata, else the room's metadata, else inbound", () => {
    const room = 'call-_+12025550123_x';
    const roomMeta = JSON.stringify({ campaign_id: 'hotline' });
    expect(parseCallPlan('', room, roomMeta).campaignId).toBe('hotline');
    expect(parseCallPlan(JSON.stringify({ campaign_id: 'spring' }), room, roomMeta).campaignId).toBe('spring');
    expect(parseCallPlan('', room, 'not json').campaignId).toBe('inbound');
    expect(parseCallPlan('', room, JSON.stringify({ campaign_id: 'bad:id' })).campaignId).toBe('inbound');
    // An explicit call id in the dispatch metadata is kept.
    expect(parseCallPlan(JSON.stringify({ call_id: 'crm-42' }), room).callId).toBe('crm-42');
    // Room metadata does not change outbound calls.
    expect(parseCallPlan('{"phone_number": "+12025550123"}', 'adhoc', roomMeta).campaignId).toBe('default');
  });

  it('logs see inbound room names and call ids with the caller number redacted', () => {
    expect(redactNumbersIn('call-_+12025550123_aBc9')).toBe('call-_*******0123_aBc9');
    expect(redactNumbersIn('in-call-_-12025550123_aBc9')).toBe('in-call-_-*******0123_aBc9');
    expect(redactNumbersIn('call-c-1-2')).toBe('call-c-1-2');
  });

  it('bad metadata is an error that still carries the call id when it can', () => {
    expect(() => parseCallPlan('{not json', 'r')).toThrow(DispatchMetadataError);
    let caught: unknown;
    try {
      parseCallPlan(JSON.stringify({ call_id: 'c-9', attempt: 'one' }), 'r');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DispatchMetadataError);
    expect((caught as DispatchMetadataError).callId).toBe('c-9');
    expect(() => parseCallPlan(JSON.stringify({ phone_number: '+1202', dialed_by: 'consumer' }), 'r')).toThrow(/needs call_id/);
  });
});

describe('instructions and tools of a call', () => {
  function controllerFor(name: string, outbound: boolean, sendDtmf = true) {
    return readFile(DEFAULT_PROFILES_FILE, 'utf8').then((text) => {
      const catalog = parseProfiles(JSON.parse(text));
      const profile = resolveCallProfile({ catalog, name, defaultName: 'default', values: { company: 'Acme' }, limits });
      return new CallController({
        profile,
        tracker: new CallOutcomeTracker({ callId: 'x', campaignId: 'c', sink: undefined, logger }),
        serverApi: new CallServerApi({
          clients: { sip: {} as never, rooms: {} as never },
          roomName: 'r',
          logger,
        }),
        behaviour: { transferConfirmTimeoutMs: 1000, transferRingingTimeoutS: 5, voicemailPauseMs: 0 },
        outbound,
        sendDtmf: sendDtmf ? async () => 'sent' : undefined,
        logger,
      });
    });
  }

  const names = (entries: ReturnType<typeof callTools>) =>
    entries.flatMap((entry) => ('tools' in entry ? entry.tools.map((t) => ('name' in t ? t.name : '')) : 'name' in entry ? [entry.name] : []));

  it('an outbound survey call gets voicemail, end_call, DTMF and record_answer, and the questions in its instructions', async () => {
    const controller = await controllerFor('survey', true);
    expect(names(callTools(controller))).toEqual([TOOL_NAMES.voicemail, TOOL_NAMES.endCall, TOOL_NAMES.sendDtmf, TOOL_NAMES.recordAnswer]);
    const text = callInstructions(controller.profile, true);
    expect(text).toContain('1. How satisfied are you with our service, from 1 to 5?');
    expect(text).toContain('Sam, a polite survey caller for Acme');
  });

  it('an inbound line gets end_call and transfer_call with its menu, and no voicemail tool', async () => {
    const controller = await controllerFor('support-line', false);
    expect(names(callTools(controller))).toEqual([TOOL_NAMES.endCall, TOOL_NAMES.transfer]);
    expect(callInstructions(controller.profile, false)).toContain('press 1 for billing, press 2 for technical support, press 3 for sales');
  });

  it("in a LiveKit room DTMF goes through agents-js' own send_dtmf_events tool", async () => {
    const controller = await controllerFor('default', true, false);
    expect(names(callTools(controller))).toContain(TOOL_NAMES.sendDtmf);
  });
});
