import type { RoomServiceClient } from 'livekit-server-sdk';
import { ServerError } from 'livekit-server-sdk';
import { SIP_ATTR } from '../core/sipAttributes.js';
import type { Clock } from '../core/time.js';

/** What LiveKit says about an attempt a crashed consumer started: is its SIP participant still there? */
export type PreviousAttemptState = 'absent' | 'ringing' | 'active';

const HTTP_NOT_FOUND = 404;
/** How often to look again at a call that a crashed consumer left ringing. */
export const PREVIOUS_ATTEMPT_POLL_MS = 500;

/** Asks LiveKit whether `room` still holds the call's SIP participant, and in what state. */
export async function inspectPreviousAttempt(rooms: RoomServiceClient, room: string, identity: string): Promise<PreviousAttemptState> {
  let participants;
  try {
    participants = await rooms.listParticipants(room);
  } catch (err) {
    if (err instanceof ServerError && err.status === HTTP_NOT_FOUND) return 'absent';
    throw err;
  }
  const sip = participants.find((p) => p.identity === identity);
  if (!sip) return 'absent';
  const status = sip.attributes[SIP_ATTR.callStatus];
  if (status === 'hangup') return 'absent';
  // no status at all (a server that does not publish it): the call may be up, and hanging it up would be worse
  // than letting the agent find out; dialing again is never an option while the participant is there
  if (status === undefined || status === 'active') return 'active';
  return 'ringing';
}

/**
 * Follows a call left ringing by a crashed consumer until it is answered, disappears, or `deadline` passes,
 * without ringing the phone again.
 */
export async function followPreviousAttempt(
  rooms: RoomServiceClient,
  room: string,
  identity: string,
  deadline: number,
  clock: Clock,
  signal?: AbortSignal,
): Promise<'active' | 'gone' | 'timed_out'> {
  for (;;) {
    const state = await inspectPreviousAttempt(rooms, room, identity);
    if (state === 'active') return 'active';
    if (state === 'absent') return 'gone';
    if (clock.now() >= deadline) return 'timed_out';
    await clock.sleep(PREVIOUS_ATTEMPT_POLL_MS, signal);
  }
}
