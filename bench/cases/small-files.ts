// A tree of small files copied in with `cp -r` (timed until the uploads finished) and copied out
// with `cp -r` through a fresh mount (cold), each vs a local `cp -r` of the same tree (curl uploads
// one by one would take far longer than either, so the reference is the local disk). The mounts
// talk to Girder through a counting proxy, which adds well under a millisecond per request.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CountingProxy } from '../../test/helpers/counting-proxy.js';
import type { BenchContext } from '../lib/context.js';
import type { DataSet } from '../lib/dataset.js';
import { DaemonUsage, RssWatch } from '../lib/rss.js';
import { median } from '../lib/stats.js';

const FILE_SIZE = 4096;

export async function smallFiles(ctx: BenchContext, data: DataSet): Promise<void> {
  const n = ctx.opts.smallFiles;
  const tree = path.join(ctx.work, 'small');
  await mkdir(tree, { recursive: true });
  for (let i = 0; i < n; i++) await writeFile(path.join(tree, `f-${String(i).padStart(5, '0')}.bin`), randomBytes(FILE_SIZE));

  const copyIn: number[] = [];
  const copyOut: number[] = [];
  const local: number[] = [];
  const reqIn: number[] = [];
  const reqOut: number[] = [];
  const inUse = new DaemonUsage();
  const outUse = new DaemonUsage();
  // a counting proxy in front of the server, for the breakdown of the requests by kind
  const proxy = await CountingProxy.start({ target: data.server.server.info.apiUrl });
  ctx.onCleanup(() => proxy.close());
  const via = { apiUrl: proxy.apiUrl };
  let inBreakdown = '';
  let outBreakdown = '';
  for (let run = 1; run <= ctx.opts.runs; run++) {
    const dir = `small-${run}`;
    const m = await ctx.mount(data.server.server, data.folderId, `small-in-${run}`, via);
    let M = m.mount.mountpoint;
    await ctx.timed('ls "$M" > /dev/null', { M });
    let before = (await m.status()).requests.requests;
    let mark = proxy.mark();
    let watch = await RssWatch.start(m.mount.pid);
    const started = performance.now();
    await ctx.timed(`cp -r "$W/small" "$M/${dir}"`, { M });
    await m.waitUploadsDone();
    copyIn.push((performance.now() - started) / 1000);
    await inUse.add(watch);
    reqIn.push((await m.status()).requests.requests - before);
    inBreakdown = proxy.describe(mark).replace(/\n/g, ', ');
    await m.release();

    const out = await ctx.mount(data.server.server, data.folderId, `small-out-${run}`, via);
    M = out.mount.mountpoint;
    before = (await out.status()).requests.requests;
    mark = proxy.mark();
    watch = await RssWatch.start(out.mount.pid);
    copyOut.push((await ctx.timed(`cp -r "$M/${dir}" "$W/out-${run}"`, { M })).seconds);
    await outUse.add(watch);
    reqOut.push((await out.status()).requests.requests - before);
    outBreakdown = proxy.describe(mark).replace(/\n/g, ', ');
    await out.release(run === ctx.opts.runs);
    await ctx.timed(`diff -r "$W/small" "$W/out-${run}" && rm -r "$W/out-${run}"`);
    // every run starts from the same server state (on mongomock each request scans every file)
    if (!(ctx.opts.keep && run === ctx.opts.runs)) {
      const folder = (await data.server.admin.listFolders(data.folderId)).find((f) => f.name === dir);
      if (folder !== undefined) await data.server.admin.delete(`/folder/${folder._id}`);
    }

    local.push((await ctx.timed(`cp -r "$W/small" "$W/local-${run}"`)).seconds);
    await ctx.timed(`rm -r "$W/local-${run}"`);
    ctx.log(`small-files run ${run}: in ${copyIn.at(-1)?.toFixed(1)} s, out ${copyOut.at(-1)?.toFixed(1)} s, local ${local.at(-1)?.toFixed(2)} s`);
  }
  ctx.note(`small files: requests of one cp -r in: ${inBreakdown}`);
  ctx.note(`small files: requests of one cp -r out: ${outBreakdown}`);
  ctx.addRow({ name: `cp -r of ${n} x 4 KiB in, until uploaded`, unit: 's', ours: copyIn, refName: 'local cp -r', ref: local, ...inUse.fields(), requests: median(reqIn) });
  ctx.addRow({ name: `cp -r of ${n} x 4 KiB out (fresh mount)`, unit: 's', ours: copyOut, refName: 'local cp -r', ref: local, ...outUse.fields(), requests: median(reqOut) });
}
