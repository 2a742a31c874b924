import { llm, voice } from '@livekit/agents';
import { sleep } from '../core/time.js';

/**
 * Speaks a fixed text. A pipeline (or text-only) session says it verbatim; a realtime model without a TTS
 * cannot `say()`, so it is asked to speak the text word for word instead.
 */
export function speak(session: voice.AgentSession, text: string): voice.SpeechHandle {
  if (session.llm instanceof llm.RealtimeModel && !session.tts) {
    return session.generateReply({
      instructions: `Say exactly the following to the person on the line, word for word, and nothing else: "${text}"`,
      toolChoice: 'none',
    });
  }
  return session.say(text, { allowInterruptions: false });
}

/** Waits for a speech to play out, at most `timeoutMs` (a stuck playout must not hold a call open). */
export async function playOut(handle: voice.SpeechHandle, timeoutMs: number): Promise<void> {
  const timeout = new AbortController();
  await Promise.race([
    handle.waitForPlayout().catch(() => undefined),
    sleep(timeoutMs, timeout.signal).catch(() => undefined),
  ]);
  timeout.abort();
}
