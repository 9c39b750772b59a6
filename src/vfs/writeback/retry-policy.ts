import { GirderError } from '../../errors.js';
import { backoffDelay } from '../../girder/backoff.js';

export { sleep } from '../../girder/backoff.js';

/** Girder says the object of this kind is gone (deleted meanwhile). */
export function isMissing(err: unknown, model?: 'folder' | 'item' | 'file'): boolean {
  return err instanceof GirderError && err.isMissing && (model === undefined || err.message.startsWith(`Invalid ${model} id`));
}

/** Capped exponential backoff with jitter; attempt 1 is the first retry. */
export function retryDelay(attempt: number, range: { min: number; max: number }): number {
  return backoffDelay(attempt, range.min, range.max);
}
