/**
 * What the upload queue makes of a failed attempt: the one place that sorts failures. Everything
 * that can go away waits (the queue retries it with capped backoff); only a failure Girder can
 * never get past takes the job out of the queue, and that is decided by checking the target
 * ('check-target'), never by an error message alone. It reads only the failure's kind, decoded
 * once in src/girder/girder-error.ts.
 */
import { errorMessage } from '../../errors.js';
import { asGirderError } from '../../girder/failure.js';
import { GirderError, isTransient } from '../../girder/girder-error.js';
import { NameInTheWayError } from './types.js';

/** Why an upload waits, in a word (status and the re-login hook use it). */
export type WaitCause = 'auth' | 'access' | 'server' | 'storage' | 'name' | 'other';

export type UploadFailure =
  /**
   * Try again later. `scope` 'server': the whole server refuses (credentials, network, 5xx, full
   * storage), so the queue holds every upload and probes with one; 'job': this upload only.
   */
  | { readonly action: 'wait'; readonly cause: WaitCause; readonly scope: 'server' | 'job'; readonly reason: string }
  /** Girder forgot the upload id (finished, cancelled or expired): start the upload afresh. */
  | { readonly action: 'restart-upload'; readonly reason: string }
  /** Girder says an object is gone: wait, unless the job's target itself was deleted (checked by the caller). */
  | { readonly action: 'check-target'; readonly reason: string }
  /** The job's own data file is gone from the cache directory: there is nothing left to upload. */
  | { readonly action: 'no-data'; readonly reason: string };

/** Sort a failed attempt of the job whose data file is `tempPath`. */
export function classifyUploadFailure(err: unknown, tempPath: string): UploadFailure {
  const girder = asGirderError(err);
  if (girder !== undefined) return classifyGirderError(girder);
  if (err instanceof NameInTheWayError) {
    return { action: 'wait', cause: 'name', scope: 'job', reason: `${err.message}; rename or remove it` };
  }
  const { code, path } = (err ?? {}) as { code?: unknown; path?: unknown };
  if (code === 'ENOENT' && path === tempPath) {
    return { action: 'no-data', reason: `its data file ${tempPath} is missing` };
  }
  if (typeof code === 'string') return { action: 'wait', cause: 'other', scope: 'job', reason: `cannot read its data file (${errorMessage(err)})` };
  return { action: 'wait', cause: 'other', scope: 'job', reason: errorMessage(err) };
}

function classifyGirderError(err: GirderError): UploadFailure {
  const said = girderSaid(err);
  switch (err.kind) {
    case 'lost-upload':
      return { action: 'restart-upload', reason: 'Girder forgot the upload; starting it again' };
    case 'auth':
      // A login refused (API key deactivated: 400 "Invalid API key.") or a token refused after one.
      return { action: 'wait', cause: 'auth', scope: 'server', reason: `Girder refused the credentials (${err.status}: ${said})` };
    case 'forbidden':
      return { action: 'wait', cause: 'access', scope: 'job', reason: `Girder denied access (403: ${said})` };
    case 'missing':
      return { action: 'check-target', reason: said };
    case 'storage-full':
      return { action: 'wait', cause: 'storage', scope: 'server', reason: `Girder's storage is full or unavailable (400: ${said})` };
    case 'quota-exceeded':
      return { action: 'wait', cause: 'storage', scope: 'server', reason: `the storage quota is used up (400: ${said})` };
    case 'server-error':
      return { action: 'wait', cause: 'server', scope: 'server', reason: `Girder failed (${err.status}: ${said})` };
    case 'malformed':
      return { action: 'wait', cause: 'server', scope: 'server', reason: `Girder's answer could not be read (${said})` };
    default:
      // No answer (network, timeout, offline, tls): the server may come back.
      if (isTransient(err)) return { action: 'wait', cause: 'server', scope: 'server', reason: said };
      return { action: 'wait', cause: 'other', scope: 'job', reason: `Girder refused the upload (${err.status}: ${said})` };
  }
}

/** Girder's own words: the message of the answer a login error wraps, else the error's. */
function girderSaid(err: GirderError): string {
  return err.kind === 'auth' && err.cause instanceof GirderError ? err.cause.message : err.message;
}
