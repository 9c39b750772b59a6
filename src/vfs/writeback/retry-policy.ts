import { GirderError } from '../../errors.js';

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

/** Capped exponential backoff with up to 25 % jitter; attempt 1 is the first retry. */
export function retryDelay(attempt: number, range: { min: number; max: number }): number {
  const base = Math.min(range.max, range.min * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(Math.min(range.max, base * (1 + Math.random() * 0.25)));
}

/** Sleep, rejecting with the signal's reason if it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
