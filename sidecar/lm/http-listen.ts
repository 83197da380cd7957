import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens (port 0 picks a free port) and resolves to the OpenAI base URL, e.g. http://127.0.0.1:PORT/v1. */
export async function listenOpenAi(server: http.Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${shownHost}:${address.port}/v1`;
}

/** Stops listening and drops open (keep-alive, streaming) connections instead of waiting for them. */
export async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
