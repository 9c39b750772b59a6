// growing-lru.ts: an LRU bounded by its entry count whose memory follows what it holds (lru-cache's
// `max` allocates for every entry at once).
import t from 'tap';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LRUCache } from 'lru-cache';
import { growingLru } from '../../src/vfs/growing-lru.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap and ArrayBuffer bytes that making `count` of what `make` makes adds, once collected. */
function footprint(make: () => unknown, count = 4): number {
  gc();
  const before = process.memoryUsage();
  const kept = Array.from({ length: count }, make);
  gc();
  const after = process.memoryUsage();
  if (kept.length !== count) throw new Error('lost some'); // kept alive until measured
  return after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers;
}

t.test('holds at most its bound, dropping the least recently used first', async (t) => {
  const lru = growingLru<string, number>(3);
  for (const k of ['a', 'b', 'c']) lru.set(k, k.charCodeAt(0));
  t.equal(lru.get('a'), 97, 'a used: b is now the least recent');
  lru.set('d', 100);
  t.equal(lru.size, 3);
  t.same([...lru.keys()].sort(), ['a', 'c', 'd']);
});

t.test('an empty one for 100,000 entries takes almost nothing, where lru-cache given max takes megabytes', async (t) => {
  const MiB = 1024 * 1024;
  const preallocated = footprint(() => new LRUCache<string, number>({ max: 100_000 }));
  const growing = footprint(() => growingLru<string, number>(100_000));
  t.ok(preallocated > 4 * MiB, `four with max: ${(preallocated / MiB).toFixed(1)} MiB`);
  t.ok(growing < 0.5 * MiB, `four growing: ${(growing / MiB).toFixed(2)} MiB`);
});

t.test('filled past its bound it keeps the bound, and the newest', async (t) => {
  const lru = growingLru<string, true>(100_000);
  for (let i = 0; i < 150_000; i++) lru.set(`k${i}`, true);
  t.equal(lru.size, 100_000);
  t.notOk(lru.has('k49999'));
  t.ok(lru.has('k50000') && lru.has('k149999'));
});
