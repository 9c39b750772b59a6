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
import { fuseBinding } from './native-addon.js';

/**
 * Buffers this large or larger get a mapping of their own: just above libfuse's read buffer (128
 * KiB, malloc'd and freed by libfuse for every read), which at glibc's initial 128 KiB got a fresh
 * mapping each time, a page fault per page (cold sequential read 0.69x of curl, daemon CPU 2.6 s
 * per GiB, against 0.75x and 2.0 s above it). Not higher: the 256 KiB buffers each download
 * reads into (girder/direct-request.ts) left the heap 60 MiB large at 512 KiB.
 */
export const MMAP_THRESHOLD = 192 * 1024;

/** Whether the settings took: `applied`, or why not. */
export type MallocSettings = 'applied' | 'no-patched-addon' | 'not-glibc';

export function applyMallocSettings(logger: Logger): MallocSettings {
  let tune: ((mmapThreshold: number, arenaMax: number) => number) | undefined;
  try {
    tune = fuseBinding().girder_mount_malloc;
  } catch (err) {
    logger.debug({ err: String(err) }, 'fuse-native addon not loaded: malloc settings left as they are');
    return 'no-patched-addon';
  }
  if (tune === undefined) {
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
