import { describe, expect, it } from 'vitest';
import { analyseChaosRun, formatChaosLine, formatViolations, type ChaosCall, type RecordView, type SimCallLog } from './chaosReport.js';
import { EXPECTED_OUTCOME, chaosCampaign, type ScriptKind } from './chaosScenario.js';
import { UNAVAILABLE_UNKNOWN_REASON } from '../../src/consumer/attemptEnd.js';

// The chaos test's instrument: it must see every kind of broken promise in the simulator's log, and only those.

const T = 1_000_000;

function call(n: number, kind: ScriptKind): ChaosCall {
  return { callId: `c-${n}`, phoneNumber: `+1415557000${n}`, kind, expected: EXPECTED_OUTCOME[kind], script: { type: 'busy' } };
}

function dial(c: ChaosCall, attempt: number, at: number, end: Partial<SimCallLog>): SimCallLog {
  return {
    room: `call-${c.callId}-${attempt}`,
    phoneNumber: c.phoneNumber,
    attempt,
    behavior: undefined,
    receivedAt: at,
    ringingAt: undefined,
    answeredAt: undefined,
    endedAt: undefined,
    result: 'failed',
    endReason: undefined,
    sipStatusCode: undefined,
    twirpCode: undefined,
    clientDisconnected: false,
    ...end,
  };
}

function arrivalsOf(simCalls: readonly SimCallLog[]) {
  return simCalls.map((d) => ({ at: d.receivedAt, room: d.room, clientPort: undefined }));
}

function terminal(c: ChaosCall, outcome = c.expected, attempts = 1): [string, RecordView] {
  return [c.callId, { callId: c.callId, state: 'terminal', outcome, attempts, reason: undefined }];
}

describe('chaos report', () => {
  it('reads 1 / 0 / 0 / 0 for a run where every attempt rang once and every call ended as scripted', () => {
    const human = call(1, 'human');
    const busy = call(2, 'busy');
    const simCalls = [
      dial(human, 1, T, { result: 'answered', answeredAt: T + 500, endedAt: T + 3000 }),
      dial(busy, 1, T + 200, { sipStatusCode: 486, endedAt: T + 300 }),
      dial(busy, 2, T + 2000, { sipStatusCode: 486, endedAt: T + 2100 }),
      dial(busy, 3, T + 5000, { sipStatusCode: 486, endedAt: T + 5100 }),
    ];
    const { figures, violations } = analyseChaosRun({
      calls: [human, busy],
      simCalls,
      arrivals: arrivalsOf(simCalls),
      records: new Map([terminal(human), terminal(busy, 'busy', 3)]),
      cps: 2,
    });
    expect(violations).toEqual([]);
    expect(formatChaosLine(figures, { consumerKills: 4, redisRestarts: 1, livekitOutageS: 20, redisBlockS: 6 })).toBe(
      'chaos: calls=2 kills=4 redis_restarts=1 livekit_outage_s=20 redis_block_s=6 max_dials_per_attempt=1 re_rings_after_final=0 outcomes_lost=0 outcomes_wrong=0 outcomes_404_unheard=0 max_starts_per_rolling_s=2/2',
    );
    // another topology names itself and its failover (or node restart) time; single's line stays as it was
    expect(formatChaosLine(figures, { consumerKills: 4, redisRestarts: 1, livekitOutageS: 20, redisBlockS: 6, topology: 'single' })).toBe(
      formatChaosLine(figures, { consumerKills: 4, redisRestarts: 1, livekitOutageS: 20, redisBlockS: 6 }),
    );
    expect(formatChaosLine(figures, { consumerKills: 4, redisRestarts: 1, livekitOutageS: 20, redisBlockS: 6, topology: 'sentinel', failoverS: 11.26 })).toBe(
      'chaos: topology=sentinel failover_s=11.3 calls=2 kills=4 redis_restarts=1 livekit_outage_s=20 redis_block_s=6 max_dials_per_attempt=1 re_rings_after_final=0 outcomes_lost=0 outcomes_wrong=0 outcomes_404_unheard=0 max_starts_per_rolling_s=2/2',
    );
    expect(formatChaosLine(figures, { consumerKills: 4, redisRestarts: 1, livekitOutageS: 20, redisBlockS: 6, topology: 'cluster', nodeBackS: 5.04 })).toMatch(
      /^chaos: topology=cluster node_back_s=5\.0 calls=2 /,
    );
  });

  it('counts an attempt room dialed twice, and a decline rung again, from the simulator log alone', () => {
    const decline = call(1, 'decline');
    const simCalls = [
      dial(decline, 1, T, { ringingAt: T + 100, sipStatusCode: 603, endedAt: T + 2000 }),
      dial(decline, 1, T + 8000, { ringingAt: T + 8100, sipStatusCode: 603, endedAt: T + 10_000 }),
    ];
    const records = new Map([terminal(decline)]);
    const { figures, violations } = analyseChaosRun({ calls: [decline], simCalls, arrivals: arrivalsOf(simCalls), records, cps: 10 });
    expect(figures).toMatchObject({ maxDialsPerAttempt: 2, reRingsAfterFinal: 1, outcomesLost: 0, outcomesWrong: 0 });
    expect(violations.map((v) => v.kind)).toEqual(['double_dial', 're_ring']);
    const text = formatViolations(violations, { simCalls, events: [], arrivals: arrivalsOf(simCalls), records, t0: T });
    expect(text).toContain('call-c-1-1 dialed 2×');
    expect(text).toContain('+8.0s dial call-c-1-1 ring +8.1s SIP 603 +10.0s');
  });

  it('counts a dial after the callee answered as a re-ring, even in a later attempt room', () => {
    const human = call(1, 'human');
    const simCalls = [
      dial(human, 1, T, { result: 'answered', answeredAt: T + 400, endedAt: T + 900 }),
      dial(human, 2, T + 5000, { result: 'answered', answeredAt: T + 5400, endedAt: T + 6000 }),
    ];
    const { figures } = analyseChaosRun({ calls: [human], simCalls, arrivals: arrivalsOf(simCalls), records: new Map([terminal(human)]), cps: 10 });
    expect(figures).toMatchObject({ maxDialsPerAttempt: 1, reRingsAfterFinal: 1 });
  });

  it('does not count the retries of a busy number, whose 486 is not final', () => {
    const busyThenHuman = call(1, 'busy_then_human');
    const simCalls = [
      dial(busyThenHuman, 1, T, { sipStatusCode: 486, endedAt: T + 100 }),
      dial(busyThenHuman, 2, T + 3000, { result: 'answered', answeredAt: T + 3500, endedAt: T + 6000 }),
    ];
    const { figures } = analyseChaosRun({ calls: [busyThenHuman], simCalls, arrivals: arrivalsOf(simCalls), records: new Map([terminal(busyThenHuman, 'answered', 2)]), cps: 10 });
    expect(figures.reRingsAfterFinal).toBe(0);
  });

  it('counts a 404 number that ended failed as unheard, not wrong, only when its 404 never reached a dialer', () => {
    const unheard = call(1, 'not_found');
    const heard = call(2, 'not_found');
    const simCalls = [
      dial(unheard, 1, T, { sipStatusCode: 404, endedAt: T + 200, clientDisconnected: true }),
      dial(heard, 1, T + 100, { sipStatusCode: 404, endedAt: T + 300 }),
    ];
    const failed = (c: ChaosCall): [string, RecordView] => [
      c.callId,
      { callId: c.callId, state: 'terminal', outcome: 'failed', attempts: 1, reason: UNAVAILABLE_UNKNOWN_REASON },
    ];
    const { figures, violations } = analyseChaosRun({
      calls: [unheard, heard],
      simCalls,
      arrivals: arrivalsOf(simCalls),
      records: new Map([failed(unheard), failed(heard)]),
      cps: 10,
    });
    expect(figures).toMatchObject({ outcomesUnknowable: 1, outcomesWrong: 1, reRingsAfterFinal: 0 });
    expect(violations).toEqual([{ kind: 'wrong', call: heard, record: expect.objectContaining({ outcome: 'failed' }) }]);
  });

  it('counts a 404 answered to a consumer that was SIGKILLed before it recorded it as unheard, and one whose consumer lived as wrong', () => {
    const diedWithIt = call(1, 'not_found');
    const consumerLived = call(2, 'not_found');
    const killedLongBefore = call(3, 'not_found');
    const simCalls = [
      dial(diedWithIt, 1, T, { sipStatusCode: 404, endedAt: T + 200 }),
      dial(consumerLived, 1, T + 100, { sipStatusCode: 404, endedAt: T + 300 }),
      dial(killedLongBefore, 1, T + 100, { sipStatusCode: 404, endedAt: T + 30_000 }),
    ];
    const arrivals = [
      { at: T, room: simCalls[0]?.room, clientPort: 41001 },
      { at: T + 100, room: simCalls[1]?.room, clientPort: 41002 },
      { at: T + 100, room: simCalls[2]?.room, clientPort: 41003 },
    ];
    const killedAt = T + 250;
    const closes = [
      // the killed consumer's connection: closed by its side right after the kill
      { at: killedAt + 40, clientPort: 41001, by: 'client' as const },
      // the live consumer's connection ends at shutdown, long after, with no kill near it
      { at: T + 120_000, clientPort: 41002, by: 'client' as const },
      // this one's consumer was killed 30 s before its 404 went out: the close later is another matter
      { at: T + 60_000, clientPort: 41003, by: 'client' as const },
    ];
    const failed = (c: ChaosCall): [string, RecordView] => [
      c.callId,
      { callId: c.callId, state: 'terminal', outcome: 'failed', attempts: 1, reason: UNAVAILABLE_UNKNOWN_REASON },
    ];
    const { figures, unheard } = analyseChaosRun({
      calls: [diedWithIt, consumerLived, killedLongBefore],
      simCalls,
      arrivals,
      records: new Map([failed(diedWithIt), failed(consumerLived), failed(killedLongBefore)]),
      cps: 10,
      closes,
      consumerKills: [killedAt],
    });
    expect(unheard).toEqual([diedWithIt]);
    expect(figures).toMatchObject({ outcomesUnknowable: 1, outcomesWrong: 2 });
  });

  it('does not take a connection reset by LiveKit\'s outage for a killed consumer', () => {
    const reset = call(1, 'not_found');
    const simCalls = [dial(reset, 1, T, { sipStatusCode: 404, endedAt: T + 200 })];
    const { figures } = analyseChaosRun({
      calls: [reset],
      simCalls,
      arrivals: [{ at: T, room: simCalls[0]?.room, clientPort: 41001 }],
      records: new Map([[reset.callId, { callId: reset.callId, state: 'terminal', outcome: 'failed', attempts: 1, reason: UNAVAILABLE_UNKNOWN_REASON }]]),
      cps: 10,
      closes: [{ at: T + 300, clientPort: 41001, by: 'outage' }],
      consumerKills: [T + 250],
    });
    expect(figures).toMatchObject({ outcomesUnknowable: 0, outcomesWrong: 1 });
  });

  it('counts calls without a terminal record as lost and other outcomes than the script as wrong', () => {
    const ringOut = call(1, 'ring_out');
    const human = call(2, 'human');
    const voicemail = call(3, 'voicemail');
    const records = new Map<string, RecordView>([
      [ringOut.callId, { callId: ringOut.callId, state: 'dialing', outcome: undefined, attempts: 1, reason: undefined }],
      terminal(human, 'failed'),
    ]);
    const { figures, violations } = analyseChaosRun({ calls: [ringOut, human, voicemail], simCalls: [], arrivals: [], records, cps: 10 });
    expect(figures).toMatchObject({ outcomesLost: 2, outcomesWrong: 1 });
    const text = formatViolations(violations, {
      simCalls: [],
      events: [{ name: 'dispatch_created', at: T + 100, room: 'call-c-1-1', sipStatusCode: undefined, reason: undefined }],
      arrivals: [],
      records,
      jobs: new Map([[ringOut.callId, 'failed, attemptsMade 1, "job stalled more than allowable limit"']]),
      t0: T,
    });
    expect(text).toContain('c-1 (ring_out, expected no_answer; record: dialing, attempts 1; dial job: failed, attemptsMade 1');
    expect(text).toContain('c-2 (human, expected answered; record: terminal failed, attempts 1)');
    expect(text).toContain('c-3 (voicemail, expected voicemail; record: no record)');
    expect(text).toContain('events in call-c-1-1: agent dispatched +0.1s');
  });

  it("finds the busiest rolling second over DIAL_CPS at LiveKit's door, wherever it starts", () => {
    const calls = [1, 2, 3, 4].map((n) => call(n, 'human'));
    // 3 arrivals in [T+500, T+1500): over a limit of 2, though each calendar second holds only 2
    const arrivalTimes = [T, T + 500, T + 1100, T + 1400];
    const arrivals = arrivalTimes.map((at, i) => ({ at, room: `call-c-${i + 1}-1`, clientPort: 40_000 + (i % 2) }));
    // the simulator, stalled, handled them all at once: its own times do not count
    const simCalls = calls.map((c) => dial(c, 1, T + 1450, { result: 'answered', answeredAt: T + 1500, endedAt: T + 1600 }));
    const records = new Map(calls.map((c) => terminal(c)));
    const { figures, violations } = analyseChaosRun({ calls, simCalls, arrivals, records, cps: 2 });
    expect(figures.maxStartsPerRollingSecond).toBe(3);
    expect(violations).toEqual([{ kind: 'cps', windowStart: T + 500, starts: 3 }]);
    const text = formatViolations(violations, { simCalls, events: [], arrivals, records, t0: T, proxyStalls: [{ at: T + 450, ms: 300 }] });
    expect(text).toContain('+1.100s call-c-3-1 (connection :40000)');
    expect(text).toContain('the API proxy itself stalled around it: 300 ms until +0.5s');
  });
});

describe('chaos campaign', () => {
  it('scripts every number once, mixing all behaviours, the same way for the same seed', () => {
    const a = chaosCampaign(210, 7);
    const b = chaosCampaign(210, 7);
    expect(a).toEqual(b);
    expect(new Set(a.numbers.map((n) => n.phoneNumber)).size).toBe(210);
    expect(Object.keys(a.scenario.numbers ?? {})).toHaveLength(210);
    const kinds = new Map<string, number>();
    for (const n of a.numbers) kinds.set(n.kind, (kinds.get(n.kind) ?? 0) + 1);
    expect(Object.fromEntries(kinds)).toEqual({ human: 63, voicemail: 21, busy: 21, decline: 42, ring_out: 25, not_found: 21, busy_then_human: 17 });
    // shuffled: the first 20 calls already hold several behaviours
    expect(new Set(a.numbers.slice(0, 20).map((n) => n.kind)).size).toBeGreaterThanOrEqual(4);
  });
});
