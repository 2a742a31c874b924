import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { DUPLICATE_SIGNAL_WINDOW_MS, handleShutdownSignals } from '../../src/core/shutdownSignals.js';

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
      expect(exits).toEqual([0, 0]);
    } finally {
      remove();
    }
  });
});
