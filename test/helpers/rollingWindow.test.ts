import { describe, expect, it } from 'vitest';
import { maxInRollingWindow, overLimitWindowsUnexplained } from './rollingWindow.js';

// The instrument of the in-process CPS checks: it must report a limiter that lets too many through, and only excuse
// a window whose count a stall of the stamping process can explain.
describe('over-limit rolling windows', () => {
  const T = 1_000_000;
  const every = (count: number, stepMs: number, from = T) => Array.from({ length: count }, (_, i) => from + i * stepMs);

  it('reports eleven starts in one second when nothing stalled', () => {
    const starts = every(11, 90);
    expect(maxInRollingWindow(starts, 1000)).toBe(11);
    expect(overLimitWindowsUnexplained(starts, 1000, 10, [], 20)).toEqual([starts]);
  });

  it('excuses a window whose first stamp was taken right after a stall longer than the margin', () => {
    // ten starts 100 ms apart from T+1000; the one before them was written at T+950 and stamped at T+1010, after a stall
    const starts = [T + 1010, ...every(10, 100, T + 1020)];
    expect(maxInRollingWindow(starts, 1000)).toBe(11);
    expect(overLimitWindowsUnexplained(starts, 1000, 10, [{ start: T + 940, end: T + 1005 }], 20)).toEqual([]);
  });

  it("excuses a stamp taken up to the stall's own length after a long stall (the loop works off what piled up first)", () => {
    const starts = [T + 1060, ...every(10, 100, T + 1070)];
    expect(overLimitWindowsUnexplained(starts, 1000, 10, [{ start: T + 900, end: T + 1000 }], 20)).toEqual([]);
    expect(overLimitWindowsUnexplained(starts, 1000, 10, [{ start: T + 990, end: T + 1000 }], 20)).toEqual([starts]);
  });

  it('does not excuse a window because of a stall far from its stamps', () => {
    const starts = every(11, 90);
    expect(overLimitWindowsUnexplained(starts, 1000, 10, [{ start: T - 5000, end: T - 4900 }], 20)).toEqual([starts]);
  });
});
