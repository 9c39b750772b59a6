// Cache blocks written around the page cache (src/vfs/cache/direct-blocks.ts): exact bytes for
// runs bigger than the staging buffer, unaligned tails and two files at once; the aligned part
// leaves nothing in the page cache (util-linux fincore), so a read block is not held twice; a
// version of one block is written the ordinary way.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { openUncached } from '../../src/uncached-io.js';
import { DirectBlocks } from '../../src/vfs/cache/direct-blocks.js';
import { VersionRegistry } from '../../src/vfs/cache/version-registry.js';

const TMPFS_MAGIC = 0x01021994;

async function cachedBytes(file: string): Promise<number> {
  const { stdout } = await promisify(execFile)('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(stdout.trim());
}

t.test('blocks reach the file exactly, around the page cache', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cache-direct-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const blocks = await DirectBlocks.open(dir);
  if (blocks === undefined) return t.plan(0, `${tmpdir()} has no O_DIRECT`);
  t.same(await readdir(dir), [], 'the probe file is gone');

  const files = ['a', 'b'].map((n) => path.join(dir, n));
  const handles = await Promise.all(files.map(async (f) => {
    const fh = await open(f, constants.O_WRONLY | constants.O_CREAT, 0o600);
    const direct = await openUncached(f, constants.O_WRONLY);
    if (direct === undefined) throw new Error('no O_DIRECT descriptor');
    return { fh, direct };
  }));
  t.teardown(async () => {
    for (const h of handles) {
      await h.fh.close();
      await h.direct.close();
    }
  });
  const [ha, hb] = handles as [(typeof handles)[number], (typeof handles)[number]];
  // a: 9 MiB (more than the staging buffer) at 256 KiB, then a last block with a tail; b at the same time
  const a1 = randomBytes(9 * 1024 * 1024);
  const a2 = randomBytes(100_000);
  const b1 = randomBytes(3 * 1024 * 1024 + 4096);
  await Promise.all([
    blocks.write(ha.direct, ha.fh, a1, 256 * 1024),
    blocks.write(hb.direct, hb.fh, b1, 0),
    blocks.write(ha.direct, ha.fh, a2, 256 * 1024 + a1.length),
  ]);
  const onTmpfs = (await statfs(dir)).type === TMPFS_MAGIC;
  if (!onTmpfs) {
    t.ok((await cachedBytes(files[0] as string)) <= 8192, 'only the tail of a went through the page cache');
    t.equal(await cachedBytes(files[1] as string), 0, 'nothing of b is in the page cache');
  }
  const a = await readFile(files[0] as string);
  t.ok(a.subarray(0, 256 * 1024).equals(Buffer.alloc(256 * 1024)), 'the hole before a stays a hole');
  t.ok(a.subarray(256 * 1024).equals(Buffer.concat([a1, a2])), 'a holds exactly its blocks');
  t.ok((await readFile(files[1] as string)).equals(b1), 'b holds exactly its blocks');
});

t.test('a file system without O_DIRECT gives no direct writer (the cache writes the ordinary way)', async (t) => {
  // tmpfs took O_DIRECT only from Linux 6.6: either answer is right there, and must not throw
  const dir = await mkdtemp(path.join('/dev/shm', 'cache-direct-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const blocks = await DirectBlocks.open(dir);
  t.ok(blocks === undefined || blocks instanceof DirectBlocks);
  t.same(await readdir(dir), [], 'the probe file is gone either way');
});

t.test('a version of one block is written through the page cache, a bigger one around it', async (t) => {
  // The second descriptor a direct write needs cost a third of caching a small file; the few pages
  // of a one-block version are clean and soon reclaimed.
  const dir = await mkdtemp(path.join(tmpdir(), 'cache-direct-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const blocks = await DirectBlocks.open(dir);
  if (blocks === undefined) return t.plan(0, `${tmpdir()} has no O_DIRECT`);
  const blockSize = 256 * 1024;
  const registry = new VersionRegistry(dir, blockSize, () => undefined, blocks);
  const small = registry.make(0, 'small', 8192, 'k');
  const big = registry.make(1, 'big', 2 * blockSize, 'k');
  const smallBytes = randomBytes(small.size);
  const bigBytes = randomBytes(big.size);
  await small.enqueue(() => small.writeBlocks(0, smallBytes));
  await big.enqueue(() => big.writeBlocks(0, bigBytes));
  if ((await statfs(dir)).type !== TMPFS_MAGIC) {
    t.equal(await cachedBytes(small.path), small.size, 'the one-block version went through the page cache');
    t.equal(await cachedBytes(big.path), 0, 'the two-block version did not');
  }
  t.ok((await readFile(small.path)).equals(smallBytes), 'the small version holds its bytes');
  t.ok((await readFile(big.path)).equals(bigBytes), 'the big version holds its bytes');
});
