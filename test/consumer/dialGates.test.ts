/** The gates a dial job passes before it may ring (src/consumer/dialGates.ts), with the store's answers stubbed. */
import { describe, expect, it } from 'vitest';
import { checkDialGates, type DialGateDeps } from '../../src/consumer/dialGates.js';
import type { CallJob } from '../../src/core/queues.js';
import { HOUR, clockReading } from '../../src/core/time.js';
import { CANCEL_REASON } from '../../src/producer/cancelCalls.js';

const NOW = Date.parse('2026-12-02T10:00:00.000Z');

function deps(answers: { cancelRequested?: boolean } = {}): DialGateDeps {
  return {
    store: {
      isDoNotCall: () => Promise.resolve(false),
      isPaused: () => Promise.resolve(false),
      isCancelRequested: () => Promise.resolve(answers.cancelRequested ?? false),
    },
    clock: clockReading(() => NOW),
    defaultWindow: undefined,
    predialCheck: undefined,
  };
}

const call = (fields: Partial<CallJob> = {}): CallJob => ({
  callId: 'gate-1',
  campaignId: 'gates',
  phoneNumber: '+14155550100',
  metadata: {},
  enqueuedAt: NOW - HOUR,
  ...fields,
});

describe('dial gates', () => {
  it('ends a call whose expiry passed before its first attempt, saying so', async () => {
    const decision = await checkDialGates(call({ expiresAt: NOW - 1 }), 1, deps());
    expect(decision).toMatchObject({ kind: 'end', outcome: 'expired', reason: 'it expired at 2026-12-02T09:59:59.999Z, before it could be dialed' });
  });

  it('names the attempt it could not dial when earlier attempts were dialed', async () => {
    const decision = await checkDialGates(call({ expiresAt: NOW - 1 }), 3, deps());
    expect(decision).toMatchObject({ kind: 'end', outcome: 'expired', reason: 'it expired at 2026-12-02T09:59:59.999Z, before attempt 3 could be dialed' });
  });

  it('ends a call an operator canceled while an earlier attempt rang, before any other gate', async () => {
    const decision = await checkDialGates(call({ expiresAt: NOW - 1 }), 2, deps({ cancelRequested: true }));
    expect(decision).toMatchObject({ kind: 'end', outcome: 'canceled', reason: CANCEL_REASON });
  });

  it('lets a call with nothing against it ring', async () => {
    expect(await checkDialGates(call(), 1, deps())).toEqual({ kind: 'ring' });
  });
});
