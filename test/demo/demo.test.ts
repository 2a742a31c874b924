import { Writable } from 'node:stream';
import { describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { runDemo } from '../../src/demo/runDemo.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

/**
 * The demo takes 12-13 s on a quiet machine; two full test runs at once on 2 cores took it past 60 s once (agents-js
 * starts a process per call's agent job, each slow to start when starved).
 */
const DEMO_TIMEOUT_MS = 150_000;

describe('npm run demo', () => {
  it('runs a mixed campaign end to end and reports every outcome, with no call left pending, and the one it rejects said once', { timeout: DEMO_TIMEOUT_MS }, async () => {
    const savedRedisUrl = process.env.REDIS_URL;
    process.env.REDIS_URL = testRedisUrl();
    onTestFinished(() => {
      // the test file's process runs other files after this one: give it its environment back
      if (savedRedisUrl === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = savedRedisUrl;
    });
    let output = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        output += chunk.toString();
        done();
      },
    });
    // what the demo printed, when it fails or runs out of time: where it was
    onTestFailed(() => {
      process.stderr.write(`demo output so far:\n${output}\n`);
    });
    // a prefix of its own: deleting the demo's keys afterwards must never touch a demo someone ran by hand
    const queuePrefix = uniquePrefix('demo');
    const report = await runDemo({ out, progressBar: false, queuePrefix });
    expect(report.pending).toBe(0);
    expect(report.total).toBe(10);
    expect(report.byOutcome).toMatchObject({
      answered: 4,
      voicemail: 1,
      transferred: 1,
      busy: 1,
      no_answer: 1,
      invalid_number: 1,
      declined: 1,
    });
    const retried = report.calls.find((c) => c.phoneNumber === '+14155550105');
    expect(retried).toMatchObject({ outcome: 'answered', attempts: 2 });
    expect(output).toContain('survey: 4 | Very likely | Shorter waiting times.');
    expect(output).toContain('cold transfer → tel:+12025550100');
    expect(output).toContain('pick-up rate 50.0 % (5 of 10 dialed calls reached a person; voicemail does not count)');
    // said once: the summary line is `rejected <what the call is>: <why>`
    expect(output).toMatch(/^ {2}rejected not a phone number: not a valid phone number: "\+1 555 CALL-NOW"/m);
    expect(output).not.toContain('(rejected at enqueue)');
    // The inbound call through the shipped dispatch rule: the agent greets, the caller asks for a person.
    expect(output).toMatch(/Inbound: \+14155550120 called the support line .*dispatch rule SDR_\w+ \(dispatch-rule\.json\)/);
    expect(output).toMatch(/transferred \(.*\) → tel:\+12025550102, recorded as in-[0-9a-f]{16} in campaign inbound/);
    expect(output).toContain(`QUEUE_PREFIX=${queuePrefix} `);
    await deleteKeysWithPrefix(testRedisUrl(), queuePrefix);
  });
});
