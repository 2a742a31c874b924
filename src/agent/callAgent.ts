import { beta, llm, voice } from '@livekit/agents';
import { z } from 'zod';
import type { CallController } from './callController.js';
import type { CallProfile } from './profiles.js';

/** DTMF keys an IVR can ask for (the set beta.sendDtmfEvents accepts). */
export const DTMF_KEYS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'] as const;

/** Tool names: part of the contract with the model (and with scripted models in tests and the simulator). */
export const TOOL_NAMES = {
  voicemail: 'detected_answering_machine',
  endCall: 'end_call',
  transfer: 'transfer_call',
  sendDtmf: 'send_dtmf_events',
  recordAnswer: 'record_answer',
} as const;

/** The operating rules appended to a profile's own instructions, describing the tools this call has. */
export function callInstructions(profile: CallProfile, outbound: boolean): string {
  const parts: string[] = [profile.instructions.trim(), '', '# How this phone call works'];
  parts.push('You are speaking on a phone call. Keep replies short and natural; never read out lists or markup.');
  if (outbound) {
    parts.push(
      'You placed this call; the person (or machine) who answered speaks first.',
      `If you hear a voicemail greeting or an answering machine, call ${TOOL_NAMES.voicemail} — only after the greeting was heard.`,
      `If an automated menu (IVR) asks you to press keys, call ${TOOL_NAMES.sendDtmf} with the digits.`,
    );
  }
  parts.push(`When the conversation is over (the callee says goodbye or asks to end), call ${TOOL_NAMES.endCall}.`);

  const destinations = Object.entries(profile.transfer.destinations);
  if (destinations.length > 0) {
    const list = destinations.map(([name, d]) => `"${name}"${d.description ? ` (${d.description})` : ''}`).join(', ');
    parts.push(
      `If the caller asks for a person or a department, call ${TOOL_NAMES.transfer} with one of these destinations: ${list}.`,
      'If the transfer fails, apologise, say you could not connect them, and keep helping.',
    );
  }
  if (profile.dtmfMenu.length > 0) {
    const menu = profile.dtmfMenu.map((e) => `press ${e.digit} for ${e.label}`).join(', ');
    parts.push(
      `The caller can use the keypad: ${menu}. Keypad presses reach you as "[keypad] …" messages; for a menu press,` +
        ` call ${TOOL_NAMES.transfer} with that entry's destination. A spoken request for the same department works the same way.`,
    );
  }
  if (profile.surveyQuestions.length > 0) {
    const questions = profile.surveyQuestions.map((q, i) => `${i + 1}. ${q}`).join(' ');
    parts.push(
      `This is a survey. Ask these questions one at a time, in order: ${questions}`,
      `After each answer call ${TOOL_NAMES.recordAnswer} with the question and the callee's answer in their words. When all are answered, thank them and call ${TOOL_NAMES.endCall}.`,
    );
  }
  return parts.join('\n');
}

/** Builds the function tools of a call; each one delegates to the call's controller. */
export function callTools(controller: CallController): llm.ToolContextEntry[] {
  const { profile } = controller;
  const tools: llm.ToolContextEntry[] = [];

  if (controller.outbound) {
    tools.push(
      llm.tool({
        name: TOOL_NAMES.voicemail,
        description:
          'Called when the call reaches voicemail or an answering machine. Use this tool AFTER you hear the voicemail greeting. ' +
          'It leaves the campaign message and hangs up.',
        execute: async () => controller.leaveVoicemail('tool'),
      }),
    );
  }

  // agents-js' end_call: lets the goodbye play out, then shuts the session down; hanging up (deleting the room)
  // and reporting happen when the session closes, the same way for every ending.
  tools.push(
    beta.createEndCallTool({
      deleteRoom: false,
      onToolCalled: () => controller.onEndCallTool(),
    }),
  );

  const destinationNames = Object.keys(profile.transfer.destinations);
  const [firstDestination, ...otherDestinations] = destinationNames;
  if (firstDestination !== undefined) {
    tools.push(
      llm.tool({
        name: TOOL_NAMES.transfer,
        description:
          'Transfers the caller to a person or department. Call it after the caller asked for a person or chose a menu option. ' +
          'Announce nothing yourself; the tool does. On failure it returns an error: tell the caller and keep helping.',
        parameters: z.object({
          destination: z
            .enum([firstDestination, ...otherDestinations])
            .optional()
            .describe(`Where to transfer; "${profile.transfer.defaultDestination ?? firstDestination}" when not given.`),
        }),
        execute: async ({ destination }) => controller.transfer(destination),
      }),
    );
  }

  if (controller.outbound && !controller.hasDtmfSender) {
    // In a LiveKit room: agents-js' own tool publishes the tones as the agent participant.
    tools.push(beta.sendDtmfEvents);
  } else if (controller.outbound) {
    tools.push(
      llm.tool({
        name: TOOL_NAMES.sendDtmf,
        description: 'Sends keypad tones (DTMF) to an automated phone menu (IVR) that asks you to press keys.',
        parameters: z.object({ events: z.array(z.enum(DTMF_KEYS)).min(1).describe('The keys to press, in order.') }),
        execute: async ({ events }) => controller.sendDtmf(events),
      }),
    );
  }

  if (profile.surveyQuestions.length > 0) {
    tools.push(
      llm.tool({
        name: TOOL_NAMES.recordAnswer,
        description: "Records the callee's answer to one survey question. Call it once per question, right after the answer.",
        parameters: z.object({
          question: z.string().describe('The survey question (its text or its number).'),
          answer: z.string().describe("The callee's answer, in their words."),
        }),
        execute: async ({ question, answer }) => controller.recordAnswer(question, answer),
      }),
    );
  }
  return tools;
}

/** The voice.Agent of one call: the profile's instructions (placeholders filled) plus the call tools. */
export function buildCallAgent(controller: CallController): voice.Agent {
  return new voice.Agent({
    instructions: callInstructions(controller.profile, controller.outbound),
    tools: callTools(controller),
  });
}
