import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SECOND } from '../../src/core/time.js';
import { startProcess, waitUntilReady, type ManagedProcess } from './processes.js';

/** One RTP packet captured on its way to the far end. */
export interface RtpPacket {
  /** Capture time, epoch ms. */
  at: number;
  payloadType: number;
  marker: boolean;
  /** RTP timestamp and SSRC (0 where a test builds a packet by hand). */
  timestamp?: number;
  ssrc?: number;
  payload: Buffer;
}

export interface RtpCapture {
  file: string;
  process: ManagedProcess;
  /** Stops dumpcap (it flushes on SIGTERM) and returns the RTP packets it saw. */
  stop(): Promise<RtpPacket[]>;
}

/**
 * Captures UDP to `port` inside the namespace with dumpcap (Debian tshark's capture engine). Both namespace
 * addresses are local, so the stack's RTP to the far end crosses `lo`, not the veth pair.
 */
export async function startRtpCapture(options: { port: number; workDir: string; iface?: string }): Promise<RtpCapture> {
  const file = join(options.workDir, `rtp-to-${options.port}.pcap`);
  const proc = startProcess('dumpcap', 'dumpcap', ['-q', '-P', '-i', options.iface ?? 'lo', '-f', `udp dst port ${options.port}`, '-w', file], {
    logFile: join(options.workDir, `dumpcap-${options.port}.log`),
  });
  await waitUntilReady(proc, async () => existsSync(file), 15 * SECOND, 50);
  return {
    file,
    process: proc,
    stop: async () => {
      await proc.stop();
      return existsSync(file) ? parseRtpPcap(readFileSync(file)) : [];
    },
  };
}

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_LINUX_SLL = 113;
const ETHERTYPE_IPV4 = 0x0800;

/** Reads a classic pcap file (little-endian, Ethernet or Linux cooked) and returns its IPv4/UDP/RTP packets. */
export function parseRtpPcap(data: Buffer): RtpPacket[] {
  if (data.length < 24) return [];
  const magic = data.readUInt32LE(0);
  if (magic !== PCAP_MAGIC_US && magic !== PCAP_MAGIC_NS) throw new Error(`not a little-endian pcap file (magic ${magic.toString(16)})`);
  const fractionPerMs = magic === PCAP_MAGIC_NS ? 1e6 : 1e3;
  const linkType = data.readUInt32LE(20);
  const out: RtpPacket[] = [];
  let offset = 24;
  while (offset + 16 <= data.length) {
    const seconds = data.readUInt32LE(offset);
    const fraction = data.readUInt32LE(offset + 4);
    const length = data.readUInt32LE(offset + 8);
    const frame = data.subarray(offset + 16, offset + 16 + length);
    offset += 16 + length;
    let ip: number;
    if (linkType === LINKTYPE_ETHERNET) {
      if (frame.length < 14 || frame.readUInt16BE(12) !== ETHERTYPE_IPV4) continue;
      ip = 14;
    } else if (linkType === LINKTYPE_LINUX_SLL) {
      if (frame.length < 16 || frame.readUInt16BE(14) !== ETHERTYPE_IPV4) continue;
      ip = 16;
    } else {
      throw new Error(`unsupported pcap link type ${linkType}`);
    }
    const ihl = ((frame[ip] ?? 0) & 0x0f) * 4;
    const udp = ip + ihl;
    const rtp = udp + 8;
    if (frame.length < rtp + 12 || ((frame[rtp] ?? 0) & 0xc0) !== 0x80) continue; // RTP version 2
    const csrcCount = (frame[rtp] ?? 0) & 0x0f;
    const hasExtension = ((frame[rtp] ?? 0) & 0x10) !== 0;
    let payloadStart = rtp + 12 + csrcCount * 4;
    if (hasExtension && frame.length >= payloadStart + 4) payloadStart += 4 + frame.readUInt16BE(payloadStart + 2) * 4;
    out.push({
      at: seconds * SECOND + fraction / fractionPerMs,
      payloadType: (frame[rtp + 1] ?? 0) & 0x7f,
      marker: ((frame[rtp + 1] ?? 0) & 0x80) !== 0,
      timestamp: frame.readUInt32BE(rtp + 4),
      ssrc: frame.readUInt32BE(rtp + 8),
      payload: frame.subarray(payloadStart),
    });
  }
  return out;
}

/** G.711 µ-law byte → 16-bit linear sample (ITU-T G.711). */
function muLawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
  return u & 0x80 ? -magnitude : magnitude;
}

/** PCMU (payload type 0) packets → 8 kHz 16-bit little-endian PCM, in capture order. */
export function decodePcmu(packets: RtpPacket[]): Buffer {
  const audio = packets.filter((p) => p.payloadType === 0);
  const out = Buffer.alloc(audio.reduce((n, p) => n + p.payload.length * 2, 0));
  let i = 0;
  for (const p of audio) {
    for (const byte of p.payload) {
      out.writeInt16LE(muLawToLinear(byte), i);
      i += 2;
    }
  }
  return out;
}

/** RMS of a packet's µ-law payload as 16-bit samples. */
export function packetRms(packet: RtpPacket): number {
  if (packet.payload.length === 0) return 0;
  let sum = 0;
  for (const byte of packet.payload) sum += muLawToLinear(byte) ** 2;
  return Math.sqrt(sum / packet.payload.length);
}
