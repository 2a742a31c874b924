/** Shared pieces of the agent tests: a Redis prefix per file, reading `call-results`, dialing like the consumer does. */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLiveKitClients, type LiveKitClients } from '../../src/core/livekitClients.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { callResultSchema, type CallResult } from '../../src/core/outcomes.js';
import type { LiveKitSim } from '../../src/sim/index.js';
import { waitForEvent } from '../../src/sim/index.js';

export function simClients(sim: LiveKitSim): LiveKitClients {
  return createLiveKitClients({ url: sim.url, apiKey: sim.apiKey, apiSecret: sim.apiSecret });
}

/** Reads the `call-results` queue under `prefix`. */
export class ResultsReader {
  private readonly connection: Redis;
  private readonly queue: Queue;

  constructor(redisUrl: string, prefix: string) {
    this.connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.queue = new Queue(CALL_RESULTS_QUEUE, { connection: this.connection, prefix });
    // A test that takes Redis away expects connection errors; reads retry once it is back.
    this.queue.on('error', (err) => {
      this.lastError = err;
    });
    this.connection.on('error', (err) => {
      this.lastError = err;
    });
  }

  /** The last Redis error the reader saw (they are expected while a test has taken Redis away). */
  lastError: Error | undefined;

  async all(): Promise<CallResult[]> {
    const jobs = await this.queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized']);
    return jobs.map((job) => callResultSchema.parse(job.data));
  }

  async count(): Promise<number> {
    return (await this.all()).length;
  }

  async get(callId: string): Promise<CallResult | undefined> {
    const job = await this.queue.getJob(callId);
    return job ? callResultSchema.parse(job.data) : undefined;
  }

  /** Polls until the call's result is there (bounded). */
  async waitFor(callId: string, timeoutMs = 10_000): Promise<CallResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = await this.get(callId);
      if (result) return result;
      if (Date.now() > deadline) throw new Error(`no result for ${callId} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.connection.quit();
  }
}

let counter = 0;

/** A fresh E.164 number per call, so each test's network behaviour is its own. */
export function nextNumber(base = '+1202555'): string {
  counter += 1;
  return `${base}${String(1000 + (counter % 9000)).padStart(4, '0')}`;
}

/** Places a call like the consumer: dispatch (dialed_by consumer), then CreateSIPParticipant waiting for the answer. */
export async function dialLikeConsumer(
  sim: LiveKitSim,
  clients: LiveKitClients,
  input: { callId: string; campaignId?: string; phoneNumber: string; agentName: string; agentProfile?: string; metadata?: Record<string, string> },
): Promise<{ room: string; identity: string; answered: boolean }> {
  const room = `call-${input.callId}-1`;
  const identity = `sip-${input.callId}`;
  await clients.dispatch.createDispatch(room, input.agentName, {
    metadata: JSON.stringify({
      phone_number: input.phoneNumber,
      call_id: input.callId,
      campaign_id: input.campaignId ?? 'agent-tests',
      attempt: 1,
      dialed_by: 'consumer',
      sip_participant_identity: identity,
      agent_profile: input.agentProfile,
      metadata: input.metadata ?? {},
    }),
  });
  try {
    await clients.sip.createSipParticipant(sim.outboundTrunkId, input.phoneNumber, room, {
      participantIdentity: identity,
      waitUntilAnswered: true,
      ringingTimeout: 5,
    });
    return { room, identity, answered: true };
  } catch {
    await clients.rooms.deleteRoom(room).catch(() => undefined);
    return { room, identity, answered: false };
  }
}

export { waitForEvent };
