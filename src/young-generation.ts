/**
 * V8's young generation (the "new space" where objects are born) kept at the size it starts
 * with. V8 doubles the new space whenever many objects survive a scavenge, up to two semi-spaces of
 * 16 MiB on 64-bit: the daemon, with thousands of operations in flight, gets there within a minute,
 * and those 32 MiB stay resident for good while its live objects take about 20 (a soak showed
 * "heap 20 MiB of 56", of which new space 32 with 5 in use). The maximum (--max-semi-space-size)
 * can only be given when the process starts, which the daemon does not control (it runs as
 * `girder-mount`, `node dist/src/cli.js`, a systemd unit, mount(8)...); the growth factor is read
 * at each growth, so a factor of 1 keeps it from growing. It must be set before the modules load
 * (heap-at-start.ts), and again after every Worker starts: Node then sets V8's flags anew from the
 * command line, which undoes it. In the soak the new space then stayed at 8 MiB, the heap at 32.
 */
import v8 from 'node:v8';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** Bytes of the new space now (both semi-spaces, as committed). */
export function newSpaceBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

let small = false;

/**
 * How far V8 lets the old space grow past what its last full collection kept: 100%, a factor of 2
 * (V8's own goes up to 4 when collections are fast). With the small new space, objects that live
 * through an upload are promoted and die in the old space: `cp -r` of 10,000 small files took the
 * heap to 123-167 MiB (RSS 236-255 MiB) with about 46 MiB live. With this setting the same copy
 * peaked at 164 MiB RSS for about 14% more daemon CPU (25% kept it at 141 MiB for 66% more).
 */
export const HEAP_GROWING_PERCENT = 100;

function apply(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** From now on, the new space does not grow and the old space grows by HEAP_GROWING_PERCENT at most (V8's flags are the whole process's). */
export function keepYoungGenerationSmall(): void {
  small = true;
  apply();
}

/** Workers started whose thread does not run yet: until then the setting may be undone. */
const starting = new Set<Promise<void>>();

/** A Worker that leaves the setting above in place (set again once the worker runs). */
export function startWorker(filename: string | URL, options?: WorkerOptions): Worker {
  const worker = new Worker(filename, options);
  const running = new Promise<void>((resolve) => {
    worker.once('online', () => {
      if (small) apply();
      resolve();
    });
    worker.once('exit', () => resolve());
  });
  starting.add(running);
  void running.then(() => starting.delete(running));
  return worker;
}

/**
 * Resolves once every Worker started so far runs, the setting applied again. Between a Worker's
 * start and then, V8 grows the new space as it likes: the daemon's write thread, started by the
 * first write of a busy mount, left a soak's new space at 8 MiB for good (2 MiB when started idle).
 */
export async function workersStarted(): Promise<void> {
  if (starting.size === 0) return;
  // An unref'd Worker (the write thread) keeps nothing running: without this the process would
  // end here, with nothing left to wait on but the worker's start.
  const alive = setInterval(() => undefined, 60_000);
  try {
    await Promise.all([...starting]);
  } finally {
    clearInterval(alive);
  }
}
