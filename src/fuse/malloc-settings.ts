/**
 * glibc's malloc, tuned for a daemon that moves large buffers all day. By default glibc serves a
 * buffer of 128 KiB or more with a mapping of its own, but raises that threshold to the size of
 * every such buffer freed (up to 32 MiB): from then on, multi-MiB buffers (Node's Buffers are
 * malloc'd) come from the heap, whose holes glibc keeps when they are freed. Under parallel reads
 * and writes the daemon's RSS grew by 60 MiB and more that way. A fixed threshold keeps every
 * large buffer in its own mapping, given back to the system when freed. glibc reads these
 * settings from the environment only when a process starts, so the patched fuse-native addon
 * (scripts/build-fuse-native.sh) calls mallopt() for us; without it, nothing changes.
 */
import type { Logger } from '../log.js';
import { fuseBinding, type FuseBinding } from './native-addon.js';

/**
 * Buffers this large or larger get a mapping of their own: just above libfuse's read buffer (128
 * KiB, malloc'd and freed by libfuse for every read), which at glibc's initial 128 KiB got a fresh
 * mapping each time, a page fault per page (cold sequential read 0.69x of curl, daemon CPU 2.6 s
 * per GiB, against 0.75x and 2.0 s above it). Not higher: the 256 KiB buffers each download
 * reads into (girder/direct-request.ts) left the heap 60 MiB large at 512 KiB.
 */
export const MMAP_THRESHOLD = 192 * 1024;
/** How often free memory inside malloc's heaps goes back to the system (trimMallocEvery). */
export const TRIM_EVERY_MS = 2000;

/** Whether the settings took: `applied`, or why not. */
export type MallocSettings = 'applied' | 'no-patched-addon' | 'not-glibc';

export function applyMallocSettings(logger: Logger): MallocSettings {
  const binding = loadedBinding(logger);
  if (binding === undefined) return 'no-patched-addon';
  const tune = binding.girder_mount_malloc;
  if (tune === undefined || binding.girder_mount_malloc_trim === undefined) {
    logger.warn('fuse-native addon lacks the current girder-mount patch: large buffers freed stay in the heap (RSS grows by tens of MiB under load); run scripts/build-fuse-native.sh');
    return 'no-patched-addon';
  }
  const taken = tune(MMAP_THRESHOLD, 0);
  if (taken < 0) {
    logger.debug('not glibc: malloc settings left as they are');
    return 'not-glibc';
  }
  logger.debug({ mmapThreshold: MMAP_THRESHOLD }, 'malloc: large buffers in mappings of their own');
  return 'applied';
}

/**
 * Give the free pages inside malloc's heaps back to the system every `everyMs`. glibc returns only
 * the free top of a heap: the chunks freed between live ones stayed resident, and under a soak's
 * mix of reads, writes and listings the main heap reached 120 MiB, of which one malloc_trim gave
 * back 70. Returns the function that stops it; without the patched addon, nothing happens.
 */
export function trimMallocEvery(logger: Logger, everyMs = TRIM_EVERY_MS): () => void {
  const trim = loadedBinding(logger)?.girder_mount_malloc_trim;
  if (trim === undefined) return () => undefined;
  const timer = setInterval(() => trim(), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

function loadedBinding(logger: Logger): FuseBinding | undefined {
  try {
    return fuseBinding();
  } catch (err) {
    logger.debug({ err: String(err) }, 'fuse-native addon not loaded: malloc settings left as they are');
    return undefined;
  }
}
