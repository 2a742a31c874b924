/**
 * The agent worker: `tsx src/agent/main.ts dev|start` (or `dialer agent dev|start`). Registers with
 * agentName = AGENT_NAME, so LiveKit dispatches it explicitly only (the consumer's CreateDispatch, an inbound
 * dispatch rule, or `lk dispatch create`).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ServerOptions, cli, defineAgent, type JobContext } from '@livekit/agents';
import { config as loadDotenv } from 'dotenv';
import { loadConfig, requireLiveKit } from '../core/config.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { createProducerConnection } from '../core/redisConnection.js';
import { ResultReporter } from '../core/reportResult.js';
import { SECOND } from '../core/time.js';
import { loadAgentSettings, requireOpenAIKey } from './agentConfig.js';
import { checkCallShards } from './callShardsCheck.js';
import { runCallJob } from './entry.js';
import { OutcomeSpool, spoolDirFor, startSpoolReplayer } from './outcomeSpool.js';

loadDotenv({ quiet: true });

const EXIT_INVALID_SETTINGS = 2;
/**
 * How long a job process may take to start. agents-js' default of 10 s was missed again and again on a busy 2-core
 * host against the real stack ("runner initialization timed out", test/livekit), and then no agent joined the call.
 */
const JOB_PROCESS_INIT_TIMEOUT_MS = 60 * SECOND;
export default defineAgent({
  entry: async (ctx: JobContext) => {
    await runCallJob(ctx);
  },
});

/** True when this file is the process's entry point (not when the job process imports it for its default export). */
function isMainModule(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isMainModule()) {
  // Validate every setting before registering, so a bad .env fails here with a readable message.
  let agentName: string;
  let port: number | undefined;
  let config: ReturnType<typeof loadConfig>;
  let settings: ReturnType<typeof loadAgentSettings>;
  try {
    config = loadConfig();
    requireLiveKit(config);
    settings = loadAgentSettings();
    requireOpenAIKey(settings.models);
    agentName = config.agentName;
    port = settings.httpPort;
  } catch (err) {
    // a settings error holds one line per bad setting: each gets its own prefix
    process.stderr.write(`${errorMessage(err).split('\n').map((line) => `agent: ${line}`).join('\n')}\n`);
    process.exit(err instanceof ConfigError ? EXIT_INVALID_SETTINGS : 1);
  }
  // Job processes spool an outcome Redis did not take before they ended; this (long-lived) process replays them.
  const log = createLogger(config.logLevel, 'agent');
  const replayConnection = createProducerConnection(config.redis);
  replayConnection.on('error', (err) => log.warn({ err: err.message }, 'redis connection error (outcome replay)'));
  try {
    // a wrong setting found only once Redis answers drains the worker, as a stop would
    await checkCallShards(replayConnection, config, log, { drain: () => process.kill(process.pid, 'SIGTERM') });
  } catch (err) {
    process.stderr.write(`agent: ${errorMessage(err)}\n`);
    replayConnection.disconnect();
    process.exit(err instanceof ConfigError ? EXIT_INVALID_SETTINGS : 1);
  }
  startSpoolReplayer({
    spool: new OutcomeSpool(spoolDirFor(settings.outcomeSpoolDir, config.queuePrefix)),
    sender: new ResultReporter(replayConnection, config.queuePrefix, log),
    logger: log,
  });
  cli.runApp(
    // agents-js' health server listens on 0.0.0.0 by default; it has no authentication, so loopback unless METRICS_HOST widens it
    new ServerOptions({
      agent: fileURLToPath(import.meta.url),
      agentName,
      host: config.metricsHost,
      port,
      shutdownProcessTimeout: settings.jobShutdownTimeoutMs, // AGENT_JOB_SHUTDOWN_TIMEOUT_MS (10 s)
      initializeProcessTimeout: JOB_PROCESS_INIT_TIMEOUT_MS,
    }),
  );
}
