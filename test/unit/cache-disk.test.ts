// The on-disk side of the block cache: cap and LRU eviction, pins, restart, damage, versions.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { BlockCache, CachedReader, remoteFileOf, type ReadSession, type RemoteFile } from '../../src/vfs/cache/index.js';
import { SYNCS_AT_ONCE } from '../../src/vfs/cache/index-saver.js';
import { MemoryStore } from '../helpers/memory-store.js';

const KiB = 1024;
const BLOCK = 64 * KiB;

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A cache directory, a store, and (re)openable cache + reader on them. */
class Rig {
  cache!: BlockCache;
  reader!: CachedReader;
  readonly store = new MemoryStore();
  /** Warnings the cache logged. */
  readonly warnings: string[] = [];
  private constructor(readonly dir: string, readonly maxBytes: number) {}

  static async make(t: TestLike, maxBytes: number): Promise<Rig> {
    const rig = new Rig(await mkdtemp(join(tmpdir(), 'cache-disk-')), maxBytes);
    await rig.open();
    t.teardown(async () => {
      await rig.cache.close();
      await rm(rig.dir, { recursive: true, force: true });
    });
    return rig;
  }

  async open(): Promise<void> {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void this.warnings.push(line) });
    this.cache = await BlockCache.open({ dir: this.dir, maxBytes: this.maxBytes, blockSize: BLOCK, logger });
    this.reader = new CachedReader(this.store, this.cache, { logger, readAheadBlocks: 4, maxRequestBytes: 2 * BLOCK, wholeFileBytes: 0 });
  }

  async restart(): Promise<void> {
    await this.cache.close();
    await this.open();
  }

  seed(name: string, blocks: number): { file: RemoteFile; data: Buffer } {
    const data = randomBytes(blocks * BLOCK - 100);
    return { file: remoteFileOf(this.store.seedFile(this.store.rootId, name, data).file), data };
  }

  /** Requests to the store: range reads and streams. */
  get calls(): number {
    return this.store.count('readRange') + this.store.count('streamRange');
  }

  get cached(): number {
    return this.cache.stats().bytesCached;
  }

  /** Read block `idx` through a fresh session (a lone read: no read-ahead). */
  async readBlock(f: { file: RemoteFile; data: Buffer }, idx: number): Promise<boolean> {
    const s = this.reader.open(f.file);
    try {
      const pos = idx * BLOCK + 1;
      const buf = Buffer.alloc(1000);
      const n = await s.read(buf, 1000, pos);
      return buf.subarray(0, n).equals(f.data.subarray(pos, pos + 1000));
    } finally {
      s.close();
    }
  }

  async blockFiles(): Promise<string[]> {
    return readdir(join(this.dir, 'blocks'));
  }

  /** Bytes the block files take on disk (holes excluded). */
  async allocated(): Promise<number> {
    let sum = 0;
    for (const name of await this.blockFiles()) {
      // Eviction may remove a block file between readdir and stat: it then takes nothing.
      const st = await stat(join(this.dir, 'blocks', name)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      sum += (st?.blocks ?? 0) * 512;
    }
    return sum;
  }
}

async function readAll(s: ReadSession, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < size; pos += 16 * KiB) {
    const buf = Buffer.alloc(16 * KiB);
    parts.push(buf.subarray(0, await s.read(buf, buf.length, pos)));
  }
  return Buffer.concat(parts);
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Read the first 4 blocks of `a`, then of `c`, each cached in turn: the 8-block cap is then full. */
async function fillCap(t: { ok(value: unknown): void }, rig: Rig, a: Parameters<Rig['readBlock']>[0], c: Parameters<Rig['readBlock']>[0]): Promise<void> {
  for (const [file, name, base] of [[a, 'a', 0], [c, 'c', 4]] as const) {
    for (let i = 0; i < 4; i++) {
      t.ok(await rig.readBlock(file, i));
      await until(() => rig.cached === (base + i + 1) * BLOCK, `${name}${i} cached`);
    }
  }
}

t.test('LRU eviction keeps the cap and drops the least recently used block', async (t) => {
  const rig = await Rig.make(t, 8 * BLOCK);
  const a = rig.seed('a', 16);
  const c = rig.seed('c', 16);
  const d = rig.seed('d', 16);
  await fillCap(t, rig, a, c);
  const calls = rig.calls;
  t.ok(await rig.readBlock(a, 0), 'a0 again');
  t.equal(rig.calls, calls, 'a0 came from the cache');
  t.ok(await rig.readBlock(d, 0));
  await until(() => rig.calls === calls + 1 && rig.cached === 8 * BLOCK, 'd0 cached in place of another block');
  t.ok(rig.cached <= 8 * BLOCK);
  await until(async () => (await rig.allocated()) <= 8 * BLOCK, 'the evicted block\'s disk space freed (hole punched)');

  await rig.restart();
  const before = rig.calls;
  for (const [f, i] of [[a, 0], [a, 2], [a, 3], [c, 0], [c, 3], [d, 0]] as const) t.ok(await rig.readBlock(f, i));
  t.equal(rig.calls, before, 'a0 (used again), a2, a3, c0-c3, d0 are still cached');
  t.ok(await rig.readBlock(a, 1));
  t.equal(rig.calls, before + 1, 'a1, the least recently used, was evicted');
});

t.test('an open file is never evicted; its space comes back after close', async (t) => {
  const rig = await Rig.make(t, 8 * BLOCK);
  const a = rig.seed('a', 8);
  const b = rig.seed('b', 16);
  const sa = rig.reader.open(a.file);
  t.ok((await readAll(sa, a.data.length)).equals(a.data));
  await until(() => rig.cached === 8 * BLOCK - 100, 'a cached');

  const sb = rig.reader.open(b.file);
  t.ok((await readAll(sb, b.data.length)).equals(b.data), 'b reads fine with a full cache');
  sb.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(rig.cached, 8 * BLOCK - 100, 'only a is cached: b could not evict it');

  sa.close();
  await rig.restart();
  const calls = rig.calls;
  const sa2 = rig.reader.open(a.file);
  t.ok((await readAll(sa2, a.data.length)).equals(a.data));
  sa2.close();
  t.equal(rig.calls, calls, 'a is still whole on disk');

  const sb2 = rig.reader.open(b.file);
  let worst = 0;
  const parts: Buffer[] = [];
  for (let pos = 0; pos < b.data.length; pos += 16 * KiB) {
    const buf = Buffer.alloc(16 * KiB);
    parts.push(buf.subarray(0, await sb2.read(buf, buf.length, pos)));
    worst = Math.max(worst, rig.cached);
  }
  t.ok(Buffer.concat(parts).equals(b.data));
  await until(() => rig.cached === 8 * BLOCK, 'b fills the cache once a is closed');
  t.ok(worst <= 8 * BLOCK, `never above the cap (${worst})`);
  sb2.close();
  await until(async () => (await rig.allocated()) <= 9 * BLOCK, 'evicted blocks freed on disk');
});

t.test('a restart keeps the cache warm; files are private', async (t) => {
  const rig = await Rig.make(t, 64 * BLOCK);
  const a = rig.seed('a', 20);
  const s = rig.reader.open(a.file);
  t.ok((await readAll(s, a.data.length)).equals(a.data));
  s.close();
  await until(() => rig.cached === a.data.length, 'a cached');
  await rig.restart();
  t.equal(rig.cached, a.data.length, 'index loaded');
  const calls = rig.calls;
  const s2 = rig.reader.open(a.file);
  t.ok((await readAll(s2, a.data.length)).equals(a.data));
  s2.close();
  t.equal(rig.calls, calls, 'no request after the restart');

  t.equal((await stat(rig.dir)).mode & 0o777, 0o700, 'cache dir 0700');
  t.equal((await stat(join(rig.dir, 'blocks'))).mode & 0o777, 0o700, 'blocks dir 0700');
  t.equal((await stat(join(rig.dir, 'index.json'))).mode & 0o777, 0o600, 'index 0600');
  const files = await rig.blockFiles();
  t.equal(files.length, 1);
  for (const name of files) t.equal((await stat(join(rig.dir, 'blocks', name))).mode & 0o777, 0o600, 'block file 0600');
});

t.test('a save flushes every block file written since the last, a few at a time', async (t) => {
  // All at once, 10,000 small files held a descriptor and promises each for the length of the save:
  // 50 MiB more RSS, and EMFILE under a low descriptor limit (a file not opened was not flushed).
  const rig = await Rig.make(t, 1024 * BLOCK);
  const files = Array.from({ length: 100 }, (_, i) => rig.seed(`f${i}`, 1));
  for (const f of files) t.ok(await rig.readBlock(f, 0));
  await until(() => rig.cached === files.length * (BLOCK - 100), 'every file cached');

  const probe = await open(rig.dir, 'r');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const datasync = proto.datasync;
  let now = 0;
  let most = 0;
  let synced = 0;
  proto.datasync = async function (this: FileHandle): Promise<void> {
    now++;
    most = Math.max(most, now);
    try {
      await datasync.call(this);
      synced++;
    } finally {
      now--;
    }
  };
  t.teardown(() => {
    proto.datasync = datasync;
  });
  await rig.restart();
  proto.datasync = datasync;
  t.ok(synced >= files.length, `every block file flushed before the index (${synced} fdatasync)`);
  t.ok(most <= SYNCS_AT_ONCE, `at most ${SYNCS_AT_ONCE} at once (${most})`);
  t.equal(rig.cached, files.length * (BLOCK - 100), 'the index names them all after the restart');
});

t.test('a truncated or missing block file is fetched again', async (t) => {
  const rig = await Rig.make(t, 64 * BLOCK);
  const a = rig.seed('a', 8);
  const s = rig.reader.open(a.file);
  await readAll(s, a.data.length);
  s.close();
  await until(() => rig.cached === a.data.length, 'a cached');
  await rig.cache.close();
  const [name] = await rig.blockFiles();
  const path = join(rig.dir, 'blocks', name!);
  await truncate(path, 3 * BLOCK + 500);
  await rig.open();
  t.equal(rig.cached, 3 * BLOCK, 'blocks past the end of the file dropped at load');
  let calls = rig.calls;
  const s2 = rig.reader.open(a.file);
  t.ok((await readAll(s2, a.data.length)).equals(a.data), 'bytes right');
  s2.close();
  t.ok(rig.calls > calls, 'dropped blocks fetched again');

  await until(() => rig.cached === a.data.length, 'a cached again');
  await rig.restart();
  await truncate(path, BLOCK); // damaged while running
  calls = rig.calls;
  const s3 = rig.reader.open(a.file);
  t.ok((await readAll(s3, a.data.length)).equals(a.data), 'bytes right after damage at run time');
  s3.close();
  t.ok(rig.calls > calls, 'short blocks fetched again');

  await until(() => rig.cached === a.data.length, 'a cached again');
  await rig.cache.close();
  await rm(path);
  await rig.open();
  t.equal(rig.cached, 0, 'missing file: nothing cached');
  const s4 = rig.reader.open(a.file);
  t.ok((await readAll(s4, a.data.length)).equals(a.data));
  s4.close();
});

t.test('a broken index starts cold and removes stray files', async (t) => {
  const rig = await Rig.make(t, 64 * BLOCK);
  const a = rig.seed('a', 4);
  t.ok(await rig.readBlock(a, 1));
  await until(() => rig.cached === BLOCK, 'cached');
  await rig.cache.close();
  await writeFile(join(rig.dir, 'index.json'), '{"format":1,"blockSi');
  await writeFile(join(rig.dir, 'blocks', 'stray'), 'x');
  await rig.open();
  t.equal(rig.cached, 0);
  t.same(await rig.blockFiles(), [], 'block files removed');
  t.ok(await rig.readBlock(a, 1));
});

t.test('a new version of a file is never served from the old blocks', async (t) => {
  const rig = await Rig.make(t, 64 * BLOCK);
  const { file: doc } = rig.store.seedFile(rig.store.rootId, 'v', randomBytes(4 * BLOCK));
  const v1 = remoteFileOf(doc);
  const old = rig.store.contentOf(doc.id);
  const s1 = rig.reader.open(v1);
  t.ok((await readAll(s1, old.length)).equals(old));
  s1.close();
  await until(() => rig.cached === old.length, 'v1 cached');

  const fresh = randomBytes(old.length); // same size: only created and sha512 tell the versions apart
  const src = join(rig.dir, 'new-content');
  await writeFile(src, fresh);
  const v2 = remoteFileOf(await rig.store.replaceFile(doc.id, { path: src, size: fresh.length }));
  t.not(v2.versionKey, v1.versionKey);
  const s2 = rig.reader.open(v2);
  t.ok((await readAll(s2, fresh.length)).equals(fresh), 'new bytes');
  s2.close();
  await until(async () => rig.cached === fresh.length && (await rig.blockFiles()).length === 1, 'old version dropped');

  await rig.restart();
  const calls = rig.calls;
  const s3 = rig.reader.open(v2);
  t.ok((await readAll(s3, fresh.length)).equals(fresh), 'new bytes after a restart');
  s3.close();
  t.equal(rig.calls, calls, 'from the cache');
  const s4 = rig.reader.open(v1);
  await readAll(s4, old.length);
  s4.close();
  t.ok(rig.calls > calls, 'the old key finds nothing cached');
});

t.test('invalidate drops every cached block of a file', async (t) => {
  const rig = await Rig.make(t, 64 * BLOCK);
  const a = rig.seed('a', 4);
  const s = rig.reader.open(a.file);
  await readAll(s, a.data.length);
  s.close();
  await until(() => rig.cached === a.data.length, 'cached');
  rig.reader.invalidate(a.file.id);
  t.equal(rig.cached, 0);
  const calls = rig.calls;
  t.ok(await rig.readBlock(a, 2));
  t.equal(rig.calls, calls + 1, 'fetched again');
  await until(async () => (await rig.blockFiles()).length === 1, 'old file removed');
});

t.test('without hole punching (no fallocate), eviction drops whole files', async (t) => {
  const rig = await Rig.make(t, 8 * BLOCK);
  const a = rig.seed('a', 16);
  const c = rig.seed('c', 16);
  const d = rig.seed('d', 16);
  await fillCap(t, rig, a, c);
  const path = process.env.PATH;
  process.env.PATH = join(rig.dir, 'no-such-bin');
  t.teardown(() => {
    process.env.PATH = path;
  });
  t.ok(await rig.readBlock(d, 0));
  await until(() => rig.warnings.some((w) => w.includes('cannot punch holes')), 'the failed hole punch');
  t.ok(await rig.readBlock(d, 1));
  await until(async () => (await rig.blockFiles()).length === 2, 'the least recently used file removed whole');
  t.ok(rig.cached <= 8 * BLOCK, `cap kept (${rig.cached})`);
  await rig.restart();
  const calls = rig.calls;
  for (let i = 0; i < 4; i++) t.ok(await rig.readBlock(c, i), `c${i}`);
  t.equal(rig.calls, calls, 'c is still cached');
  for (let i = 0; i < 4; i++) t.ok(await rig.readBlock(a, i), `a${i} still reads right`);
  t.equal(rig.calls, calls + 4, 'a, the least recently used file, was dropped');
});
