import { pino, type Logger } from 'pino';

/** Log lines kept at most: the oldest go first (a failing test shows the lines of the calls it names). */
const MAX_KEPT_LINES = 50_000;

/** A pino logger that keeps its JSON lines in memory, for a test that explains its failure from the log. */
export interface MemoryLogger {
  logger: Logger;
  /** The kept lines that contain `text` (e.g. a call id), oldest first, parsed. */
  linesWith(text: string): unknown[];
}

/** `level` as pino names them (`info` keeps one line per attempt and every warning). */
export function memoryLogger(level = 'info'): MemoryLogger {
  const lines: string[] = [];
  const logger = pino(
    { level },
    {
      write(line: string) {
        lines.push(line);
        if (lines.length > MAX_KEPT_LINES) lines.shift();
      },
    },
  );
  return {
    logger,
    linesWith: (text) => lines.filter((line) => line.includes(text)).map((line): unknown => JSON.parse(line)),
  };
}
