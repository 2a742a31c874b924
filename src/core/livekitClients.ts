import { AgentDispatchClient, RoomServiceClient, SipClient } from 'livekit-server-sdk';
import type { LiveKitSettings } from './config.js';

/** The three LiveKit API clients the dialer and agent use. */
export interface LiveKitClients {
  sip: SipClient;
  rooms: RoomServiceClient;
  dispatch: AgentDispatchClient;
}

/**
 * Creates the clients with region failover off: the SDK replays a POST to another region after a 5xx or
 * transport error, and a replayed CreateSIPParticipant can ring a phone twice.
 */
export function createLiveKitClients(settings: LiveKitSettings): LiveKitClients {
  const options = { failover: false };
  const host = settings.url.replace(/^ws/, 'http');
  return {
    sip: new SipClient(host, settings.apiKey, settings.apiSecret, options),
    rooms: new RoomServiceClient(host, settings.apiKey, settings.apiSecret, options),
    dispatch: new AgentDispatchClient(host, settings.apiKey, settings.apiSecret, options),
  };
}
