// `npm run bench:write-rss`: peak RSS of the daemon while `cp` writes a big file (default 2 GiB)
// into the mount and the daemon uploads it (issue 3: target under 200 MiB). Also checks that the
// server ends with the same SHA-512 as the local file.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeRandomFile } from '../test/helpers/random-file.js';
import { repoRoot } from '../test/helpers/girder-server.js';
import { BenchContext } from './lib/context.js';
import { parseOptions, USAGE } from './lib/options.js';
import { hostInfo, RSS_TARGET_MIB, saveResults } from './lib/report.js';
import { RssWatch } from './lib/rss.js';
import { MiB, mibPerS } from './lib/stats.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (!argv.includes('--size-mib')) argv.push('--size-mib', '2048');
  if (!argv.includes('--runs')) argv.push('--runs', '1');
  let opts;
  try {
    opts = parseOptions(argv, repoRoot());
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
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
    for (let run = 1; run <= opts.runs; run++) {
      ctx.log(`run ${run}: writing ${opts.sizeMiB} MiB of random bytes to ${local}`);
      const sha512 = await writeRandomFile(local, size);
      const m = await ctx.mount(server.server, folder._id, `write-rss-${run}`);
      const M = m.mount.mountpoint;
      await ctx.timed('ls "$M" > /dev/null', { M });
      let watch = await RssWatch.start(m.mount.pid);
      const started = performance.now();
      await ctx.timed(`cp "${local}" "$M/write-${run}.bin"`, { M });
      writeRss.push(await watch.stop());
      watch = await RssWatch.start(m.mount.pid);
      await m.waitUploadsDone();
      seconds.push((performance.now() - started) / 1000);
      uploadRss.push(await watch.stop());
      await m.release(run === opts.runs);
      const item = (await server.admin.listItems(folder._id)).find((i) => i.name === `write-${run}.bin`);
      const file = item === undefined ? undefined : (await server.admin.listFiles(item._id))[0];
      if (file?.sha512 !== sha512) throw new Error(`the server's write-${run}.bin has sha512 ${file?.sha512 ?? '(none)'}, expected ${sha512}`);
      ctx.log(`run ${run}: ${seconds.at(-1)?.toFixed(1)} s, peak RSS ${writeRss.at(-1)?.toFixed(0)} MiB while cp wrote, ${uploadRss.at(-1)?.toFixed(0)} MiB while uploading`);
    }
    const peak = Math.max(...writeRss, ...uploadRss);
    const best = mibPerS(size, Math.min(...seconds));
    const lines = [
      `girder-mount write RSS, ${startedAt}, ${opts.runs} run(s), cp of ${opts.sizeMiB} MiB into the mount until uploaded`,
      '',
      '| phase | daemon peak RSS (max of runs) | target | met |',
      '|---|---|---|---|',
      `| cp writing ${opts.sizeMiB} MiB | ${Math.max(...writeRss).toFixed(0)} MiB | < ${RSS_TARGET_MIB} MiB | ${Math.max(...writeRss) < RSS_TARGET_MIB ? 'yes' : 'NO'} |`,
      `| upload after close | ${Math.max(...uploadRss).toFixed(0)} MiB | < ${RSS_TARGET_MIB} MiB | ${Math.max(...uploadRss) < RSS_TARGET_MIB ? 'yes' : 'NO'} |`,
      '',
      `cp until uploaded: ${seconds.map((x) => x.toFixed(1)).join(', ')} s (best ${best.toFixed(0)} MiB/s); the server's SHA-512 matched`,
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);
    const file = await saveResults(opts.resultsDir, 'write-rss', {
      startedAt,
      finishedAt: new Date().toISOString(),
      host: hostInfo(),
      options: { ...opts, only: [...opts.only] },
      notes: ctx.notes,
      runs: seconds.map((s, i) => ({ seconds: s, writeRssMiB: writeRss[i], uploadRssMiB: uploadRss[i] })),
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
