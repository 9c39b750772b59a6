/** The client's counters, and the requests still waiting for their answer's head. */

export interface ClientStats {
  requests: number;
  errors: number;
  retries: number;
  bytesDownloaded: number;
  bytesUploaded: number;
}

/** A request sent and not yet answered, as started() returns it. */
export interface Waiting {
  readonly method: string;
  readonly path: string;
  readonly startedAt: number;
}

export class RequestStats {
  private readonly counters: ClientStats = { requests: 0, errors: 0, retries: 0, bytesDownloaded: 0, bytesUploaded: 0 };
  private readonly waiting = new Set<Waiting>();

  /** Count a request sent to `path` (no query string) and track it until finished(). */
  started(method: string, path: string): Waiting {
    this.counters.requests++;
    const waiting = { method, path, startedAt: Date.now() };
    this.waiting.add(waiting);
    return waiting;
  }

  /** Its answer's head came, or it failed. */
  finished(waiting: Waiting): void {
    this.waiting.delete(waiting);
  }

  countError(): void {
    this.counters.errors++;
  }

  countRetry(): void {
    this.counters.retries++;
  }

  countDownloaded(bytes: number): void {
    this.counters.bytesDownloaded += bytes;
  }

  countUploaded(bytes: number): void {
    this.counters.bytesUploaded += bytes;
  }

  snapshot(): ClientStats {
    return { ...this.counters };
  }

  /** Requests waiting for their answer's head, oldest first (at most `max`). */
  inFlight(max: number): Array<{ method: string; path: string; ageMs: number }> {
    const now = Date.now();
    return [...this.waiting].slice(0, max).map((r) => ({ method: r.method, path: r.path, ageMs: now - r.startedAt }));
  }
}
