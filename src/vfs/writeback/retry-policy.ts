import { GirderError } from '../../errors.js';
import { backoffDelay } from '../../girder/backoff.js';

export { sleep } from '../../girder/backoff.js';

/** Socket-level failures that a later attempt may get past. */
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/**
 * Worth retrying: no answer, a 5xx, a 2xx whose body could not be decoded (a garbled answer says
 * nothing about the upload, which resumes from the server's offset), or a network error that
 * escaped as a plain Error.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof GirderError) return err.isTransient || (err.type === 'malformed' && err.status >= 200 && err.status < 300);
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Girder forgot an upload id (finished, cancelled or expired): start that upload afresh. */
export function isLostUpload(err: unknown): boolean {
  return err instanceof GirderError && err.isMissing && err.message.startsWith('Invalid upload id');
}

/** Girder says the object of this kind is gone (deleted meanwhile). */
export function isMissing(err: unknown, model?: 'folder' | 'item' | 'file'): boolean {
  return err instanceof GirderError && err.isMissing && (model === undefined || err.message.startsWith(`Invalid ${model} id`));
}

/** Capped exponential backoff with jitter; attempt 1 is the first retry. */
export function retryDelay(attempt: number, range: { min: number; max: number }): number {
  return backoffDelay(attempt, range.min, range.max);
}
