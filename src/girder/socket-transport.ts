/**
 * The transport of long downloads and uploads: one connection of our own per request
 * (direct-request.ts), whose bodies move through reused buffers. It exists because undici, like
 * node's socket streams, hands out a new 64 KiB buffer for every socket read: at hundreds of MB/s
 * the garbage collection of those buffers cost more CPU than the transfer itself
 * (bench/cases/transport-read.ts reads the same file through both transports and shows it).
 */
import { setMaxListeners } from 'node:events';
import { directRequest, type DirectRequestBody, type DirectResponse } from './direct-request.js';
import type { Transport, TransportRequest } from './transport.js';

export interface SocketRequest extends TransportRequest {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly body?: DirectRequestBody | undefined;
  /** Instead of the transport's timeout (a probe waits less). */
  readonly timeoutMs?: number;
}

export class SocketTransport implements Transport<SocketRequest, DirectResponse> {
  /** Aborted by close(): ends every connection at once (a streamed read may wait on its reader for ever). */
  private readonly closing = new AbortController();

  constructor(private readonly timeoutMs: number, private readonly ca: string[] | undefined) {
    // Each connection listens to it while open; past 10 Node would warn of a leak.
    setMaxListeners(0, this.closing.signal);
  }

  send(request: SocketRequest): Promise<DirectResponse> {
    return directRequest({
      method: request.method,
      url: new URL(request.path, request.origin),
      headers: request.headers,
      timeoutMs: request.timeoutMs ?? this.timeoutMs,
      ca: this.ca,
      signal: request.signal,
      body: request.body,
    });
  }

  drop(response: DirectResponse): void {
    response.body.destroy();
  }

  signalFor(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? this.closing.signal : AbortSignal.any([this.closing.signal, signal]);
  }

  /** Ends every connection at once, whatever the grace. */
  async close(_graceMs: number): Promise<void> {
    this.closing.abort();
  }
}
