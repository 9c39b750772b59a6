import { spawn } from 'node:child_process';
import { lockCacheDir, prepareCacheDir, removeOrphans } from './cache-dir.js';
import type { MountConfig } from './config.js';
import { ControlServer } from './control/server.js';
import { controlSocketPath } from './control/socket-path.js';
import type { MemoryLine, MountStatus, UnmountAnswer } from './control/status.js';
import { FsError, UsageError, errorMessage } from './errors.js';
import { GirderError, isRefused } from './girder/girder-error.js';
import { applyMallocSettings, trimMallocEvery } from './fuse/malloc-settings.js';
import { collectHeapWhenGrown } from './heap-collector.js';
import { mountFuse, type FuseMount } from './fuse/mount.js';
import { prepareMountpoint } from './fuse/mountpoint.js';
import { ClientConfigError, GirderClient } from './girder/client.js';
import { RestStore } from './girder/rest-store.js';
import type { FolderDoc } from './girder/types.js';
import { createLogger, type Logger } from './log.js';
import { BlockCache, CachedReader, defaultCacheMaxBytes } from './vfs/cache/index.js';
import { createVfs, type WiredVfs } from './vfs/create-vfs.js';
import { startLocalWriter } from './vfs/local-writes/index.js';
import type { DeleteQueue } from './vfs/writeback/delete-queue.js';
import type { UploadQueue } from './vfs/writeback/upload-queue.js';

/** How long the end waits for listings and upload follow-ups still talking to Girder. */
const QUIESCE_MS = 10_000;
/**
 * An operation is answered EIO once it has waited `--timeout` plus this long (op-watchdog.ts): the
 * requests under it give up after `--timeout`, and the answer follows within this margin.
 */
export const OP_GRACE_MS = 2000;

/** Mount, serve until told to stop, drain uploads, unmount. Resolves with the exit code. */
export async function runMount(config: MountConfig): Promise<number> {
  const logger = createLogger(config.logLevel);
  applyMallocSettings(logger);
  const stopTrimming = trimMallocEvery(logger);
  const heap = collectHeapWhenGrown(logger);
  const stopMemoryUpkeep = (): void => {
    stopTrimming();
    heap.stop();
  };
  const stop = new StopSignal();
  stop.listen(logger);
  let session: Session;
  try {
    session = await Session.start(config, logger);
  } catch (err) {
    stop.forget();
    stopMemoryUpkeep();
    throw err;
  }
  stop.onStop(() => void session.stop(config.drainTimeoutS, true));
  stop.onReload(() => session.reload());
  return session.finished.finally(stopMemoryUpkeep);
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
  /** Set once the daemon is ending: the mount was unmounted or detached, and what that answered. */
  private ending: UnmountAnswer | undefined;
  private readonly startedAt = Date.now();
  private control: ControlServer | undefined;

  private constructor(
    private readonly config: MountConfig,
    private readonly logger: Logger,
    private readonly mountpoint: string,
    private readonly client: GirderClient,
    private readonly cache: BlockCache,
    private readonly model: WiredVfs,
    private readonly fuse: FuseMount,
    private readonly unlock: () => Promise<void>,
  ) {
    this.finished = new Promise((resolve) => (this.finish = resolve));
    this.uploads = model.uploads;
    this.removals = model.removals;
  }

  private readonly uploads: UploadQueue;
  private readonly removals: DeleteQueue;

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
      throw err instanceof ClientConfigError ? new UsageError(err.message) : err;
    }
    try {
      const store = new RestStore(client, logger);
      const root = await connect(client, store, config);
      await store.probeListingRoute(config.folderId);
      // From here on a failure that says the server is away makes the mount serve what it knows.
      client.health.watch();
      // Before the first write can start it under load (young-generation.ts, workersStarted).
      await startLocalWriter();
      const maxBytes = config.cacheMaxBytes ?? (await defaultCacheMaxBytes(dirs.blocks));
      const cache = await BlockCache.open({ dir: dirs.blocks, maxBytes, logger });
      // A stalled stream fails its readers after --timeout without a byte, as a stalled request would.
      const reader = new CachedReader(store, cache, { logger, streamStallMs: config.timeoutS * 1000 });
      const owner = { uid: config.uid, gid: config.gid, readOnly: config.readOnly, umask: config.umask };
      const model = await createVfs({
        store, root, reader, owner, ttlMs: config.attrTtlS * 1000, logger, syncUploads: config.syncUploads,
        dirs: { root: dirs.root, data: dirs.data, journal: dirs.journal },
      });
      const { vfs, uploads, removals, journaledTemps } = model;
      const retryNow = (why: string, cause?: 'auth' | 'server'): void => {
        uploads.retryNow(why, cause);
        removals.retryNow();
      };
      client.onLogin(() => retryNow('a new login to Girder', 'auth'));
      client.health.onReachable(() => retryNow('Girder is reachable again', 'server'));
      if (journaledTemps.size > 0) logger.info({ count: journaledTemps.size }, 'resuming uploads left by an earlier run');
      await removeOrphans(dirs.data, journaledTemps);
      const fuse = await mountFuse(model.fs, mountpoint, {
        readOnly: config.readOnly,
        allowOther: config.allowOther,
        uid: config.uid,
        gid: config.gid,
        attrTimeoutS: config.attrTtlS,
        fsName: `girder:${config.folderId}`,
      }, logger, {
        boundMs: config.timeoutS * 1000 + OP_GRACE_MS,
        progressOf: (path) => vfs.progressOf(path),
        describe: (path) => ({ ...vfs.waitsOf(path), girderRequests: client.inFlight() }),
      });
      const session = new Session(config, logger, mountpoint, client, cache, model, fuse, unlock);
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
    // An unmount from outside (fusermount -u, or -uz once the last user left): finish and end.
    void this.fuse.released.then(() => this.afterRelease(this.config.drainTimeoutS));
    this.logger.info({ mountpoint: this.mountpoint, folderId: this.config.folderId, apiUrl: this.config.apiUrl }, 'mounted');
    notifySystemd(['--ready', `--status=serving ${this.mountpoint}`], this.logger);
  }

  reload(): void {
    this.model.tree.clear();
    this.logger.info('SIGHUP: metadata cache dropped');
    this.uploads.retryNow('SIGHUP');
    this.removals.retryNow();
  }

  async status(): Promise<MountStatus> {
    // Read before the queue: an upload that moves to lost+found meanwhile is then not in both.
    const failedUploads = await this.uploads.kept();
    const cache = this.cache.stats();
    return {
      pid: process.pid,
      mountpoint: this.mountpoint,
      apiUrl: this.config.apiUrl,
      folderId: this.config.folderId,
      readOnly: this.config.readOnly,
      uptimeS: (Date.now() - this.startedAt) / 1000,
      ...(this.ending?.detached === true ? { detached: true } : {}),
      uploads: this.uploads.status().map((u) => ({ ...u })),
      removals: this.removals.pending,
      failedUploads,
      lostAndFound: this.uploads.lostAndFoundDir,
      cache: { hits: cache.hits, misses: cache.misses, bytesCached: cache.bytesCached, maxBytes: cache.maxBytes },
      requests: this.client.stats(),
      server: this.client.health.snapshot(),
      memory: memoryLine(),
    };
  }

  /**
   * Drain uploads (bounded), then unmount; a busy mount is detached and served until its last user
   * leaves. Without `force`, pending uploads keep it mounted. Once past the drain, the daemon is
   * ending: later calls get the same answer.
   */
  stop(timeoutS: number, force: boolean): Promise<UnmountAnswer> {
    if (this.ending !== undefined) return Promise.resolve(this.ending);
    if (this.stopping !== undefined) return this.stopping;
    const attempt = this.drainAndUnmount(timeoutS, force);
    this.stopping = attempt;
    void attempt.then(() => {
      this.stopping = undefined;
    });
    return attempt;
  }

  private async drainAndUnmount(timeoutS: number, force: boolean): Promise<UnmountAnswer> {
    notifySystemd(['STOPPING=1', '--status=draining uploads'], this.logger);
    const pendingBefore = this.uploads.status().length;
    if (pendingBefore > 0) this.logger.info({ pending: pendingBefore, timeoutS }, 'waiting for pending uploads');
    const deadline = Date.now() + timeoutS * 1000;
    const drained = (await this.uploads.drain(timeoutS * 1000)) && (await this.removals.drain(Math.max(0, deadline - Date.now())));
    const pending = this.uploads.status().length;
    if (!drained && !force) {
      return { unmounted: false, detached: false, pending, message: `${pending} upload(s) still pending after ${timeoutS} s; the mount stays up. Wait and try again, or use --force (they resume at the next start)` };
    }
    const left = pending === 0 ? 'every upload is on the server' : `${pending} upload(s) resume at the next start with the same cache directory`;
    try {
      await this.fuse.unmount();
    } catch (err) {
      if (!(err instanceof FsError && err.errno === 'EBUSY')) {
        this.logger.error({ err: errorMessage(err) }, 'unmount failed');
        return { unmounted: false, detached: false, pending, message: `could not unmount ${this.mountpoint}: ${errorMessage(err)}` };
      }
      await this.fuse.detach();
      this.ending = {
        unmounted: false, detached: true, pending,
        message: `${this.mountpoint} is busy (a process has a file open or its working directory there): detached it; ` +
          `the daemon (pid ${process.pid}) serves those processes until they leave, then exits; ${left}`,
      };
      this.logger.warn({ mountpoint: this.mountpoint }, 'mount busy: detached; serving the processes still inside until they leave, then exiting');
      notifySystemd(['--status=detached; serving the processes still inside'], this.logger);
      return this.ending;
    }
    this.ending = { unmounted: true, detached: false, pending, message: `unmounted ${this.mountpoint}; ${left}` };
    return this.ending;
  }

  /**
   * The kernel let go of the mount (our unmount, the last user of a detached one leaving, or an
   * unmount from outside): no request can come any more. Finish the uploads that can (bounded),
   * then close, in order, everything that talks to Girder, and end.
   */
  private async afterRelease(drainTimeoutS: number): Promise<void> {
    this.ending ??= { unmounted: true, detached: false, pending: this.uploads.status().length, message: `${this.mountpoint} was unmounted from outside` };
    if (this.uploads.status().length > 0) {
      this.logger.info({ pending: this.uploads.status().length }, 'unmounted; finishing pending uploads before exiting');
      await this.uploads.drain(drainTimeoutS * 1000);
    }
    await this.removals.drain(drainTimeoutS * 1000);
    await this.uploads.close().catch(() => undefined);
    await this.removals.close().catch(() => undefined);
    if (!(await this.model.vfs.quiesce(QUIESCE_MS))) this.logger.warn('requests of listings or finished uploads still running at exit');
    await this.cache.close().catch(() => undefined);
    await this.client.close().catch(() => undefined);
    await this.unlock();
    this.logger.info({ mountpoint: this.mountpoint }, 'unmounted');
    // An unmount request waits for its answer on the control socket: close it once that is sent.
    setTimeout(() => {
      void (this.control?.close() ?? Promise.resolve()).catch(() => undefined).finally(() => this.finish(0));
    }, 100);
  }
}

function memoryLine(): MemoryLine {
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external, arrayBuffers };
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
    if (err instanceof GirderError && (isRefused(err) || err.status === 400)) {
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
