/**
 * The one retry loop of girder/: a policy says which failures are worth another attempt, how many
 * in a row are allowed and how long to wait; `retrying` runs it around a call, and `RetryCount`
 * is the same count for a loop driven by events (a range stream's cut bodies).
 */

export interface RetryPolicy<E> {
  /** Failures in a row allowed to be retried; the next one is thrown (0: no retry). */
  readonly retries: number;
  /** Whether trying again may help. */
  isRetryable(err: unknown): err is E;
  /** Wait before the next attempt (`failures`: 1 before the first retry); may throw to stop. */
  pause(failures: number, err: E): Promise<void>;
  /** Whether the failed attempt got further than the one before: only fruitless attempts in a row count. */
  progressed?(): boolean;
  /** What to throw once the retries are spent (default: the last failure). */
  exhausted?(err: E, failures: number): unknown;
}

/** Failures in a row under a policy. */
export class RetryCount<E> {
  private failures = 0;

  constructor(private readonly policy: RetryPolicy<E>) {}

  /** After a failed attempt: resolves when the next may start, or throws when none may. */
  async failed(err: unknown): Promise<void> {
    const { policy } = this;
    if (!policy.isRetryable(err)) throw err;
    this.failures = policy.progressed?.() === true ? 1 : this.failures + 1;
    if (this.failures > policy.retries) throw policy.exhausted === undefined ? err : policy.exhausted(err, this.failures);
    await policy.pause(this.failures, err);
  }
}

/** Run `attempt` until it succeeds or the policy gives up (throwing the failure). */
export async function retrying<T, E>(policy: RetryPolicy<E>, attempt: () => Promise<T>): Promise<T> {
  const count = new RetryCount(policy);
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      await count.failed(err);
    }
  }
}
