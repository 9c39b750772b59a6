/**
 * What downloads, range streams and uploads may use of the client (GirderClient implements both):
 * its sends, a few JSON calls, the pause between retries and the counters, not its login,
 * health or connections.
 */
import type { Dispatcher } from 'undici';
import type { Logger } from '../log.js';
import type { DirectResponse } from './direct-request.js';
import type { GirderError } from './girder-error.js';
import type { DirectSendOptions, Query, RequestOptions, SendOptions } from './request-options.js';

/** How a transfer that retries on its own paces and logs its retries. */
interface RetryingTransfer {
  readonly retries: number;
  readonly log: Logger;
  /** Wait before retry number `retry` after `why`, or throw `why` when the server was found unreachable. */
  pauseBeforeRetry(retry: number, why: GirderError, signal?: AbortSignal): Promise<void>;
}

/** download.ts and range-stream.ts: GETs of file bodies through either transport. */
export interface DownloadClient extends RetryingTransfer {
  readonly apiUrl: string;
  send(options: SendOptions): Promise<Dispatcher.ResponseData>;
  sendDirect(options: DirectSendOptions): Promise<DirectResponse>;
  /** A body as text; a cut body becomes a network GirderError. */
  readText(res: { body: { text(): Promise<string> } }, signal: AbortSignal | undefined): Promise<string>;
  /** A transport failure (not an answer) as a GirderError naming the host. */
  transportError(err: unknown): GirderError;
  countError(): void;
  countDownloaded(bytes: number): void;
}

/** upload.ts: JSON calls of the upload protocol, whose chunk bodies go through `upload` options. */
export interface UploadClient extends RetryingTransfer {
  get(path: string, query?: Query, options?: RequestOptions): Promise<unknown>;
  post(path: string, query?: Query, options?: RequestOptions): Promise<unknown>;
  put(path: string, query?: Query, options?: RequestOptions): Promise<unknown>;
  countUploaded(bytes: number): void;
}
