/** The simulator events the chaos test relays from the sim host to the agent host, and the message that carries one. */
import { z } from 'zod';
import type { SimEventName } from '../../src/sim/index.js';

/** What the simulated agent listens to (the events src/sim/main.ts prints: rooms, participants, calls, transfers). */
export const RELAYED_EVENTS = [
  'dispatch_created',
  'dispatch_deleted',
  'room_created',
  'room_deleted',
  'participant_joined',
  'participant_left',
  'call_dialing',
  'call_ringing',
  'call_answered',
  'call_failed',
  'call_ended',
  'transfer_requested',
  'transfer_completed',
  'transfer_failed',
] as const satisfies readonly SimEventName[];

/** `{event, payload}`: one simulator event, its payload as the simulator emitted it (JSON over IPC). */
export const relayedEventSchema = z.object({ event: z.enum(RELAYED_EVENTS), payload: z.record(z.string(), z.unknown()) });
export type RelayedEvent = z.infer<typeof relayedEventSchema>;
