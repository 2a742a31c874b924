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

/** Waits briefly for sockets to finish closing, then throws if more remain than before the test file started. */
export async function expectNoLeakedHandles(baseline: number, settleMs = 1000): Promise<void> {
  const deadline = Date.now() + settleMs;
  while (openNetworkHandles().length > baseline && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const open = openNetworkHandles();
  if (open.length > baseline) {
    throw new Error(
      `test left ${open.length - baseline} network handle(s) open: ${open.join(', ')}; open now: ${describeNetworkHandles().join('; ')}`,
    );
  }
}
