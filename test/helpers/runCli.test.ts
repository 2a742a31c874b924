/** A command run in-process (runCliInProcess) ends as the `dialer` process does: same exit code, stdout and stderr. */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, runCliInProcess } from './runCli.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from './testRedis.js';

const prefix = uniquePrefix('in-process-cli');
const env = { REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix };

afterAll(async () => {
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('commands run in-process', () => {
  it('end with the exit code, stdout and stderr of the real process', async () => {
    expect(await runCliInProcess(['dnc', 'add', '+1 415 555 8009'], env)).toEqual({ code: 0, stdout: 'added 1\n', stderr: '' });
    const lines: string[][] = [
      ['dnc', 'list'], // 0, stdout
      ['pause', '--campaign', 'no-such-campaign'], // 2 from exitWithError in a command's action
      ['pause'], // 2, a usage error commander prints
    ];
    // the processes run side by side (each takes a second or two to start); the in-process runs one after another
    const real = await Promise.all(lines.map((args) => runCli(args, env)));
    for (const [i, args] of lines.entries()) {
      const inProcess = await runCliInProcess(args, env);
      expect(inProcess, args.join(' ')).toEqual(real[i]);
    }
    expect(real.map((r) => r.code)).toEqual([0, 2, 2]);
    expect(real[0]?.stdout).toBe('+14155558009\n');
    expect(real[1]?.stderr).toMatch(/^dialer: .*no-such-campaign/);
  });

  it('leave the environment, output and exit of the test process as they were', async () => {
    const before = { env: process.env, exit: process.exit, out: process.stdout.write, exitCode: process.exitCode };
    await runCliInProcess(['pause', '--campaign', 'no-such-campaign'], env);
    expect({ env: process.env, exit: process.exit, out: process.stdout.write, exitCode: process.exitCode }).toEqual(before);
    expect(process.env.QUEUE_PREFIX).not.toBe(prefix);
  });
});
