import { LRUCache } from 'lru-cache';

/**
 * An LRU cache of at most `entries` entries whose memory grows with what it holds. Given `max`,
 * lru-cache allocates its arrays for `max` entries up front: the four caches the daemon sizes for
 * trees of 100,000 items held 8.5 MiB from its first second (5 of them in the V8 heap), in every
 * mount, however small. Counted by size (1 per entry) instead, the arrays grow as entries come.
 */
export function growingLru<K extends {}, V extends {}>(entries: number): LRUCache<K, V> {
  return new LRUCache<K, V>({ maxSize: entries, sizeCalculation: () => 1 });
}
