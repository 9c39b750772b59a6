/**
 * What the upload queue makes of a failed attempt: the one place that sorts failures. Everything
 * that can go away waits (the queue retries it with capped backoff); only a failure Girder can
 * never get past takes the job out of the queue, and that is decided by checking the target
 * ('check-target'), never by an error message alone. Self-contained so it can move to src/girder
 * when the failure taxonomy is unified there.
 */
import { GirderError, errorMessage } from '../../errors.js';
import { isMissing } from './retry-policy.js';
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

/** Socket-level failures that escaped as plain errors (GirderErrors carry status 0 instead). */
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/** The filesystem assetstore's answer when its disk is full or unreachable (filesystem_assetstore_adapter.py). */
const ASSETSTORE_FULL = /^Assetstore is unavailable or has insufficient free space/;
/** The user_quota plugin, at upload start and at finalize. */
const QUOTA_EXCEEDED = /^Upload (would exceed|exceeded) file storage quota/;

/** Sort a failed attempt of the job whose data file is `tempPath`. */
export function classifyUploadFailure(err: unknown, tempPath: string): UploadFailure {
  if (err instanceof GirderError) return classifyGirderError(err);
  if (err instanceof NameInTheWayError) {
    return { action: 'wait', cause: 'name', scope: 'job', reason: `${err.message}; rename or remove it` };
  }
  const code = codeOf(err);
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return { action: 'wait', cause: 'server', scope: 'server', reason: `cannot reach Girder (${code})` };
  }
  const path = (err as { path?: unknown } | null)?.path;
  if (code === 'ENOENT' && path === tempPath) {
    return { action: 'no-data', reason: `its data file ${tempPath} is missing` };
  }
  if (code !== undefined) return { action: 'wait', cause: 'other', scope: 'job', reason: `cannot read its data file (${errorMessage(err)})` };
  return { action: 'wait', cause: 'other', scope: 'job', reason: errorMessage(err) };
}

function classifyGirderError(err: GirderError): UploadFailure {
  const said = girderSaid(err);
  if (err.status === 400 && err.message.startsWith('Invalid upload id')) {
    return { action: 'restart-upload', reason: 'Girder forgot the upload; starting it again' };
  }
  // A login refused (API key deactivated: 400 "Invalid API key.") or a token refused after one.
  if (err.type === 'auth' || err.status === 401) {
    return { action: 'wait', cause: 'auth', scope: 'server', reason: `Girder refused the credentials (${err.status}: ${said})` };
  }
  if (err.status === 403) return { action: 'wait', cause: 'access', scope: 'job', reason: `Girder denied access (403: ${said})` };
  if (isMissing(err)) return { action: 'check-target', reason: said };
  if (err.status === 400 && ASSETSTORE_FULL.test(said)) {
    return { action: 'wait', cause: 'storage', scope: 'server', reason: `Girder's storage is full or unavailable (400: ${said})` };
  }
  if (err.status === 400 && QUOTA_EXCEEDED.test(said)) {
    return { action: 'wait', cause: 'storage', scope: 'server', reason: `the storage quota is used up (400: ${said})` };
  }
  if (err.status === 0) return { action: 'wait', cause: 'server', scope: 'server', reason: said };
  if (err.status >= 500) return { action: 'wait', cause: 'server', scope: 'server', reason: `Girder failed (${err.status}: ${said})` };
  if (err.type === 'malformed') return { action: 'wait', cause: 'server', scope: 'server', reason: `Girder's answer could not be read (${said})` };
  return { action: 'wait', cause: 'other', scope: 'job', reason: `Girder refused the upload (${err.status}: ${said})` };
}

/** Girder's own words: the message of the answer a login error wraps, else the error's. */
function girderSaid(err: GirderError): string {
  return err.type === 'auth' && err.cause instanceof GirderError ? err.cause.message : err.message;
}

function codeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
