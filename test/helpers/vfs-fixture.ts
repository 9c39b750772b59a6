import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { silentLogger } from '../../src/log.js';
import { BlockCache, CachedReader } from '../../src/vfs/cache/index.js';
import { createVfs } from '../../src/vfs/create-vfs.js';
import type { Vfs } from '../../src/vfs/filesystem.js';
import type { Tree } from '../../src/vfs/tree.js';
import type { DeleteQueue } from '../../src/vfs/writeback/delete-queue.js';
import type { UploadQueue } from '../../src/vfs/writeback/index.js';
import { MemoryStore } from './memory-store.js';

export interface VfsFixture {
  readonly store: MemoryStore;
  readonly vfs: Vfs;
  readonly tree: Tree;
  readonly uploads: UploadQueue;
  readonly removals: DeleteQueue;
  readonly reader: CachedReader;
  readonly dir: string;
  /** Write a whole file through create/write/release. */
  writeFile(path: string, data: Buffer | string): Promise<void>;
  /** Read a whole file through open/read/release. */
  readFile(path: string): Promise<Buffer>;
  /** Close the queue (as a stopping daemon does) and the cache; `keep` leaves the directory for a restart. */
  close(opts?: { keep?: boolean }): Promise<void>;
}

export interface FixtureOptions {
  readonly ttlMs?: number;
  readonly syncUploads?: boolean;
  readonly readOnly?: boolean;
  readonly store?: MemoryStore;
  /** Reuse the directory of an earlier fixture: a restart with the same cache directory. */
  readonly dir?: string;
  readonly retryDelayMs?: { min: number; max: number };
}

/** The whole filesystem model over an in-memory Girder, with the real cache and upload queue. */
export async function vfsFixture(opts: FixtureOptions = {}): Promise<VfsFixture> {
  const logger = silentLogger();
  const store = opts.store ?? new MemoryStore();
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'gm-vfs-')));
  for (const sub of ['data', 'journal', 'blocks']) await mkdir(join(dir, sub), { mode: 0o700, recursive: true });
  const cache = await BlockCache.open({ dir: join(dir, 'blocks'), maxBytes: 256 << 20, logger });
  const reader = new CachedReader(store, cache, { logger });
  const { vfs, tree, uploads, removals } = await createVfs({
    store, root: await store.getFolder(store.rootId), reader, logger, ttlMs: opts.ttlMs ?? 60_000,
    owner: { uid: 1000, gid: 1000, readOnly: opts.readOnly ?? false, umask: 0o022 },
    dirs: { root: dir, data: join(dir, 'data'), journal: join(dir, 'journal') },
    syncUploads: opts.syncUploads ?? false,
    retryDelayMs: opts.retryDelayMs ?? { min: 5, max: 20 },
  });

  return {
    store,
    vfs,
    tree,
    uploads,
    removals,
    reader,
    dir,
    async writeFile(path, data) {
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
      const fh = await vfs.create(path, 0o644, 0o1 | 0o100);
      await vfs.write(fh, buf, buf.length, 0);
      await vfs.flush(fh);
      await vfs.release(fh);
    },
    async readFile(path) {
      const fh = await vfs.open(path, 0);
      const size = (await vfs.fgetattr(path, fh)).size;
      const out = Buffer.alloc(size);
      let pos = 0;
      while (pos < size) {
        const n = await vfs.read(fh, out.subarray(pos), size - pos, pos);
        if (n === 0) break;
        pos += n;
      }
      await vfs.release(fh);
      return out.subarray(0, pos);
    },
    async close(closeOpts = {}) {
      await uploads.close();
      await removals.close();
      await cache.close();
      if (closeOpts.keep !== true) await rm(dir, { recursive: true, force: true });
    },
  };
}
