/** The shapes of a request to Girder as the client takes it: JSON requests and the two transports' sends. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { DirectRequestBody } from './direct-request.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
export type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  /** A JSON body (application/json). */
  json?: unknown;
  /** A form body (application/x-www-form-urlencoded), e.g. to keep a secret out of the URL. */
  form?: Record<string, string>;
  /** Any other body (made again for each attempt); set its content-type in `headers`. */
  body?: () => string | Buffer | Readable;
  /**
   * A long body from reused buffers, sent on a connection of its own (direct-request.ts) instead
   * of through undici; it may be written more than once (after a re-login). Overrides `body`.
   */
  upload?: DirectRequestBody;
  /** Close the connection after this exchange (Girder resets it after refusing a body). */
  reset?: boolean;
  headers?: Record<string, string>;
  /** Retry on socket errors, timeouts and 5xx. Default: true for GET and HEAD only. */
  idempotent?: boolean;
  /** Send the Girder token (default true). */
  auth?: boolean;
  signal?: AbortSignal;
}

export interface JsonResponse {
  status: number;
  headers: IncomingHttpHeaders;
  data: unknown;
}

/** One raw HTTP exchange, for downloads and uploads that handle the body themselves. */
export interface SendOptions {
  method: HttpMethod;
  /** A path under the API root ('/file/x/download'), or an absolute URL, which is sent without the token. */
  path: string;
  query?: Query;
  headers?: Record<string, string>;
  /** Makes the body; called again when the request is re-sent after a re-login. */
  body?: () => string | Buffer | Readable;
  /** Send the Girder token (default true for API paths, never for absolute URLs). */
  auth?: boolean;
  /** Close the connection after this exchange (Girder resets it after refusing a body). */
  reset?: boolean;
  signal?: AbortSignal;
}

/** One request on a connection of its own (sendDirect). */
export interface DirectSendOptions {
  /** Default GET. */
  method?: 'GET' | 'POST' | 'PUT';
  /** A path under the API root, or an absolute URL, which is sent without the token. */
  path: string;
  query?: Query;
  headers?: Record<string, string>;
  body?: DirectRequestBody;
  /** Send the Girder token (default true for API paths, never for absolute URLs). */
  auth?: boolean;
  signal?: AbortSignal;
}
