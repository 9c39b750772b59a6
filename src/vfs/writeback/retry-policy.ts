import { GirderError } from '../../errors.js';
import { backoffDelay } from '../../girder/backoff.js';

export { sleep } from '../../girder/backoff.js';

/**
 * Girder says the object of this kind is gone (deleted meanwhile). It says so two ways: 400
 * "Invalid folder id (<id>)." for an id in the route, and 400 "No such folder: <id>" for one a
 * model loads itself (e.g. GET /item?folderId=<deleted>).
 */
export function isMissing(err: unknown, model?: 'folder' | 'item' | 'file'): boolean {
  if (!(err instanceof GirderError) || err.status !== 400) return false;
  const kind = model ?? '(folder|item|file|upload)';
  return new RegExp(`^(Invalid ${kind} id \\(|No such ${kind}: )`).test(err.message);
}

/** Capped exponential backoff with jitter; attempt 1 is the first retry. */
export function retryDelay(attempt: number, range: { min: number; max: number }): number {
  return backoffDelay(attempt, range.min, range.max);
}
