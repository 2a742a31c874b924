import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A loopback HTTP server answering every request `{}` (a Twirp success), counting the TCP connections it accepts. */
export interface CountingServer {
  url: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Closes it and every connection still open. */
  close(): Promise<void>;
}

/** Starts a CountingServer on a free loopback port: for tests of how many connections a client opens. */
export async function startCountingServer(): Promise<CountingServer> {
  let connections = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      res.end('{}');
    });
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
