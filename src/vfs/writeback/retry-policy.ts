import { backoffDelay } from '../../girder/backoff.js';

export { sleep } from '../../girder/backoff.js';

/** Capped exponential backoff with jitter; attempt 1 is the first retry. */
export function retryDelay(attempt: number, range: { min: number; max: number }): number {
  return backoffDelay(attempt, range.min, range.max);
}
