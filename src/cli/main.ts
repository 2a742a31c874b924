import { runCommandLine } from './program.js';

/** The `dialer` process: runs the command line; help, usage and thrown errors exit at once with their code. */
const end = await runCommandLine(process.argv);
if (end.errorLine !== undefined) process.stderr.write(`${end.errorLine}\n`);
if (end.exitNow) process.exit(end.code);
