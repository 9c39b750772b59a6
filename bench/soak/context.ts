// What the soak's workers share.
import type { Model } from './model.js';
import type { SoakOptions } from './options.js';
import type { Random } from './random.js';
import type { Sources } from './sources.js';
import type { Tally } from './tally.js';

export interface SoakContext {
  opts: SoakOptions;
  /** Absolute mountpoint. */
  mnt: string;
  model: Model;
  random: Random;
  sources: Sources;
  tally: Tally;
  /** performance.now() after which no new operation starts. */
  deadline: number;
  /** Set on Ctrl-C or a fatal error. */
  stopped: boolean;
  /** Uploads pending at the last status sample. */
  pendingUploads: number;
  log(message: string): void;
  /** What the mount and Girder say of a path now, and the daemon's recent log lines about it (a mismatch's story). */
  inspect(path: string): Promise<string>;
}

/** Per-operation limit: a stuck operation is a failure, not a hung soak. */
export const OP_TIMEOUT_MS = 10 * 60_000;

export function running(ctx: SoakContext): boolean {
  return !ctx.stopped && performance.now() < ctx.deadline;
}

/** A pause of 0..2x the mean, that ends early when the soak stops. */
export async function pause(ctx: SoakContext, meanMs = ctx.opts.pauseMs): Promise<void> {
  const ms = ctx.random.next() * 2 * meanMs;
  const until = performance.now() + ms;
  while (running(ctx) && performance.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(250, until - performance.now())));
  }
}
