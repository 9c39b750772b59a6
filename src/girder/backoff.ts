/** Exponential backoff with jitter between retries. */

const MAX_DELAY_MS = 10_000;

/**
 * Delay before retry number `attempt` (1 for the first retry): base·2^(attempt-1) plus up to 50 %
 * jitter, never above `maxMs`.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs = MAX_DELAY_MS): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(Math.min(maxMs, exp * (1 + Math.random() * 0.5)));
}

/** Sleep `ms`, rejecting with the signal's reason if it aborts first. */
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
