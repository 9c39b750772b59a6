/**
 * The filesystem model, wired: the tree, the write-back queues (uploads and removals, resumed from
 * their journals) and the Vfs over a store and a block cache. The daemon and the unit tests' fixture
 * both build it here, so the model the tests drive is wired as the one that serves mounts.
 */
import { join } from 'node:path';
import { isMissing } from '../girder/girder-error.js';
import type { GirderStore } from '../girder/store.js';
import type { FolderDoc } from '../girder/types.js';
import type { Logger } from '../log.js';
import type { CachedReader } from './cache/index.js';
import type { FileSystem } from './api.js';
import type { VfsContext } from './context.js';
import { FileSystemBoundary } from './filesystem-boundary.js';
import { Vfs } from './filesystem.js';
import type { Owner } from './nodes.js';
import { OpenFiles } from './open-files.js';
import type { DeleteJob } from './ports.js';
import { resumedUploadFinished, showResumedUploads } from './resumed-uploads.js';
import { Tree } from './tree.js';
import { UploadHandoff } from './upload-handoff.js';
import { DeleteQueue } from './writeback/delete-queue.js';
import { UploadQueue } from './writeback/index.js';

export interface VfsParts {
  readonly store: GirderStore;
  /** The mounted folder. */
  readonly root: FolderDoc;
  readonly reader: CachedReader;
  readonly owner: Owner;
  readonly ttlMs: number;
  readonly logger: Logger;
  readonly dirs: {
    /** The cache directory: lost+found goes in it, and log lines name it. */
    readonly root: string;
    /** Write buffers. */
    readonly data: string;
    /** The upload journal (the removal journal is its `removals/`). */
    readonly journal: string;
  };
  readonly syncUploads: boolean;
  /** Tests speed up the queues' backoff. */
  readonly retryDelayMs?: { min: number; max: number };
}

export interface WiredVfs {
  readonly vfs: Vfs;
  /** The vfs as the fuse layer mounts it: every failure an FsError. */
  readonly fs: FileSystem;
  readonly ctx: VfsContext;
  readonly tree: Tree;
  readonly uploads: UploadQueue;
  readonly removals: DeleteQueue;
  /** Upload temp files the journal still owns (everything else in the data dir is an orphan). */
  readonly journaledTemps: ReadonlySet<string>;
}

/** Build the model and resume what the journals hold; call before mounting. */
export async function createVfs(parts: VfsParts): Promise<WiredVfs> {
  const { store, logger } = parts;
  const tree = new Tree(store, parts.root, { ttlMs: parts.ttlMs, logger });
  const openFiles = new OpenFiles(logger);
  const ctx: VfsContext = { store, tree, owner: parts.owner, logger, openFiles };
  const backoff = parts.retryDelayMs === undefined ? {} : { retryDelayMs: parts.retryDelayMs };
  const uploads = new UploadQueue({
    store,
    journalDir: parts.dirs.journal,
    cacheDir: parts.dirs.root,
    logger,
    ...backoff,
    onFinished: (job) => {
      if (!openFiles.has(job.path)) resumedUploadFinished(ctx, job.path);
    },
  });
  const removals = new DeleteQueue({
    journalDir: join(parts.dirs.journal, 'removals'),
    logger,
    ...backoff,
    remove: (job) => removeOnGirder(store, job.kind, job.id),
    onEnded: (job, removed) => tree.removalEnded(job.dirKey, job.id, removed),
  });
  const resumed = await uploads.start();
  for (const job of await removals.start()) tree.removalQueued(job.dirKey, job.id);
  const handoff = new UploadHandoff(ctx, uploads, parts.reader);
  await showResumedUploads(ctx, uploads, handoff, parts.dirs.data);
  const vfs = new Vfs(ctx, parts.reader, uploads, removals, handoff, { dataDir: parts.dirs.data, syncUploads: parts.syncUploads });
  return { vfs, fs: new FileSystemBoundary(vfs), ctx, tree, uploads, removals, journaledTemps: new Set(resumed.map((j) => j.tempPath)) };
}

/** DELETE of an item, a file or a folder (recursive); one already gone is removed as well. */
async function removeOnGirder(store: GirderStore, kind: DeleteJob['kind'], id: string): Promise<void> {
  try {
    if (kind === 'item') await store.deleteItem(id);
    else if (kind === 'folder') await store.deleteFolder(id);
    else await store.deleteFile(id);
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
}
