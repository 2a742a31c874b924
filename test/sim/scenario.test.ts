/** Scenario files: validation with readable errors, the shipped example, and the process runner. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SipCallError, SipClient } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import {
  PhoneNetwork,
  ScenarioError,
  loadScenarioFile,
  parseScenario,
  planCall,
  type Scenario,
} from '../../src/sim/index.js';

const EXAMPLE = fileURLToPath(new URL('../../sim/scenarios.example.json', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/sim/main.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));

describe('scenario schema', () => {
  it('loads the shipped example', async () => {
    const scenario = await loadScenarioFile(EXAMPLE);
    expect(Object.keys(scenario.numbers ?? {}).length).toBeGreaterThan(10);
    const network = new PhoneNetwork(scenario);
    expect(network.nextAttempt('+15550100020').behavior).toEqual({ type: 'platform_unavailable' });
  });

  it('explains every problem with its path', () => {
    const bad = {
      numbers: {
        '+15550100001': { type: 'bussy' },
        '+15550100002': { sequence: [{ type: 'answer', afterMs: 'soon' }] },
        '+15550100003': { type: 'answer', callee: { kind: 'robot' } },
      },
      transfers: { '+1555': { result: 'accept' } },
      ringOut: 'never',
    };
    let message = '';
    try {
      parseScenario(bad, 'bad.json');
    } catch (err) {
      expect(err).toBeInstanceOf(ScenarioError);
      message = (err as Error).message;
    }
    expect(message).toContain('bad.json');
    expect(message).toContain('numbers["+15550100001"].sequence[0].type');
    expect(message).toContain('numbers["+15550100002"].sequence[0].afterMs');
    expect(message).toContain('numbers["+15550100003"].sequence[0].callee.kind');
    expect(message).toContain('must be a tel: or sip: URI');
    expect(message).toContain('ringOut');
  });

  it('rejects numbers that are not E.164', () => {
    expect(() => parseScenario({ numbers: { '5550100': { type: 'busy' } } })).toThrow(/E\.164/);
  });

  it('normalises the shorthand forms to a sequence', () => {
    const scenario: Scenario = parseScenario({
      numbers: {
        '+15550100001': { type: 'busy' },
        '+15550100002': { platformFailures: 1, behavior: { type: 'answer' } },
      },
    });
    expect(scenario.numbers?.['+15550100001']).toEqual({ sequence: [{ type: 'busy' }] });
    expect(scenario.numbers?.['+15550100002']).toEqual({ platformFailures: 1, sequence: [{ type: 'answer' }] });
  });

  it('matches a dialed number without "+" to its E.164 entry', () => {
    const network = new PhoneNetwork({ numbers: { '+15550100001': { type: 'busy' } } });
    expect(network.nextAttempt('15550100001').behavior.type).toBe('busy');
    expect(network.attempts('+15550100001')).toBe(1);
  });

  it('plans a voicemail answer with default lines filled in', () => {
    const plan = planCall(
      { type: 'answer', callee: { kind: 'voicemail' } },
      { ringingTimeoutMs: 30_000, waitUntilAnswered: true, ringOut: 'busy', trunkHasCredentials: false },
    );
    expect(plan.kind).toBe('answer');
    if (plan.kind === 'answer') expect(plan.callee.lines?.[0]).toMatch(/leave a message/);
  });
});

describe('process runner', () => {
  it('prints the URL, key and secret as one JSON line and serves the scenario', async () => {
    const child = spawn(TSX, [MAIN, EXAMPLE], {
      env: { ...process.env, LIVEKIT_SIM_PORT: '0', LIVEKIT_SIM_EVENTS: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines = createInterface({ input: child.stdout });
      const iterator = lines[Symbol.asyncIterator]();
      const first = await iterator.next();
      const ready = JSON.parse(String(first.value)) as { url: string; apiKey: string; apiSecret: string; outboundTrunkId: string };
      expect(ready).toMatchObject({ apiKey: 'devkey', apiSecret: 'secret', outboundTrunkId: 'ST_sim_outbound' });
      expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

      const sip = new SipClient(ready.url, ready.apiKey, ready.apiSecret, { failover: false });
      const err = await sip.createSipParticipant(ready.outboundTrunkId, '+15550100010', 'child-room', { waitUntilAnswered: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SipCallError);
      expect((err as SipCallError).sipStatusCode).toBe(486);

      const events: string[] = [];
      for (let line = await iterator.next(); !line.done; line = await iterator.next()) {
        const event = (JSON.parse(String(line.value)) as { event: string }).event;
        events.push(event);
        if (event === 'call_failed') break;
      }
      expect(events).toContain('call_dialing');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
