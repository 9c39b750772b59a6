// The data-read path: exact bytes, shared requests, read-ahead on sequential reads only, errors.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FsError } from '../../src/errors.js';
import { GirderError } from '../../src/girder/girder-error.js';
import type { FileRef } from '../../src/girder/store.js';
import { silentLogger } from '../../src/log.js';
import { BlockCache, CachedReader, defaultCacheMaxBytes, remoteFileOf, versionKeyOf, type RemoteFile } from '../../src/vfs/cache/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

/** A MemoryStore that remembers the range of every readRange call. */
class RangeStore extends MemoryStore {
  readonly ranges: Array<{ offset: number; length: number }> = [];
  override async readRange(file: FileRef, offset: number, length: number, into: Buffer, intoOffset = 0): Promise<number> {
    this.ranges.push({ offset, length });
    return super.readRange(file, offset, length, into, intoOffset);
  }
}

interface Fixture {
  store: RangeStore;
  cache: BlockCache;
  reader: CachedReader;
  seed(name: string, data: Buffer): RemoteFile;
}

interface TestLike {
  teardown(fn: () => unknown): void;
}

async function fixture(t: TestLike, opts: { readAheadBlocks?: number; maxRequestBytes?: number; maxBytes?: number; maxStreams?: number; wholeFileBytes?: number } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'cache-read-'));
  const store = new RangeStore();
  const logger = silentLogger();
  const cache = await BlockCache.open({ dir, maxBytes: opts.maxBytes ?? 256 * MiB, blockSize: BLOCK, logger });
  const reader = new CachedReader(store, cache, {
    logger,
    ...(opts.readAheadBlocks !== undefined ? { readAheadBlocks: opts.readAheadBlocks } : {}),
    ...(opts.maxRequestBytes !== undefined ? { maxRequestBytes: opts.maxRequestBytes } : {}),
    ...(opts.maxStreams !== undefined ? { maxStreams: opts.maxStreams } : {}),
    // these tests follow single blocks; small files fetched whole have a test of their own
    wholeFileBytes: opts.wholeFileBytes ?? 0,
  });
  t.teardown(async () => {
    await cache.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    store, cache, reader,
    seed: (name, data) => remoteFileOf(store.seedFile(store.rootId, name, data).file),
  };
}

async function readAt(session: { read(into: Buffer, length: number, position: number): Promise<number> }, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const n = await session.read(buf, length, position);
  return buf.subarray(0, n);
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

t.test('random offsets and lengths give the exact bytes, EOF included', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(3 * MiB + 12345);
  const file = f.seed('a.bin', data);
  const s = f.reader.open(file);
  for (let i = 0; i < 300; i++) {
    const pos = Math.floor(Math.random() * (data.length + 1000));
    const len = 1 + Math.floor(Math.random() * (i % 3 === 0 ? 300 * KiB : 8 * KiB));
    const got = await readAt(s, pos, len);
    const want = data.subarray(Math.min(pos, data.length), Math.min(pos + len, data.length));
    if (!got.equals(want)) {
      t.fail(`bytes differ at ${pos}+${len}`);
      break;
    }
  }
  t.same(await readAt(s, data.length - 10, 100), data.subarray(data.length - 10), 'short read at EOF');
  t.equal((await readAt(s, data.length, 100)).length, 0, 'read at EOF');
  t.equal((await readAt(s, data.length + 5 * MiB, 100)).length, 0, 'read past EOF');
  t.equal(await s.read(Buffer.alloc(10), 0, 0), 0, 'zero-length read');
  // a read spanning three blocks
  t.same(await readAt(s, BLOCK - 7, 2 * BLOCK + 20), data.subarray(BLOCK - 7, 3 * BLOCK + 13));
  s.close();
  await t.rejects(s.read(Buffer.alloc(10), 10, 0), FsError, 'read after close fails');
});

t.test('sequential read of a whole file, and an empty file', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(5 * MiB + 1);
  const file = f.seed('seq.bin', data);
  const s = f.reader.open(file);
  const parts: Buffer[] = [];
  for (let pos = 0; pos < data.length; pos += 128 * KiB) parts.push(await readAt(s, pos, 128 * KiB));
  s.close();
  t.ok(Buffer.concat(parts).equals(data), 'sequential bytes equal');

  const empty = f.seed('empty', Buffer.alloc(0));
  const calls = f.store.count('readRange');
  const e = f.reader.open(empty);
  t.equal((await readAt(e, 0, 4096)).length, 0);
  e.close();
  t.equal(f.store.count('readRange'), calls, 'an empty file costs no request');
});

t.test('concurrent readers of one block share one request', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(2 * MiB);
  const file = f.seed('shared.bin', data);
  const sessions = [f.reader.open(file), f.reader.open(file), f.reader.open(file)];
  f.store.delayNext('readRange', 100);
  const base = 10 * BLOCK;
  const reads = [];
  for (let i = 0; i < 9; i++) {
    const pos = base + 1000 + i * 5000;
    reads.push(readAt(sessions[i % 3]!, pos, 4000).then((got) => ({ pos, got })));
  }
  for (const { pos, got } of await Promise.all(reads)) t.same(got, data.subarray(pos, pos + 4000));
  const onBlock = f.store.ranges.filter((r) => r.offset <= base && r.offset + r.length > base);
  t.equal(onBlock.length, 1, 'one request for nine reads of one block');
  for (const s of sessions) s.close();
});

t.test('sequential reads fetch ahead in growing requests (no stream)', async (t) => {
  // what a sequential reader does when no stream can be opened (cache-stream.test.ts: with streams)
  const f = await fixture(t, { readAheadBlocks: 16, maxRequestBytes: 4 * BLOCK, maxStreams: 0 });
  const data = randomBytes(128 * BLOCK);
  const file = f.seed('ahead.bin', data);
  const s = f.reader.open(file);
  let furthest = 0;
  for (let pos = 0; pos < data.length; pos += 16 * KiB) {
    const got = await readAt(s, pos, 16 * KiB);
    if (!got.equals(data.subarray(pos, pos + 16 * KiB))) t.fail(`bytes differ at ${pos}`);
    for (const r of f.store.ranges) furthest = Math.max(furthest, r.offset + r.length - (pos + 16 * KiB));
  }
  s.close();
  const ranges = f.store.ranges;
  t.ok(furthest >= 8 * BLOCK, `requests reached ahead of the reader (${furthest} bytes)`);
  t.ok(ranges.length < 128 / 2, `fewer requests than blocks (${ranges.length})`);
  t.ok(ranges.some((r) => r.length === 4 * BLOCK), 'requests grew to the largest size');
  t.ok(ranges.every((r) => r.length <= 4 * BLOCK), 'never above the largest size');
  const covered = new Set<number>();
  for (const r of ranges) {
    for (let b = r.offset / BLOCK; b < (r.offset + r.length) / BLOCK; b++) {
      if (covered.has(b)) t.fail(`block ${b} fetched twice`);
      covered.add(b);
    }
  }
  t.equal(covered.size, 128, 'every block fetched exactly once');
});

t.test('readNow copies bytes in memory at once, as read would; a read that must wait is left to read, nothing changed', async (t) => {
  // a window (4 MiB) wider than what still counts as sequential after a gap (2 MiB)
  const f = await fixture(t, { readAheadBlocks: 64, maxRequestBytes: 8 * BLOCK, maxStreams: 0 });
  const data = randomBytes(256 * BLOCK);
  const file = f.seed('now.bin', data);
  const s = f.reader.open(file);
  const into = Buffer.alloc(16 * KiB);
  t.equal(s.readNow(into, 16 * KiB, 0), undefined, 'a block not in memory: left to read');
  t.equal(f.store.ranges.length, 0, 'and nothing fetched');

  // a sequential reader that tries readNow first, as the FUSE layer does
  let reads = 0;
  let now = 0;
  let afterProbe = -1;
  for (let pos = 0; pos < data.length; pos += 16 * KiB) {
    reads++;
    let n = s.readNow(into, 16 * KiB, pos);
    if (n !== undefined) now++;
    else n = await s.read(into, 16 * KiB, pos);
    if (!into.subarray(0, n).equals(data.subarray(pos, pos + 16 * KiB))) t.fail(`bytes differ at ${pos}`);
    await new Promise((resolve) => setImmediate(resolve)); // the read-ahead lands meanwhile
    if (pos === 32 * BLOCK) {
      afterProbe = f.store.ranges.length;
      t.equal(s.readNow(into, 16 * KiB, 250 * BLOCK + 5), undefined, 'far ahead, not yet fetched: left to read');
      t.equal(f.store.ranges.length, afterProbe, 'and nothing fetched');
    }
  }
  s.close();
  // read-ahead moved on with the reads served at once: only the first read waited
  t.ok(now >= reads - 2, `reads served at once: ${now} of ${reads}`);
  const covered = new Set<number>();
  for (const r of f.store.ranges) {
    for (let b = r.offset / BLOCK; b < (r.offset + r.length) / BLOCK; b++) {
      if (covered.has(b)) t.fail(`block ${b} fetched twice`);
      covered.add(b);
    }
  }
  t.equal(covered.size, 256, 'every block fetched exactly once');
  t.ok(f.store.ranges.length < 256 / 2, `read-ahead kept going through reads served at once: ${f.store.ranges.length} requests`);
  // the probe left the sequential run as it was: no seek, so no window growing again from 1 block
  const later = f.store.ranges.slice(afterProbe);
  t.ok(later.length > 0 && later.every((r) => r.length === 8 * BLOCK || r.offset + r.length === data.length),
    `requests after the probe all of the largest size: ${later.map((r) => r.length / BLOCK).join(',')} blocks`);
});

t.test('readNow of a read across two blocks, the first in memory and the second not: left to read whole', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(8 * BLOCK);
  const file = f.seed('across.bin', data);
  const s = f.reader.open(file);
  t.same(await readAt(s, 3 * BLOCK + 100, 100), data.subarray(3 * BLOCK + 100, 3 * BLOCK + 200), 'block 3 fetched');
  const fetched = f.store.ranges.length;
  const into = Buffer.alloc(32 * KiB);
  const at = 4 * BLOCK - 16 * KiB;
  t.equal(s.readNow(into, 32 * KiB, at), undefined, 'not served in part (a short count would read as the end of the file)');
  t.equal(f.store.ranges.length, fetched, 'nothing fetched');
  t.equal(await s.read(into, 32 * KiB, at), 32 * KiB);
  t.same(into, data.subarray(at, at + 32 * KiB), 'read gets it all');
  t.equal(s.readNow(into.fill(0), 32 * KiB, at), 32 * KiB, 'both blocks in memory now: served at once');
  t.same(into, data.subarray(at, at + 32 * KiB));
  s.close();
});

t.test('random reads fetch one block each, no read-ahead; a seek resets the window', async (t) => {
  const f = await fixture(t, { readAheadBlocks: 16, maxRequestBytes: 4 * BLOCK });
  const data = randomBytes(32 * MiB);
  const file = f.seed('random.bin', data);
  const s = f.reader.open(file);
  const order = [1, 6, 2, 7, 3, 8, 4, 9, 5, 0];
  for (const i of order) {
    const pos = i * 3 * MiB + 777 + i * 100;
    t.same(await readAt(s, pos, 4 * KiB), data.subarray(pos, pos + 4 * KiB));
  }
  t.equal(f.store.ranges.length, order.length, 'one request per random read');
  t.ok(f.store.ranges.every((r) => r.length === BLOCK && r.offset % BLOCK === 0), 'each request is one block');

  // sequential run, then a seek far away: the first read after the seek fetches one block only
  for (let pos = 20 * MiB; pos < 20 * MiB + 8 * BLOCK; pos += 16 * KiB) await readAt(s, pos, 16 * KiB);
  const before = f.store.ranges.length;
  await readAt(s, 5 * MiB + 3, 100);
  const after = f.store.ranges.slice(before);
  t.equal(after.length, 1, 'one request after the seek');
  t.equal(after[0]?.length, BLOCK, 'of one block');
  s.close();
});

t.test('store errors come through as they are, and the next read works', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(MiB);
  const file = f.seed('err.bin', data);
  const s = f.reader.open(file);
  const boom = new GirderError('Read access denied for file', 403, 'access');
  f.store.failNext('readRange', boom);
  await t.rejects(readAt(s, 5000, 100), boom);
  t.same(await readAt(s, 5000, 100), data.subarray(5000, 5100), 'retried by the next read');
  s.close();
});

t.test('a store that returns fewer bytes than the size says: short read, nothing cached', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(100 * KiB);
  const real = f.seed('shrunk.bin', data);
  const claimed: RemoteFile = { ...real, size: 300 * KiB, versionKey: `${real.versionKey}-stale` };
  const s = f.reader.open(claimed);
  t.same(await readAt(s, 90 * KiB, 20 * KiB), data.subarray(90 * KiB), 'what the store has');
  t.equal((await readAt(s, 200 * KiB, 10)).length, 0, 'nothing beyond');
  s.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(f.cache.stats().bytesCached, 0, 'bytes of a short answer are not cached');
});

t.test('stats count hits, misses and fetched bytes', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(4 * BLOCK);
  const file = f.seed('stats.bin', data);
  const s = f.reader.open(file);
  await readAt(s, 100, 10);
  await readAt(s, 200, 10);
  const st = f.cache.stats();
  t.equal(st.misses, 1);
  t.equal(st.hits, 1);
  t.equal(st.bytesFetched, BLOCK);
  t.equal(st.maxBytes, 256 * MiB);
  await until(() => f.cache.stats().bytesCached === BLOCK, 'the block on disk');
  s.close();
});

t.test('version keys and the default cache size', async (t) => {
  const doc = { id: 'f1', size: 10, created: 1000, sha512: 'ab' };
  const k = versionKeyOf(doc);
  t.not(versionKeyOf({ ...doc, size: 11 }), k, 'size');
  t.not(versionKeyOf({ ...doc, created: 1001 }), k, 'created');
  t.not(versionKeyOf({ ...doc, sha512: 'cd' }), k, 'sha512');
  t.equal(versionKeyOf({ ...doc, updated: 2000 } as typeof doc), k, 'updated (a rename, a MIME change) keeps the bytes: same key');

  const bytes = await defaultCacheMaxBytes(join(tmpdir(), 'does', 'not', 'exist'));
  t.ok(Number.isSafeInteger(bytes) && bytes >= MiB && bytes <= 20 * 1024 * MiB, `default ${bytes}`);
});

t.test('a small file is fetched whole by its first read, in one request; a bigger one only where read', async (t) => {
  const f = await fixture(t, { wholeFileBytes: 4 * BLOCK, maxRequestBytes: 8 * BLOCK });
  const small = randomBytes(4 * BLOCK - 10);
  const s = f.reader.open(f.seed('small.bin', small));
  t.ok((await readAt(s, 100, 10)).equals(small.subarray(100, 110)));
  t.same(f.store.ranges, [{ offset: 0, length: small.length }], 'one request for the whole file');
  t.ok((await readAt(s, 3 * BLOCK, 100)).equals(small.subarray(3 * BLOCK, 3 * BLOCK + 100)), 'a later block');
  t.equal(f.store.ranges.length, 1, 'came from the cache');
  s.close();

  const bigger = randomBytes(4 * BLOCK + 1);
  const b = f.reader.open(f.seed('bigger.bin', bigger));
  t.ok((await readAt(b, 3 * BLOCK, 10)).equals(bigger.subarray(3 * BLOCK, 3 * BLOCK + 10)));
  t.same(f.store.ranges.slice(1), [{ offset: 3 * BLOCK, length: BLOCK }], 'past the threshold: the block read, only');
  b.close();
});

t.test('a fetch that got no answer in time: reads of the file fail at once for a few seconds, without asking again', async (t) => {
  const f = await fixture(t);
  const data = randomBytes(4 * BLOCK);
  const file = f.seed('silent.bin', data);
  // a session per read: each is a random read (no read-ahead), fetching only its block
  const s = {
    async read(into: Buffer, length: number, position: number): Promise<number> {
      const session = f.reader.open(file);
      try {
        return await session.read(into, length, position);
      } finally {
        session.close();
      }
    },
  };
  t.same(await readAt(s, BLOCK, BLOCK), data.subarray(BLOCK, 2 * BLOCK), 'block 1 cached');
  const silent = new GirderError('no answer from girder:8080 within 5 s (UND_ERR_HEADERS_TIMEOUT)', 0, 'timeout');
  f.store.failNext('readRange', silent);
  const calls = f.store.count('readRange');
  const first = await readAt(s, 2 * BLOCK, 100).then(() => undefined, (e: unknown) => e);
  t.equal(first, silent, 'the read that met the timeout fails with it');
  t.equal(f.store.count('readRange'), calls + 1);
  // the kernel reads the page again at once: it must not wait for a second timeout
  const again = await readAt(s, 2 * BLOCK, 100).then(() => undefined, (e: unknown) => e);
  t.equal(again, silent, 'a read of the file right after fails at once with the same error');
  t.equal(await readAt(s, 3 * BLOCK, 100).then(() => undefined, (e: unknown) => e), silent, 'any block not cached');
  t.equal(f.store.count('readRange'), calls + 1, 'without a request');
  t.same(await readAt(s, BLOCK, BLOCK), data.subarray(BLOCK, 2 * BLOCK), 'cached blocks still read');
  await new Promise((resolve) => setTimeout(resolve, 3_050));
  t.same(await readAt(s, 2 * BLOCK, 100), data.subarray(2 * BLOCK, 2 * BLOCK + 100), 'three seconds later the server is asked again');

  // a quick failure (refused, 5xx after the retries) is not remembered: the kernel's second read tries again
  const refused = new GirderError('cannot reach girder:8080 (ECONNREFUSED)', 0, 'network');
  f.store.failNext('readRange', refused);
  t.equal(await readAt(s, 3 * BLOCK, 100).then(() => undefined, (e: unknown) => e), refused);
  t.same(await readAt(s, 3 * BLOCK, 100), data.subarray(3 * BLOCK, 3 * BLOCK + 100), 'the next read asks again');
});
