import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { FileRef } from '../../src/girder/store.js';
import { silentLogger } from '../../src/log.js';
import { BlockCache, CachedReader } from '../../src/vfs/cache/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

t.test('a block is served as soon as its bytes land, before the whole range request ends', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gm-stream-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logger = silentLogger();
  const cache = await BlockCache.open({ dir, maxBytes: 64 << 20, logger });
  t.teardown(() => cache.close());
  const store = new MemoryStore();
  const data = Buffer.alloc(4 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const { file } = store.seedFile(store.rootId, 'f.bin', data);

  // A range request of several blocks delivers all but its last block, then stalls until told to go on.
  let finish!: () => void;
  const stalled = new Promise<void>((resolve) => (finish = resolve));
  let stalledRequests = 0;
  store.readRange = async (f: FileRef, offset: number, length: number, into: Buffer, intoOffset = 0, onProgress?: (filled: number) => void) => {
    const block = cache.blockSize;
    const half = length > block ? length - block : length;
    data.copy(into, intoOffset, offset, offset + half);
    onProgress?.(half);
    if (half < length) {
      stalledRequests++;
      await stalled;
    }
    data.copy(into, intoOffset + half, offset + half, offset + length);
    onProgress?.(length);
    return Math.min(length, f.size - offset);
  };

  const reader = new CachedReader(store, cache, { logger, maxRequestBytes: 4 << 20, readAheadBlocks: 16 });
  const session = reader.open({ id: file.id, size: file.size, versionKey: 'v1' });
  const buf = Buffer.alloc(128 << 10);
  // Sequential reads through the first block grow the read-ahead into multi-block requests.
  let pos = 0;
  for (; pos < 2 * cache.blockSize; pos += buf.length) t.equal(await session.read(buf, buf.length, pos), buf.length);
  const next = session.read(buf, buf.length, pos);
  const outcome = await Promise.race([next.then(() => 'served'), new Promise((r) => setTimeout(() => r('waited for the whole request'), 2000))]);
  t.equal(outcome, 'served');
  t.ok(stalledRequests >= 1, "the requests serving it had not ended");
  t.same(buf, data.subarray(pos, pos + buf.length));
  finish();
  const tail = Buffer.alloc(4096);
  t.equal(await session.read(tail, 4096, data.length - 4096), 4096);
  t.same(tail, data.subarray(data.length - 4096));
  session.close();
});
