/**
 * A full garbage collection each time the V8 heap has grown by HEAP_SLACK_BYTES past what the last
 * one kept. V8 itself waits until the old space has doubled (young-generation.ts; up to 4x by its
 * own default): in a 30-minute soak the heap held 60 MiB for 33 in use, the largest share of the
 * daemon's RSS above its 200 MiB target. An absolute slack bounds that whatever the live size.
 * The collections are spaced so they take at most 1/MIN_SPACING_FACTOR of the time (a full
 * collection of the daemon's 30-50 MiB heap takes 10-40 ms), and stop when the heap is quiet.
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './log.js';

const MiB = 1024 * 1024;
export const HEAP_SLACK_BYTES = 16 * MiB;
export const CHECK_EVERY_MS = 1000;
/** The next collection waits at least this many times as long as the last one took. */
const MIN_SPACING_FACTOR = 50;

export interface HeapCollectorOptions {
  readonly slackBytes?: number;
  readonly everyMs?: number;
}

export interface HeapCollector {
  /** Full collections made so far. */
  readonly collections: () => number;
  readonly stop: () => void;
}

/** V8's `gc()`, made available to this process (the `--expose-gc` flag, set now). */
function fullCollection(): (() => void) | undefined {
  v8.setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  if (typeof gc !== 'function') return undefined;
  return () => {
    gc();
  };
}

function usedHeap(): number {
  return v8.getHeapStatistics().used_heap_size;
}

export function collectHeapWhenGrown(logger: Logger, opts: HeapCollectorOptions = {}): HeapCollector {
  const slack = opts.slackBytes ?? HEAP_SLACK_BYTES;
  const gc = fullCollection();
  let collections = 0;
  const collected = (): number => collections;
  if (gc === undefined) {
    logger.debug('no full garbage collection on demand here: the heap grows as V8 lets it');
    return { collections: collected, stop: () => undefined };
  }
  let kept = usedHeap();
  let notBefore = 0;
  const timer = setInterval(() => {
    const used = usedHeap();
    if (used < kept) kept = used; // V8 collected on its own
    const now = performance.now();
    if (used - kept < slack || now < notBefore) return;
    gc();
    const took = performance.now() - now;
    collections++;
    kept = usedHeap();
    notBefore = now + took * MIN_SPACING_FACTOR;
    if (logger.isLevelEnabled('trace')) logger.trace({ before: used, after: kept, ms: Math.round(took) }, 'heap collected');
  }, opts.everyMs ?? CHECK_EVERY_MS);
  timer.unref();
  return { collections: collected, stop: () => clearInterval(timer) };
}
