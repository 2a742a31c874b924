import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startLiveKitStack, type LiveKitStack } from './stack.js';

let stack: LiveKitStack | undefined;

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this suite with \`npm run test:livekit\` (scripts/livekit/test.sh sets it up)`);
  }
  return value;
}

/**
 * Starts the real stack once for the run, inside the namespace test.sh made, and hands it to the test files
 * through the environment: TEST_REDIS_URL (the stack's Redis, also the dialer's), LIVEKIT_TEST_URL/_WS_URL/_KEY/
 * _SECRET, LIVEKIT_TEST_WORKDIR (logs, sipp traces) and LIVEKIT_FAR_IP (where sipp callees listen).
 */
export async function setup(): Promise<void> {
  required('LIVEKIT_NETNS');
  const workDir = resolve('.tmp', 'livekit', `run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(workDir, { recursive: true });
  stack = await startLiveKitStack({
    stackIp: required('LIVEKIT_STACK_IP'),
    serverBin: required('LIVEKIT_SERVER_BIN'),
    sipBin: required('LIVEKIT_SIP_BIN'),
    workDir,
  });
  const ms = stack.startMs;
  const summary = `stack ready in ${Math.round(ms.total)} ms (redis ${Math.round(ms.redis)}, livekit-server ${Math.round(ms.server)}, livekit-sip ${Math.round(ms.sip)}); logs in ${workDir}`;
  process.stderr.write(`[test:livekit] ${summary}\n`);
  writeFileSync(join(workDir, 'stack.json'), JSON.stringify({ url: stack.url, startMs: stack.startMs }, null, 2));
  Object.assign(process.env, {
    TEST_REDIS_URL: stack.redisUrl,
    LIVEKIT_TEST_URL: stack.url,
    LIVEKIT_TEST_WS_URL: stack.wsUrl,
    LIVEKIT_TEST_KEY: stack.apiKey,
    LIVEKIT_TEST_SECRET: stack.apiSecret,
    LIVEKIT_TEST_WORKDIR: workDir,
  });
}

export async function teardown(): Promise<void> {
  await stack?.stop();
}
