/**
 * Whether the Girder server can be reached. A failure that says it may be away (no connection, no
 * answer in time, a 5xx) makes it suspect, and one probe (GET /system/version) decides: answered,
 * it is up (one slow request is not an outage); not answered, it is down. While it is down no
 * request is sent: each fails at once with an 'offline' GirderError, and one probe at a time
 * (every second, backing off to ten) finds when it is back. Going away and coming back are logged
 * once each; listeners hear of the return (to retry what waits for the server).
 */
import { errorMessage } from '../errors.js';
import { GirderError, signalsServerAway } from './girder-error.js';
import type { Logger } from '../log.js';

export type HealthState = 'up' | 'suspect' | 'down';

export interface ServerHealthOptions {
  /** host[:port], for messages. */
  readonly host: string;
  /** Resolves when the server answered like Girder within `timeoutMs`; rejects (with why) otherwise. */
  readonly probe: (timeoutMs: number) => Promise<void>;
  /** How long a probe may take before it counts as no answer. */
  readonly probeTimeoutMs: number;
  /** Pause between probes while down: `min` doubling up to `max` (default 1 s to 10 s). */
  readonly probeIntervalMs?: { readonly min: number; readonly max: number };
  readonly logger: Logger;
}

/** What `status` shows. */
export interface HealthSnapshot {
  readonly reachable: boolean;
  /** ISO time the server was found unreachable. */
  readonly unreachableSince?: string;
  /** Why: the failure that made it suspect, or the last probe's. */
  readonly reason?: string;
}


export class ServerHealth {
  private current: HealthState = 'up';
  private watching = false;
  private closed = false;
  private since = 0;
  private why = '';
  /** The probe that decides a suspicion, while it runs. */
  private verdict: Promise<HealthState> | null = null;
  /** Bumped on every change of state: a probe that answers for an older state is ignored. */
  private epoch = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextDelay: number;
  private readonly interval: { readonly min: number; readonly max: number };
  private readonly reachableListeners = new Set<() => void>();

  constructor(private readonly opts: ServerHealthOptions) {
    this.interval = opts.probeIntervalMs ?? { min: 1000, max: 10_000 };
    this.nextDelay = this.interval.min;
  }

  get state(): HealthState {
    return this.current;
  }

  get isDown(): boolean {
    return this.current === 'down';
  }

  /** Start judging failures (until then, and after close(), every failure is just a failure). */
  watch(): void {
    if (!this.closed) this.watching = true;
  }

  /** Stop probing; the server counts as up again (nothing is refused any more). */
  close(): void {
    this.closed = true;
    this.watching = false;
    clearTimeout(this.timer);
    this.epoch++;
    this.current = 'up';
    this.verdict = null;
  }

  /** A request failed; when the failure says the server may be away, find out whether it is. */
  failed(err: GirderError): void {
    if (!this.watching || this.current !== 'up' || !signalsServerAway(err)) return;
    this.current = 'suspect';
    this.since = Date.now();
    this.why = err.message;
    const epoch = ++this.epoch;
    this.verdict = this.probeOnce().then(
      () => {
        if (epoch === this.epoch) this.becomeUp();
        return this.current;
      },
      (probeErr: unknown) => {
        if (epoch === this.epoch) this.becomeDown(errorMessage(probeErr));
        return this.current;
      },
    );
  }

  /** An answer below 500 came: the server is there. */
  answered(): void {
    if (this.current !== 'up') this.becomeUp();
  }

  /** The state once a running probe has decided (at once when none runs). */
  settled(): Promise<HealthState> {
    return this.current === 'suspect' && this.verdict !== null ? this.verdict : Promise.resolve(this.current);
  }

  /** The error for a request not sent because the server is down. */
  offlineError(): GirderError {
    return new GirderError(`Girder at ${this.opts.host} is unreachable since ${new Date(this.since).toISOString()} (${this.why})`, 0, 'offline');
  }

  /** Call `listener` each time the server is reachable again after being down; returns its removal. */
  onReachable(listener: () => void): () => void {
    this.reachableListeners.add(listener);
    return () => this.reachableListeners.delete(listener);
  }

  snapshot(): HealthSnapshot {
    if (this.current !== 'down') return { reachable: true };
    return { reachable: false, unreachableSince: new Date(this.since).toISOString(), reason: this.why };
  }

  private becomeDown(why: string): void {
    this.current = 'down';
    this.verdict = null;
    this.epoch++;
    this.nextDelay = this.interval.min;
    this.opts.logger.warn({ host: this.opts.host, since: new Date(this.since).toISOString(), reason: this.why, probe: why },
      'Girder is unreachable: serving what is cached, failing the rest at once, until it is back');
    this.scheduleProbe();
  }

  private becomeUp(): void {
    const wasDown = this.current === 'down';
    this.current = 'up';
    this.verdict = null;
    this.epoch++;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!wasDown) return;
    this.opts.logger.info({ host: this.opts.host, downMs: Date.now() - this.since }, 'Girder is reachable again');
    for (const listener of [...this.reachableListeners]) {
      try {
        listener();
      } catch (err) {
        this.opts.logger.error({ err: errorMessage(err) }, 'a listener of the server coming back failed');
      }
    }
  }

  private probeOnce(): Promise<void> {
    return Promise.resolve().then(() => this.opts.probe(this.opts.probeTimeoutMs));
  }

  /** One probe after the current delay; the next one, if needed, only once it has answered. */
  private scheduleProbe(): void {
    const epoch = this.epoch;
    const delay = this.nextDelay;
    this.nextDelay = Math.min(this.interval.max, this.nextDelay * 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (epoch !== this.epoch) return;
      void this.probeOnce().then(
        () => {
          if (epoch === this.epoch) this.becomeUp();
        },
        () => {
          if (epoch === this.epoch) this.scheduleProbe();
        },
      );
    }, delay);
    this.timer.unref();
  }
}
