import { Socket, Server } from 'node:net';

/** Network handles (sockets, servers) open in this test process right now, by resource type. */
export function openNetworkHandles(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'PipeWrap');
}

/**
 * The open sockets and servers themselves, each as `local -> remote (state)`: what a leak report names, so a socket
 * left open says which server it talks to (a Redis node's port, the simulator's) and how far it got. Reads Node's
 * `process._getActiveHandles()` (undocumented, present in every Node since 0.x; empty where it is missing).
 */
export function describeNetworkHandles(): string[] {
  const source = process as unknown as { _getActiveHandles?: () => unknown[] };
  const handles = source._getActiveHandles?.() ?? [];
  const described: string[] = [];
  for (const handle of handles) {
    if (handle instanceof Socket) {
      const state = handle.connecting ? 'connecting' : handle.destroyed ? 'destroyed' : handle.readyState;
      described.push(`socket ${handle.localAddress ?? '?'}:${handle.localPort ?? '?'} -> ${handle.remoteAddress ?? '?'}:${handle.remotePort ?? '?'} (${state})`);
    } else if (handle instanceof Server) {
      described.push(`server ${JSON.stringify(handle.address())}`);
    }
  }
  return described;
}

/**
 * How long a socket may take to close after the test closed what opened it. Most close within milliseconds; a few
 * have a bounded life of their own past their client's close: ioredis' Cluster reads the slots over a one-off
 * connection it drops when the answer comes or after slotsRefreshTimeout (1 s), and a TCP close waits for the peer's
 * reply. One run in about forty of the sharded pipeline suite found a socket still open 1 s after close (issue 14);
 * a socket still open after this long is a leak.
 */
export const SOCKET_CLOSE_MAX_MS = 5000;
/** After this long a socket still closing is named on stderr (kept for finding which one it is), though not failed. */
const SLOW_CLOSE_NOTICE_MS = 1000;
const POLL_MS = 20;

/**
 * Waits for sockets to finish closing, then throws if more remain than before the test file started (`baseline`),
 * naming each open socket by its ports and state. One that takes over SLOW_CLOSE_NOTICE_MS but closes within
 * `settleMs` is named on stderr and passes.
 */
export async function expectNoLeakedHandles(baseline: number, settleMs = SOCKET_CLOSE_MAX_MS): Promise<void> {
  const started = Date.now();
  let slow: string[] | undefined;
  while (openNetworkHandles().length > baseline && Date.now() - started < settleMs) {
    if (slow === undefined && Date.now() - started >= SLOW_CLOSE_NOTICE_MS) slow = describeNetworkHandles();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const open = openNetworkHandles();
  if (open.length > baseline) {
    throw new Error(
      `test left ${open.length - baseline} network handle(s) open: ${open.join(', ')}; open now: ${describeNetworkHandles().join('; ')}`,
    );
  }
  if (slow !== undefined) {
    process.stderr.write(`a socket took ${Date.now() - started} ms to close after the test closed it; open after ${SLOW_CLOSE_NOTICE_MS} ms: ${slow.join('; ')}\n`);
  }
}
