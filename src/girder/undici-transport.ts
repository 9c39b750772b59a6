/** The pooled transport: an undici agent, for JSON requests and short bodies. */
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import type { Transport, TransportRequest } from './transport.js';

export interface UndiciRequest extends TransportRequest {
  readonly body?: string | Buffer | Readable | undefined;
  /** Close the connection after this exchange (Girder resets it after refusing a body). */
  readonly reset: boolean;
}

export class UndiciTransport implements Transport<UndiciRequest, Dispatcher.ResponseData> {
  private readonly agent: Agent;

  constructor(private readonly timeoutMs: number, ca: string[] | undefined) {
    const connect: { timeout: number; ca?: string[] } = { timeout: timeoutMs };
    if (ca !== undefined) connect.ca = ca;
    this.agent = new Agent({
      connections: 32,
      pipelining: 1,
      keepAliveTimeout: 4_000, // below uvicorn's 5 s, so the server never closes a socket we are about to reuse
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect,
    });
  }

  send(request: UndiciRequest): Promise<Dispatcher.ResponseData> {
    return this.agent.request({
      origin: request.origin,
      path: request.path,
      method: request.method,
      headers: request.headers,
      body: request.body,
      reset: request.reset,
      signal: request.signal,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  async drop(response: Dispatcher.ResponseData): Promise<void> {
    await response.body.dump().catch(() => undefined);
  }

  signalFor(signal: AbortSignal | undefined): AbortSignal | undefined {
    return signal;
  }

  async close(graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    try {
      if ((await Promise.race([this.agent.close().then(() => 'closed' as const), late])) === 'late') await this.agent.destroy();
    } finally {
      clearTimeout(timer);
    }
  }
}
