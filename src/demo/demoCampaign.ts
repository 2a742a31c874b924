import type { CallRequest } from '../producer/enqueueCalls.js';
import type { ScenarioInput } from '../sim/index.js';

/** The demo's campaign id (a timestamp is appended so reruns don't mix). */
export const DEMO_CAMPAIGN_PREFIX = 'demo';
/** Where the demo keeps its queues, so it never touches jobs under the default prefix. */
export const DEMO_QUEUE_PREFIX = 'dialer-demo';

interface DemoCall {
  label: string;
  phoneNumber: string;
  profile?: string;
  metadata?: Record<string, string>;
}

/** A small mixed campaign: every outcome the pipeline can produce, with numbers scripted in the simulated network. */
export const DEMO_CALLS: readonly DemoCall[] = [
  { label: 'answers, talks, hangs up', phoneNumber: '+14155550101', metadata: { first_name: 'Ann', company: 'Acme Dental' } },
  { label: 'voicemail', phoneNumber: '+14155550102', metadata: { first_name: 'Bob', company: 'Acme Dental' } },
  { label: 'asks for a person (transfer)', phoneNumber: '+14155550103', metadata: { first_name: 'Cara', company: 'Acme Dental' } },
  { label: 'survey', phoneNumber: '+14155550104', profile: 'survey', metadata: { first_name: 'Dan', company: 'Acme Dental' } },
  { label: 'busy, then answers on retry', phoneNumber: '+14155550105', metadata: { first_name: 'Eve', company: 'Acme Dental' } },
  { label: 'always busy', phoneNumber: '+14155550106' },
  { label: 'rings out', phoneNumber: '+14155550107' },
  { label: 'not found', phoneNumber: '+14155550108' },
  { label: 'declines', phoneNumber: '+14155550109' },
  { label: 'platform hiccup (503), then answers', phoneNumber: '+14155550110', metadata: { first_name: 'Fay', company: 'Acme Dental' } },
  // rejected at enqueue: the demo's summary line says so (`rejected not a phone number: …`)
  { label: 'not a phone number', phoneNumber: '+1 555 CALL-NOW' },
];

const humanWhoHangsUp = (name: string) => ({
  type: 'answer' as const,
  afterMs: 400,
  callee: { kind: 'human' as const, name, lines: [`Hello, this is ${name}.`, 'Yes, that still works for me. Thanks, bye!'] },
});

/** The simulated phone network behind DEMO_CALLS. */
export const DEMO_NETWORK: ScenarioInput = {
  description: 'npm run demo',
  default: humanWhoHangsUp('someone'),
  numbers: {
    '+14155550101': humanWhoHangsUp('Ann'),
    '+14155550102': {
      type: 'answer',
      afterMs: 600,
      callee: { kind: 'voicemail', lines: ["Hi, you've reached Bob. Please leave a message after the beep."] },
    },
    '+14155550103': {
      type: 'answer',
      afterMs: 300,
      callee: { kind: 'wants_human', name: 'Cara', lines: ['Hello?', 'Can I talk to a real person, please?'] },
    },
    '+14155550104': {
      type: 'answer',
      afterMs: 300,
      callee: {
        kind: 'human',
        name: 'Dan',
        lines: ['Hi, sure, I have a minute.'],
        surveyAnswers: { '1': '4', '2': 'Very likely', '3': 'Shorter waiting times.' },
      },
    },
    '+14155550105': { sequence: [{ type: 'busy' }, humanWhoHangsUp('Eve')] },
    '+14155550106': { type: 'busy' },
    '+14155550107': { type: 'ring_out' },
    '+14155550108': { type: 'not_found' },
    '+14155550109': { type: 'decline', afterMs: 500 },
    '+14155550110': { platformFailures: 1, behavior: humanWhoHangsUp('Fay') },
  },
  transfers: { 'tel:+12025550100': { result: 'accept', afterMs: 300 } },
  defaultTransfer: { result: 'accept' },
};

/** The demo's calls as producer requests. */
export function demoRequests(campaignId: string): CallRequest[] {
  return DEMO_CALLS.map((call) => ({
    phoneNumber: call.phoneNumber,
    campaignId,
    metadata: call.metadata,
    agentProfile: call.profile,
  }));
}
