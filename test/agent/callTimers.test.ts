/** A call's maximum duration and silence timeout, on a clock the test moves. */
import { describe, expect, it } from 'vitest';
import { CallTimers } from '../../src/agent/callTimers.js';
import { MINUTE, SECOND } from '../../src/core/time.js';
import { TestClock } from '../helpers/testClock.js';

function timers(clock: TestClock, quiet: { value: boolean } = { value: true }) {
  const fired: string[] = [];
  const t = new CallTimers({
    maxDurationMs: 10 * MINUTE,
    silenceTimeoutMs: 20 * SECOND,
    onMaxDuration: () => fired.push(`max at ${clock.now()}`),
    onSilence: () => fired.push(`silence at ${clock.now()}`),
    isQuiet: () => quiet.value,
    clock,
  });
  return { t, fired };
}

describe('call timers', () => {
  it('ends a silent call at the silence timeout, counted from the last thing said or done', async () => {
    const clock = new TestClock(0);
    const { t, fired } = timers(clock);
    t.start();
    await clock.advance(15 * SECOND);
    t.touch(); // the callee said something
    await clock.advance(19 * SECOND);
    expect(fired).toEqual([]);
    await clock.advance(1 * SECOND);
    expect(fired).toEqual([`silence at ${35 * SECOND}`]);
    t.stop();
  });

  it('does not count a moment when someone talks or a tool runs as silence: it starts over', async () => {
    const clock = new TestClock(0);
    const quiet = { value: false };
    const { t, fired } = timers(clock, quiet);
    t.start();
    await clock.advance(20 * SECOND);
    expect(fired).toEqual([]);
    quiet.value = true;
    await clock.advance(20 * SECOND);
    expect(fired).toEqual([`silence at ${40 * SECOND}`]);
    t.stop();
  });

  it('ends the call at the maximum duration however much is said, and nothing fires once stopped', async () => {
    const clock = new TestClock(0);
    const { t, fired } = timers(clock, { value: false });
    t.start();
    await clock.advance(10 * MINUTE);
    expect(fired).toEqual([`max at ${10 * MINUTE}`]);
    t.stop();
    expect(clock.pending).toBe(0);
    await clock.advance(60 * MINUTE);
    expect(fired).toHaveLength(1);
  });
});
