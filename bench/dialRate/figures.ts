/** The dial-rate bench's figures, from the arrival times its proxy kept (bench/dialRate/arrivalProxy.ts). */
import { SECOND } from '../../src/core/time.js';
import type { ProxyArrivals } from './arrivalProxy.js';

/** Share of arrivals left out at each end of a run when its steady rate is measured (ramp-up, the last calls). */
export const STEADY_TRIM = 0.05;

export interface RunFigures {
  dials: number;
  /** Dials per second over the run's middle (STEADY_TRIM left out at each end): calls were waiting all along. */
  steadyCps: number;
  /** The most dial arrivals in any half-open second [t, t + 1 s), t sliding over every arrival. */
  peak: number;
  /** Time from a room's last CreateDispatch arrival to its CreateSIPParticipant arrival (ms), over every dialed room. */
  dispatchToDial: { p50: number; p99: number; max: number; rooms: number };
  /** Dials whose room had no dispatch before it (must be 0: every call gets its agent first). */
  dialsWithoutDispatch: number;
}

/** The most timestamps in any half-open window [t, t + windowMs), t being any of them. */
export function peakInWindow(sorted: readonly number[], windowMs: number): number {
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end += 1) {
    while ((sorted[end] as number) - (sorted[start] as number) >= windowMs) start += 1;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** Arrivals per second between the STEADY_TRIM-th and the (1 − STEADY_TRIM)-th arrival. */
export function steadyRate(sorted: readonly number[]): number {
  if (sorted.length < 2) return 0;
  const lo = Math.floor(sorted.length * STEADY_TRIM);
  const hi = Math.max(lo + 1, Math.ceil(sorted.length * (1 - STEADY_TRIM)) - 1);
  const span = (sorted[hi] as number) - (sorted[lo] as number);
  return span > 0 ? ((hi - lo) * SECOND) / span : 0;
}

/** The p-th percentile (0–100) of `values`, nearest rank; 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function runFigures(arrivals: ProxyArrivals): RunFigures {
  const dialTimes = arrivals.dials.map((a) => a.at).sort((a, b) => a - b);
  // a room whose slot was missed is deleted and its agent dispatched again: the last dispatch before the dial counts
  const dispatchTimes = new Map<string, number[]>();
  for (const d of arrivals.dispatches) if (d.room !== undefined) dispatchTimes.set(d.room, [...(dispatchTimes.get(d.room) ?? []), d.at]);
  const delays: number[] = [];
  let withoutDispatch = 0;
  for (const dial of arrivals.dials) {
    const before = (dial.room === undefined ? [] : (dispatchTimes.get(dial.room) ?? [])).filter((at) => at <= dial.at);
    if (before.length === 0) withoutDispatch += 1;
    else delays.push(dial.at - Math.max(...before));
  }
  return {
    dials: dialTimes.length,
    steadyCps: steadyRate(dialTimes),
    peak: peakInWindow(dialTimes, SECOND),
    dispatchToDial: { p50: percentile(delays, 50), p99: percentile(delays, 99), max: percentile(delays, 100), rooms: delays.length },
    dialsWithoutDispatch: withoutDispatch,
  };
}
