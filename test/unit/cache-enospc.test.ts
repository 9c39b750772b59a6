// A full cache disk (a 1 MiB tmpfs) never fails a read; it is logged once.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import t from 'tap';
import { BlockCache, CachedReader, remoteFileOf } from '../../src/vfs/cache/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

t.test('reads succeed from memory when the cache disk is full', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'cache-enospc-'));
  const mnt = join(base, 'tmpfs');
  await mkdir(mnt);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mnt]);
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    t.comment(`skipped: cannot mount a tmpfs here: ${String(err)}`);
    return;
  }
  t.teardown(async () => {
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    await rm(base, { recursive: true, force: true });
  });

  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const store = new MemoryStore();
  const cache = await BlockCache.open({ dir: join(mnt, 'cache'), maxBytes: 64 * MiB, blockSize: BLOCK, logger });
  const reader = new CachedReader(store, cache, { logger, readAheadBlocks: 8, maxRequestBytes: 4 * BLOCK });
  const data = randomBytes(3 * MiB + 5);
  const file = remoteFileOf(store.seedFile(store.rootId, 'big', data).file);

  for (let round = 0; round < 2; round++) {
    const s = reader.open(file);
    const parts: Buffer[] = [];
    for (let pos = 0; pos < data.length; pos += 128 * KiB) {
      const buf = Buffer.alloc(128 * KiB);
      parts.push(buf.subarray(0, await s.read(buf, buf.length, pos)));
    }
    s.close();
    t.ok(Buffer.concat(parts).equals(data), `round ${round}: every byte right`);
    // random reads too, some of them from blocks that made it to disk
    const s2 = reader.open(file);
    for (let i = 0; i < 50; i++) {
      const pos = Math.floor(Math.random() * data.length);
      const buf = Buffer.alloc(4 * KiB);
      const n = await s2.read(buf, buf.length, pos);
      if (!buf.subarray(0, n).equals(data.subarray(pos, pos + 4 * KiB))) t.fail(`bytes differ at ${pos}`);
    }
    s2.close();
  }
  const start = Date.now();
  while (!lines.some((l) => l.includes('cache disk is full'))) {
    if (Date.now() - start > 20_000) throw new Error('timed out waiting for the disk to fill');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const stats = cache.stats();
  t.ok(stats.bytesCached > 0 && stats.bytesCached <= MiB, `some blocks cached, within the disk (${stats.bytesCached})`);
  await cache.close();
  const full = lines.filter((l) => l.includes('cache disk is full'));
  t.equal(full.length, 1, 'the full disk is logged once');
});
