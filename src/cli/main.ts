import { errorCode } from '../core/errors.js';
import { EXIT_OK } from './exitCodes.js';
import { runCommandLine } from './program.js';

/**
 * A reader that went away (`dialer report --watch | head`, `dialer campaign list | head -3`) makes the next write to
 * stdout fail with EPIPE. Every command then stops quietly with exit 0, as Unix tools do: the reader had all it wanted.
 * Any other stdout error is thrown as before.
 */
process.stdout.on('error', (err: Error) => {
  if (errorCode(err) === 'EPIPE') process.exit(EXIT_OK);
  throw err;
});

/** The `dialer` process: runs the command line; help, usage and thrown errors exit at once with their code. */
const end = await runCommandLine(process.argv);
if (end.errorLine !== undefined) process.stderr.write(`${end.errorLine}\n`);
if (end.exitNow) process.exit(end.code);
