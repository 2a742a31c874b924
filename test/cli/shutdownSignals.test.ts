import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { DUPLICATE_SIGNAL_WINDOW_MS, FORCE_STOP_GRACE_MS, handleShutdownSignals } from '../../src/core/shutdownSignals.js';

const logger = createLogger('silent');

afterEach(() => {
  vi.useRealTimers();
});

describe('stop signals', () => {
  it('takes copies of one Ctrl-C (terminal and npm both deliver it) as one request: drain, not force', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const steps: string[] = [];
    const exits: number[] = [];
    const remove = handleShutdownSignals(
      { drain: async () => void steps.push('drain'), force: async () => void steps.push('force') },
      logger,
      (code) => exits.push(code),
    );
    try {
      process.emit('SIGINT', 'SIGINT');
      process.emit('SIGINT', 'SIGINT'); // the same Ctrl-C, a millisecond later
      vi.advanceTimersByTime(DUPLICATE_SIGNAL_WINDOW_MS - 1);
      process.emit('SIGTERM', 'SIGTERM');
      await Promise.resolve();
      expect(steps).toEqual(['drain']);
      // pressed again later: that one forces
      vi.advanceTimersByTime(2);
      process.emit('SIGINT', 'SIGINT');
      await Promise.resolve();
      expect(steps).toEqual(['drain', 'force']);
      expect(exits).toEqual([0]); // the process exits once (here the drain was done first)
    } finally {
      remove();
    }
  });

  it('exits on a second signal even while the drain it interrupts never ends (a stuck BullMQ close, Redis gone)', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const exits: number[] = [];
    const never = new Promise<void>(() => undefined);
    const remove = handleShutdownSignals({ drain: () => never, force: () => never }, logger, (code) => exits.push(code));
    try {
      process.emit('SIGTERM', 'SIGTERM');
      vi.advanceTimersByTime(DUPLICATE_SIGNAL_WINDOW_MS + 1);
      process.emit('SIGTERM', 'SIGTERM');
      vi.advanceTimersByTime(FORCE_STOP_GRACE_MS - 1);
      expect(exits).toEqual([]);
      vi.advanceTimersByTime(2);
      expect(exits).toEqual([1]);
    } finally {
      remove();
    }
  });

  it('bounds the drain when told to, and exits once only', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const exits: number[] = [];
    const never = new Promise<void>(() => undefined);
    const remove = handleShutdownSignals({ drain: () => never, force: () => never }, logger, (code) => exits.push(code), { drainTimeoutMs: 5000 });
    try {
      process.emit('SIGINT', 'SIGINT');
      vi.advanceTimersByTime(5001);
      expect(exits).toEqual([1]);
      vi.advanceTimersByTime(DUPLICATE_SIGNAL_WINDOW_MS);
      process.emit('SIGINT', 'SIGINT');
      vi.advanceTimersByTime(FORCE_STOP_GRACE_MS + 1);
      expect(exits).toEqual([1]);
    } finally {
      remove();
    }
  });
});
