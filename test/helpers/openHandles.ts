/** Network handles (sockets, servers) open in this test process right now, by resource type. */
export function openNetworkHandles(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'PipeWrap');
}

/** Waits briefly for sockets to finish closing, then throws if more remain than before the test file started. */
export async function expectNoLeakedHandles(baseline: number, settleMs = 1000): Promise<void> {
  const deadline = Date.now() + settleMs;
  while (openNetworkHandles().length > baseline && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const open = openNetworkHandles();
  if (open.length > baseline) {
    throw new Error(`test left ${open.length - baseline} network handle(s) open: ${open.join(', ')}`);
  }
}
