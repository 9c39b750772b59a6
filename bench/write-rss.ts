// `npm run bench:write-rss`: peak RSS of the daemon while `cp` writes a big file (default 2 GiB)
// into the mount and the daemon uploads it (issue 3: target under 200 MiB). Also checks that the
// server ends with the same SHA-512 as the local file. `--readers N` also runs N `sha512sum`s of
// one file on the server (`--read-mib`, default 256), cold, while cp writes (issue 12: 16 readers
// of a 256 MiB file plus a 1 GiB write, `--readers 16 --size-mib 1024`), and checks what they read.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeRandomFile } from '../test/helpers/random-file.js';
import { repoRoot } from '../test/helpers/girder-server.js';
import { BenchContext } from './lib/context.js';
import { count, parseOptions, USAGE } from './lib/options.js';
import { hostInfo, RSS_TARGET_MIB, saveResults } from './lib/report.js';
import { RssWatch } from './lib/rss.js';
import { MiB, mibPerS } from './lib/stats.js';

/** Takes `--name N` out of `argv`: a whole number >= 0, or `fallback`. */
function takeCount(argv: string[], name: string, fallback: number): number {
  const at = argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const n = count(name, argv[at + 1] ?? '(nothing)', fallback, 0);
  argv.splice(at, 2);
  return n;
}

const READERS_USAGE = `write-rss also takes:
  --readers N       sha512sum a file on the server N times at once while cp writes (default 0)
  --read-mib N      size of that file (default 256)`;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let readers: number;
  let readMiB: number;
  try {
    readers = takeCount(argv, 'readers', 0);
    readMiB = takeCount(argv, 'read-mib', 256);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${READERS_USAGE}\n`);
    process.exit(2);
  }
  if (!argv.includes('--size-mib')) argv.push('--size-mib', '2048');
  if (!argv.includes('--runs')) argv.push('--runs', '1');
  let opts;
  try {
    opts = parseOptions(argv, repoRoot());
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n${READERS_USAGE}\n`);
    process.exit(2);
  }
  const startedAt = new Date().toISOString();
  const ctx = await BenchContext.create(opts);
  process.on('SIGINT', () => void ctx.cleanup().then(() => process.exit(130)));
  let failed = false;
  try {
    const server = await ctx.startServer();
    const folder = await server.admin.createFolder(server.server.info.folders.adminPrivate, 'write-rss');
    const local = path.join(ctx.work, 'write.bin');
    const size = opts.sizeMiB * MiB;
    const writeRss: number[] = [];
    const uploadRss: number[] = [];
    const seconds: number[] = [];
    const readSeconds: number[] = [];
    let readSha512 = '';
    if (readers > 0) {
      const readLocal = path.join(ctx.work, 'read.bin');
      ctx.log(`uploading a ${readMiB} MiB file for ${readers} readers`);
      readSha512 = await writeRandomFile(readLocal, readMiB * MiB);
      await server.admin.uploadFileFromDisk({ type: 'folder', id: folder._id }, 'read.bin', readLocal);
    }
    for (let run = 1; run <= opts.runs; run++) {
      ctx.log(`run ${run}: writing ${opts.sizeMiB} MiB of random bytes to ${local}`);
      const sha512 = await writeRandomFile(local, size);
      const m = await ctx.mount(server.server, folder._id, `write-rss-${run}`);
      await m.timed('ls "$M" > /dev/null');
      let watch = await RssWatch.start(m.mount.pid);
      const started = performance.now();
      // each reader opens the file on its own, cold: they share what the daemon fetches
      const reading = readers === 0 ? Promise.resolve([]) : Promise.all(Array.from({ length: readers }, () =>
        m.timed('sha512sum "$M/read.bin"').then((r) => ({ ...r, sha512: r.stdout.split(' ')[0] }))));
      await m.timed(`cp "${local}" "$M/write-${run}.bin"`);
      const read = await reading;
      writeRss.push(await watch.stop());
      for (const r of read) {
        if (r.sha512 !== readSha512) throw new Error(`a reader of read.bin got sha512 ${r.sha512}, expected ${readSha512}`);
      }
      if (read.length > 0) readSeconds.push(Math.max(...read.map((r) => r.seconds)));
      watch = await RssWatch.start(m.mount.pid);
      await m.waitUploadsDone();
      seconds.push((performance.now() - started) / 1000);
      uploadRss.push(await watch.stop());
      await m.release(run === opts.runs);
      const item = (await server.admin.listItems(folder._id)).find((i) => i.name === `write-${run}.bin`);
      const file = item === undefined ? undefined : (await server.admin.listFiles(item._id))[0];
      if (file?.sha512 !== sha512) throw new Error(`the server's write-${run}.bin has sha512 ${file?.sha512 ?? '(none)'}, expected ${sha512}`);
      ctx.log(`run ${run}: ${seconds.at(-1)?.toFixed(1)} s, peak RSS ${writeRss.at(-1)?.toFixed(0)} MiB while cp wrote${readers > 0 ? ` (and ${readers} readers)` : ''}, ${uploadRss.at(-1)?.toFixed(0)} MiB while uploading`);
    }
    const peak = Math.max(...writeRss, ...uploadRss);
    const best = mibPerS(size, Math.min(...seconds));
    const lines = [
      `girder-mount write RSS, ${startedAt}, ${opts.runs} run(s), cp of ${opts.sizeMiB} MiB into the mount until uploaded`,
      '',
      '| phase | daemon peak RSS (max of runs) | target | met |',
      '|---|---|---|---|',
      `| cp writing ${opts.sizeMiB} MiB${readers > 0 ? `, ${readers} readers of a ${readMiB} MiB file` : ''} | ${Math.max(...writeRss).toFixed(0)} MiB | < ${RSS_TARGET_MIB} MiB | ${Math.max(...writeRss) < RSS_TARGET_MIB ? 'yes' : 'NO'} |`,
      `| upload after close | ${Math.max(...uploadRss).toFixed(0)} MiB | < ${RSS_TARGET_MIB} MiB | ${Math.max(...uploadRss) < RSS_TARGET_MIB ? 'yes' : 'NO'} |`,
      '',
      `cp until uploaded: ${seconds.map((x) => x.toFixed(1)).join(', ')} s (best ${best.toFixed(0)} MiB/s); the server's SHA-512 matched`,
      ...(readers > 0 ? [`${readers} readers of ${readMiB} MiB, all read right, the last done after ${readSeconds.map((x) => x.toFixed(1)).join(', ')} s`] : []),
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);
    const file = await saveResults(opts.resultsDir, 'write-rss', {
      startedAt,
      finishedAt: new Date().toISOString(),
      host: hostInfo(),
      options: { ...opts, only: [...opts.only], readers, readMiB },
      notes: ctx.notes,
      runs: seconds.map((s, i) => ({ seconds: s, writeRssMiB: writeRss[i], uploadRssMiB: uploadRss[i], readersSeconds: readSeconds[i] })),
      peakRssMiB: peak,
      targetMiB: RSS_TARGET_MIB,
      met: peak < RSS_TARGET_MIB,
    });
    process.stdout.write(`\nJSON: ${file}\n`);
  } catch (err) {
    failed = true;
    ctx.log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  await ctx.holdKept([]);
  await ctx.cleanup();
  process.exit(failed ? 1 : 0);
}

void main();
