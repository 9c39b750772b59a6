import { spawn } from 'node:child_process';
import { lockCacheDir, prepareCacheDir, removeOrphans } from './cache-dir.js';
import type { MountConfig } from './config.js';
import { ControlServer } from './control/server.js';
import { controlSocketPath } from './control/socket-path.js';
import type { MountStatus, UnmountAnswer } from './control/status.js';
import { GirderError, UsageError, errorMessage } from './errors.js';
import { mountFuse, type FuseMount } from './fuse/mount.js';
import { prepareMountpoint } from './fuse/mountpoint.js';
import { isMounted } from './fuse/proc-mounts.js';
import { GirderClient } from './girder/client.js';
import { RestStore } from './girder/rest-store.js';
import type { FolderDoc } from './girder/types.js';
import { createLogger, type Logger } from './log.js';
import { BlockCache, CachedReader, defaultCacheMaxBytes } from './vfs/cache/index.js';
import type { VfsContext } from './vfs/context.js';
import { Vfs } from './vfs/filesystem.js';
import type { LocalFile } from './vfs/local-file.js';
import { Tree } from './vfs/tree.js';
import { UploadQueue } from './vfs/writeback/upload-queue.js';
import { placeFinishedUpload } from './vfs/resumed-uploads.js';

/** How often the daemon checks that its mount is still there (an outside `fusermount -u`). */
const MOUNT_CHECK_MS = 2000;

/** Mount, serve until told to stop, drain uploads, unmount. Resolves with the exit code. */
export async function runMount(config: MountConfig): Promise<number> {
  const logger = createLogger(config.logLevel);
  const stop = new StopSignal();
  stop.listen(logger);
  let session: Session;
  try {
    session = await Session.start(config, logger);
  } catch (err) {
    stop.forget();
    throw err;
  }
  stop.onStop(() => void session.stop(config.drainTimeoutS, true));
  stop.onReload(() => session.reload());
  return session.finished;
}

/** SIGINT/SIGTERM (stop) and SIGHUP (drop metadata caches), held from the start. */
class StopSignal {
  private stopHandler: (() => void) | undefined;
  private reloadHandler: (() => void) | undefined;
  private requested = false;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (signal === 'SIGHUP') {
      this.reloadHandler?.();
      return;
    }
    this.requested = true;
    this.stopHandler?.();
  };

  listen(logger: Logger): void {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, this.onSignal);
    process.on('SIGPIPE', () => logger.debug('SIGPIPE ignored'));
  }

  forget(): void {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, this.onSignal);
  }

  onStop(handler: () => void): void {
    this.stopHandler = handler;
    if (this.requested) handler();
  }

  onReload(handler: () => void): void {
    this.reloadHandler = handler;
  }
}

class Session {
  readonly finished: Promise<number>;
  private finish!: (code: number) => void;
  private stopping: Promise<UnmountAnswer> | undefined;
  private readonly startedAt = Date.now();
  private control: ControlServer | undefined;
  private mountWatch: NodeJS.Timeout | undefined;

  private constructor(
    private readonly config: MountConfig,
    private readonly logger: Logger,
    private readonly mountpoint: string,
    private readonly client: GirderClient,
    private readonly tree: Tree,
    private readonly cache: BlockCache,
    private readonly uploads: UploadQueue,
    private readonly fuse: FuseMount,
    private readonly unlock: () => Promise<void>,
  ) {
    this.finished = new Promise((resolve) => (this.finish = resolve));
  }

  static async start(config: MountConfig, logger: Logger): Promise<Session> {
    const mountpoint = await prepareMountpoint(config.mountpoint, logger);
    warnIfPlainHttp(config.apiUrl, logger);
    const dirs = await prepareCacheDir(config.cacheDir);
    const unlock = await lockCacheDir(dirs);
    let client: GirderClient;
    try {
      client = new GirderClient({
        apiUrl: config.apiUrl,
        credentials: config.credentials,
        timeoutMs: config.timeoutS * 1000,
        retries: config.retries,
        ...(config.caFile !== undefined ? { caFile: config.caFile } : {}),
        logger,
      });
    } catch (err) {
      await unlock();
      throw err;
    }
    try {
      const store = new RestStore(client, logger);
      const root = await connect(client, store, config);
      const maxBytes = config.cacheMaxBytes ?? (await defaultCacheMaxBytes(dirs.blocks));
      const cache = await BlockCache.open({ dir: dirs.blocks, maxBytes, logger });
      // A stalled stream fails its readers once a GET timed out and its retry had time to answer.
      const reader = new CachedReader(store, cache, { logger, streamStallMs: 2 * config.timeoutS * 1000 });
      const tree = new Tree(store, root, { ttlMs: config.attrTtlS * 1000, logger });
      const locals = new Map<string, LocalFile>();
      const owner = { uid: config.uid, gid: config.gid, readOnly: config.readOnly, umask: config.umask };
      const ctx: VfsContext = { store, tree, owner, logger, locals };
      const uploads = new UploadQueue({
        store,
        journalDir: dirs.journal,
        cacheDir: dirs.root,
        logger,
        onFinished: (job) => {
          if (!locals.has(job.path)) void placeFinishedUpload(ctx, job.path);
        },
      });
      const resumed = await uploads.start();
      client.onLogin(() => uploads.retryNow('a new login to Girder', 'auth'));
      if (resumed.length > 0) logger.info({ count: resumed.length }, 'resuming uploads left by an earlier run');
      await removeOrphans(dirs.data, new Set(resumed.map((j) => j.tempPath)));
      const vfs = new Vfs(ctx, reader, uploads, { dataDir: dirs.data, syncUploads: config.syncUploads });
      await vfs.adoptResumedUploads();
      const fuse = await mountFuse(vfs, mountpoint, {
        readOnly: config.readOnly,
        allowOther: config.allowOther,
        uid: config.uid,
        gid: config.gid,
        attrTimeoutS: config.attrTtlS,
        fsName: `girder:${config.folderId}`,
        // Longer than a request with all its retries, so a slow server gives EIO, not ETIMEDOUT.
        opTimeoutMs: (config.timeoutS * (config.retries + 1) + 60) * 1000,
      }, logger);
      const session = new Session(config, logger, mountpoint, client, tree, cache, uploads, fuse, unlock);
      await session.afterMount();
      return session;
    } catch (err) {
      await client.close().catch(() => undefined);
      await unlock();
      throw err;
    }
  }

  private async afterMount(): Promise<void> {
    this.control = await ControlServer.listen(controlSocketPath(this.mountpoint), {
      status: () => this.status(),
      unmount: (timeoutS, force) => this.stop(timeoutS, force),
    }, this.logger);
    this.mountWatch = setInterval(() => void this.checkStillMounted(), MOUNT_CHECK_MS);
    this.mountWatch.unref();
    this.logger.info({ mountpoint: this.mountpoint, folderId: this.config.folderId, apiUrl: this.config.apiUrl }, 'mounted');
    notifySystemd(['--ready', `--status=serving ${this.mountpoint}`], this.logger);
  }

  reload(): void {
    this.tree.clear();
    this.logger.info('SIGHUP: metadata cache dropped');
    this.uploads.retryNow('SIGHUP');
  }

  async status(): Promise<MountStatus> {
    const cache = this.cache.stats();
    return {
      pid: process.pid,
      mountpoint: this.mountpoint,
      apiUrl: this.config.apiUrl,
      folderId: this.config.folderId,
      readOnly: this.config.readOnly,
      uptimeS: (Date.now() - this.startedAt) / 1000,
      uploads: this.uploads.status().map((u) => ({ ...u })),
      failedUploads: await this.uploads.kept(),
      lostAndFound: this.uploads.lostAndFoundDir,
      cache: { hits: cache.hits, misses: cache.misses, bytesCached: cache.bytesCached, maxBytes: cache.maxBytes },
      requests: this.client.stats(),
    };
  }

  /** Drain uploads (bounded), then unmount and end. Without `force`, pending uploads keep it mounted. */
  stop(timeoutS: number, force: boolean): Promise<UnmountAnswer> {
    if (this.stopping !== undefined) return this.stopping;
    const attempt = this.drainAndUnmount(timeoutS, force);
    this.stopping = attempt;
    void attempt.then((answer) => {
      if (!answer.unmounted) this.stopping = undefined;
    });
    return attempt;
  }

  private async drainAndUnmount(timeoutS: number, force: boolean): Promise<UnmountAnswer> {
    notifySystemd(['STOPPING=1', '--status=draining uploads'], this.logger);
    const pendingBefore = this.uploads.status().length;
    if (pendingBefore > 0) this.logger.info({ pending: pendingBefore, timeoutS }, 'waiting for pending uploads');
    const drained = await this.uploads.drain(timeoutS * 1000);
    const pending = this.uploads.status().length;
    if (!drained && !force) {
      return { unmounted: false, pending, message: `${pending} upload(s) still pending after ${timeoutS} s; the mount stays up. Wait and try again, or use --force (they resume at the next start)` };
    }
    if (!drained) this.logger.warn({ pending }, 'uploads still pending: they stay journaled and resume at the next start');
    await this.shutdown();
    const message = drained ? `unmounted ${this.mountpoint}; every upload is on the server` : `unmounted ${this.mountpoint}; ${pending} upload(s) resume at the next start with the same cache directory`;
    return { unmounted: true, pending, message };
  }

  private async shutdown(): Promise<void> {
    if (this.mountWatch !== undefined) clearInterval(this.mountWatch);
    await this.fuse.unmount().catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, 'unmount failed'));
    await this.uploads.close().catch(() => undefined);
    await this.cache.close().catch(() => undefined);
    await this.client.close().catch(() => undefined);
    await this.unlock();
    this.logger.info({ mountpoint: this.mountpoint }, 'unmounted');
    // An unmount request waits for its answer on the control socket: close it once that is sent.
    setTimeout(() => {
      void (this.control?.close() ?? Promise.resolve()).catch(() => undefined).finally(() => this.finish(0));
    }, 100);
  }

  /** After an outside `fusermount -u` the process would serve nothing: drain and end. */
  private async checkStillMounted(): Promise<void> {
    if (this.stopping !== undefined) return;
    if (await isMounted(this.mountpoint)) return;
    this.logger.warn({ mountpoint: this.mountpoint }, 'unmounted from outside; finishing pending uploads, then exiting');
    await this.stop(this.config.drainTimeoutS, true);
  }
}

/** Check the server, log in, and fetch the folder to mount: one clear line for each failure. */
async function connect(client: GirderClient, store: RestStore, config: MountConfig): Promise<FolderDoc> {
  try {
    await client.checkServer();
    await client.login();
  } catch (err) {
    throw new UsageError(errorMessage(err), 1);
  }
  try {
    return await store.getFolder(config.folderId);
  } catch (err) {
    if (err instanceof GirderError && (err.isMissing || err.isAccessDenied || err.status === 400)) {
      throw new UsageError(`folder ${config.folderId} does not exist or you cannot read it (Girder said: ${err.message}); check the id and your access`, 1);
    }
    throw new UsageError(`cannot read folder ${config.folderId}: ${errorMessage(err)}`, 1);
  }
}

function warnIfPlainHttp(apiUrl: string, logger: Logger): void {
  const url = new URL(apiUrl);
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname) || url.hostname.startsWith('127.');
  if (url.protocol === 'http:' && !loopback) {
    logger.warn({ apiUrl }, 'plain http to a remote host: credentials and data cross the network unencrypted; use https');
  }
}

/** Tell systemd (Type=notify) about readiness; needs NotifyAccess=all as systemd-notify is a child. */
function notifySystemd(args: string[], logger: Logger): void {
  if (process.env.NOTIFY_SOCKET === undefined) return;
  const child = spawn('systemd-notify', [...args, `--pid=${process.pid}`], { stdio: 'ignore' });
  child.on('error', (err) => logger.warn({ err: err.message }, 'systemd-notify failed'));
}
