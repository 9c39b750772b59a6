// `npm run bench:soak`: parallel readers and writers (plus mkdir, mv, rm) through a real mount of a
// real Girder for --minutes (default 30), sampling the daemon's RSS and open fds; at the end, once
// the uploads drained, every file's SHA-512 on Girder (REST) and through the mount must be the one
// last written. Prints a table; writes JSON to bench/results/. Not a test: never run in CI.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rest } from '../test/helpers/girder-rest.js';
import { repoRoot, startGirder, type GirderServer } from '../test/helpers/girder-server.js';
import { waitUploadsDone, mountStatus } from '../test/helpers/mount-status.js';
import { startMount, type Mount } from '../test/helpers/mount.js';
import { hostInfo, saveResults } from './lib/report.js';
import { killAll, sh } from './soak/children.js';
import type { SoakContext } from './soak/context.js';
import { DaemonLog } from './soak/daemon-log.js';
import { Model } from './soak/model.js';
import { namespaceLoop } from './soak/namespace-worker.js';
import { parseSoakOptions, USAGE, type SoakOptions } from './soak/options.js';
import { Random } from './soak/random.js';
import { readerLoop } from './soak/reader.js';
import { flatness, formatReport } from './soak/report.js';
import { Sampler } from './soak/sampler.js';
import { Sources } from './soak/sources.js';
import { Tally } from './soak/tally.js';
import { checkMount, checkServer } from './soak/verify.js';
import { inspectPath } from './soak/inspect.js';
import { writerLoop } from './soak/writer.js';

const POOL_FILES = 16;
const INITIAL_DIRS = ['d-a', 'd-b', 'd-c'];
const DRAIN_TIMEOUT_MS = 30 * 60_000;

const t0 = performance.now();
const mib = (x: number | undefined, unit = 2 ** 20): string => (x === undefined ? '?' : (x / unit).toFixed(0));
function log(message: string): void {
  process.stderr.write(`[soak ${((performance.now() - t0) / 1000).toFixed(0).padStart(5)}s] ${message}\n`);
}

/** Everything started, stopped in reverse order; also on Ctrl-C. */
const cleanups: Array<{ what: string; fn: () => Promise<unknown> }> = [];
async function cleanup(): Promise<void> {
  killAll();
  for (const { what, fn } of cleanups.reverse()) {
    await fn().catch((err: unknown) => log(`cleanup (${what}): ${err instanceof Error ? err.message : String(err)}`));
  }
  cleanups.length = 0;
}

async function main(): Promise<void> {
  let opts: SoakOptions;
  try {
    opts = parseSoakOptions(process.argv.slice(2), repoRoot());
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  const startedAt = new Date().toISOString();
  let ctx: SoakContext | undefined;
  let interrupted = false;
  const onSignal = (signal: string): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping and cleaning up (again to quit at once)`);
    if (ctx !== undefined) ctx.stopped = true;
    void cleanup().then(() => {
      log('cleaned up');
      process.exit(130);
    });
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP'));

  let exitCode = 1;
  try {
    const random = new Random(opts.seed);
    log(`seed ${opts.seed}; ${opts.minutes} min, ${opts.writers} writers, ${opts.readers} readers, ${opts.namespaceWorkers} namespace workers, sizes ${opts.minSize} B .. ${(opts.maxSize / 2 ** 20).toFixed(1)} MiB${Object.keys(opts.daemonEnv).length > 0 ? `; daemon env ${JSON.stringify(opts.daemonEnv)}` : ''}`);
    const work = await mkdtemp(path.join(tmpdir(), 'girder-soak-'));
    cleanups.push({ what: 'work dir', fn: () => rm(work, { recursive: true, force: true }) });
    const sources = await Sources.create(work, random, opts.minSize, opts.maxSize, POOL_FILES);
    log(`made ${POOL_FILES} source files (${(sources.poolBytes / 2 ** 20).toFixed(0)} MiB) in ${work}`);

    const server: GirderServer = await startGirder();
    cleanups.push({ what: 'Girder server', fn: () => server.stop() });
    const api = rest(server, 'admin');
    const folder = await api.createFolder(server.info.folders.adminPrivate, 'soak');
    log(`Girder at ${server.info.apiUrl} (pid ${server.info.pid}); mounting folder ${folder._id}`);

    // ended after the mount's cleanup (they run last first), so it has the daemon's last lines
    const logFile = opts.daemonLogFile === undefined ? undefined : createWriteStream(opts.daemonLogFile);
    if (logFile !== undefined) cleanups.push({ what: 'daemon log', fn: () => new Promise<void>((resolve) => logFile.end(resolve)) });
    const mount: Mount = await startMount({ server, folderId: folder._id, timeoutMs: 120_000, env: opts.daemonEnv });
    // on Ctrl-C the server may be gone already: do not wait long for the daemon to drain into it
    cleanups.push({
      what: 'mount',
      fn: async () => {
        if (interrupted) await mount.stop(10_000);
        await mount.cleanup();
      },
    });
    const daemonLog = new DaemonLog();
    daemonLog.watch(mount.process.stdout);
    daemonLog.watch(mount.process.stderr);
    if (logFile !== undefined) {
      mount.process.stdout?.pipe(logFile, { end: false });
      mount.process.stderr?.pipe(logFile, { end: false });
      log(`daemon log: ${opts.daemonLogFile}`);
    }
    log(`mounted at ${mount.mountpoint} (daemon pid ${mount.pid}, cache ${mount.cacheDir})`);

    const model = new Model(random);
    const soakT0 = performance.now();
    const tally = new Tally(soakT0);
    const c: SoakContext = {
      opts,
      mnt: mount.mountpoint,
      model,
      random,
      sources,
      tally,
      deadline: soakT0 + opts.minutes * 60_000,
      stopped: false,
      pendingUploads: 0,
      log,
      inspect: (path) => inspectPath(mount.mountpoint, api, folder._id, daemonLog, path),
    };
    ctx = c;
    for (const d of INITIAL_DIRS) {
      const r = await sh('mkdir "$M/$D"', { M: c.mnt, D: d }, 60_000);
      if (r.code !== 0) throw new Error(`mkdir ${d} through the mount failed: ${r.stderr}`);
      model.dirs.set(d, { path: d, busy: false });
    }

    const sampler = new Sampler(mount.pid, mount.mountpoint, soakT0, (s) => (c.pendingUploads = s.uploads.length));
    sampler.start(opts.sampleSeconds * 1000);
    cleanups.push({ what: 'sampler', fn: async () => sampler.stop() });
    const progress = setInterval(() => {
      const last = sampler.samples[sampler.samples.length - 1];
      log(
        `${tally.totalOps} ops, ${tally.failures.length} failed, ${tally.mismatches.length} mismatches; ${model.files.size} files in ${model.dirs.size} dirs; ` +
          `written ${(tally.bytesWritten / 2 ** 20).toFixed(0)} MiB, read ${(tally.bytesRead / 2 ** 20).toFixed(0)} MiB; ` +
          `RSS ${mib(last?.rssKiB, 1024)} MiB (heap ${mib(last?.heapTotal)}, external ${mib(last?.external)}), fds ${last?.fds ?? '?'}, pending uploads ${last?.pendingUploads ?? '?'}, load ${last?.load1 ?? '?'}`,
      );
    }, 60_000);
    cleanups.push({ what: 'progress', fn: async () => clearInterval(progress) });

    log(`soak: ${opts.minutes} min`);
    await Promise.all([
      ...Array.from({ length: opts.writers }, () => writerLoop(c)),
      ...Array.from({ length: opts.readers }, () => readerLoop(c)),
      ...Array.from({ length: opts.namespaceWorkers }, () => namespaceLoop(c)),
    ]);
    clearInterval(progress);
    if (c.stopped) return;
    sampler.phase = 'drain';
    log(`soak over: ${tally.totalOps} operations; waiting for the uploads to drain`);
    const drainStart = performance.now();
    const drained = await waitUploadsDone(mount.mountpoint, DRAIN_TIMEOUT_MS);
    const drainS = (performance.now() - drainStart) / 1000;
    await sampler.sample();
    sampler.stop();
    log(`drained in ${drainS.toFixed(1)} s (${drained.requests.requests} requests, ${drained.requests.errors} errors, ${drained.requests.retries} retries)`);

    log('checking every file on Girder (REST) and through the mount');
    const serverCheck = await checkServer(api, folder._id, model, tally);
    const mountCheck = await checkMount(mount.mountpoint, model, tally);
    const finalStatus = await mountStatus(mount.mountpoint);
    const flat = flatness(sampler.samples);
    const failed = tally.failures.length;
    const mismatches = tally.mismatches.length;
    const lost = serverCheck.missing.length + mountCheck.missing.length;
    const title = `girder-mount soak, ${startedAt}, ${opts.minutes} min, ${opts.writers} writers / ${opts.readers} readers / ${opts.namespaceWorkers} namespace, seed ${opts.seed}; ${model.files.size} files (${(model.totalBytes() / 2 ** 20).toFixed(0)} MiB) in ${model.dirs.size} dirs at the end`;
    const table = formatReport({
      title,
      tally,
      flat,
      server: serverCheck,
      mount: mountCheck,
      drainS,
      daemonWarnings: daemonLog.warnings,
      daemonErrors: daemonLog.errors,
    });
    process.stdout.write(`\n${table}\n`);
    for (const [msg, n] of daemonLog.byMessage) process.stdout.write(`daemon log: ${n} x ${msg}\n`);
    const file = await saveResults(opts.resultsDir, 'soak', {
      startedAt,
      finishedAt: new Date().toISOString(),
      host: hostInfo(),
      options: { ...opts },
      notes: [],
      table,
      operations: Object.fromEntries(tally.ops),
      bytesWritten: tally.bytesWritten,
      bytesRead: tally.bytesRead,
      backpressureS: tally.backpressureMs / 1000,
      flatness: flat,
      drainS,
      serverCheck,
      mountCheck,
      failures: tally.failures,
      mismatches: tally.mismatches,
      finalStatus: { ...finalStatus, uploads: finalStatus.uploads.length },
      daemonLog: { warnings: daemonLog.warnings, errors: daemonLog.errors, byMessage: Object.fromEntries(daemonLog.byMessage), first: daemonLog.kept },
      samples: sampler.samples,
    });
    process.stdout.write(`\nJSON: ${file}\n`);
    const clean = failed === 0 && mismatches === 0 && lost === 0 && serverCheck.unexpected.length === 0 && mountCheck.unexpected.length === 0;
    log(clean ? 'PASS: no failure, no mismatch, nothing missing or unexpected' : 'FAIL: see the table and the JSON');
    exitCode = clean ? 0 : 1;
  } catch (err) {
    log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  if (interrupted) return; // the signal handler cleans up and exits
  log('cleaning up');
  await cleanup();
  process.exit(exitCode);
}

void main();
