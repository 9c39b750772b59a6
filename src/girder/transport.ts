/**
 * What the client needs of a way to carry one HTTP exchange to Girder. Two implement it: the
 * undici agent (undici-transport.ts: pooled connections, for JSON requests and short bodies) and
 * connections of our own (socket-transport.ts: for long downloads and uploads, see there why).
 * The client does the rest around either: token and 401, counters, health, error mapping.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** One exchange as a transport carries it: the token, if any, is already in `headers`. */
export interface TransportRequest {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** e.g. https://girder.example.org */
  readonly origin: string;
  /** The path with its query string. */
  readonly path: string;
  readonly headers: Record<string, string>;
  /** As returned by signalFor(). */
  readonly signal?: AbortSignal | undefined;
}

/** An answer's head; its body is the transport's own, which the caller must consume or drop. */
export interface TransportResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
}

export interface Transport<Req extends TransportRequest, Res extends TransportResponse> {
  /** Send one request; resolves with the answer's head. A failure with no answer rejects as it came. */
  send(request: Req): Promise<Res>;
  /** Throw away an answer nobody will read (a 401 about to be sent again). */
  drop(response: Res): Promise<void> | void;
  /** The signal an exchange listens to: the caller's, and whatever ends this transport's connections. */
  signalFor(signal: AbortSignal | undefined): AbortSignal | undefined;
  /** Let running exchanges finish for at most `graceMs`, then end every connection. */
  close(graceMs: number): Promise<void>;
}
