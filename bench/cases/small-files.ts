// A tree of small files copied in with `cp -r` (timed until the uploads finished) and copied out
// with `cp -r` through a fresh mount (cold), each vs a local `cp -r` of the same tree (curl uploads
// one by one would take far longer than either, so the reference is the local disk). The mounts
// talk to Girder through a counting proxy, which adds well under a millisecond per request.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CountingProxy } from '../../test/helpers/counting-proxy.js';
import type { BenchContext } from '../lib/context.js';
import type { DataSet } from '../lib/dataset.js';
import { Measured } from '../lib/measured.js';

const FILE_SIZE = 4096;

export async function smallFiles(ctx: BenchContext, data: DataSet): Promise<void> {
  const n = ctx.opts.smallFiles;
  const tree = path.join(ctx.work, 'small');
  await mkdir(tree, { recursive: true });
  for (let i = 0; i < n; i++) await writeFile(path.join(tree, `f-${String(i).padStart(5, '0')}.bin`), randomBytes(FILE_SIZE));

  const copyIn = new Measured();
  const copyOut = new Measured();
  const local: number[] = [];
  // a counting proxy in front of the server, for the breakdown of the requests by kind
  const proxy = await CountingProxy.start({ target: data.server.server.info.apiUrl });
  ctx.onCleanup(() => proxy.close());
  const via = { apiUrl: proxy.apiUrl };
  let inBreakdown = '';
  let outBreakdown = '';
  for (const run of ctx.runs()) {
    const dir = `small-${run.run}`;
    const m = await data.mount(`small-in-${run.run}`, via);
    await m.timed('ls "$M" > /dev/null');
    let made = await m.countRequests();
    let mark = proxy.mark();
    copyIn.samples.push((await copyIn.watch(m.mount.pid, () => m.untilUploaded(`cp -r "$W/small" "$M/${dir}"`))).uploaded);
    copyIn.requests.push((await made()).requests);
    inBreakdown = proxy.describe(mark).replace(/\n/g, ', ');
    await m.release();

    const out = await data.mount(`small-out-${run.run}`, via);
    made = await out.countRequests();
    mark = proxy.mark();
    copyOut.samples.push(await copyOut.watch(out.mount.pid, async () => (await out.timed(`cp -r "$M/${dir}" "$W/out-${run.run}"`)).seconds));
    copyOut.requests.push((await made()).requests);
    outBreakdown = proxy.describe(mark).replace(/\n/g, ', ');
    await out.release(run.last);
    await ctx.timed(`diff -r "$W/small" "$W/out-${run.run}" && rm -r "$W/out-${run.run}"`);
    // every run starts from the same server state (on mongomock each request scans every file)
    if (!ctx.keeps(run)) {
      const folder = (await data.server.admin.listFolders(data.folderId)).find((f) => f.name === dir);
      if (folder !== undefined) await data.server.admin.delete(`/folder/${folder._id}`);
    }

    local.push((await ctx.timed(`cp -r "$W/small" "$W/local-${run.run}"`)).seconds);
    await ctx.timed(`rm -r "$W/local-${run.run}"`);
    ctx.log(`small-files run ${run.run}: in ${copyIn.samples.at(-1)?.toFixed(1)} s, out ${copyOut.samples.at(-1)?.toFixed(1)} s, local ${local.at(-1)?.toFixed(2)} s`);
  }
  ctx.note(`small files: requests of one cp -r in: ${inBreakdown}`);
  ctx.note(`small files: requests of one cp -r out: ${outBreakdown}`);
  ctx.addRow(copyIn.row({ name: `cp -r of ${n} x 4 KiB in, until uploaded`, unit: 's', refName: 'local cp -r', ref: local }));
  ctx.addRow(copyOut.row({ name: `cp -r of ${n} x 4 KiB out (fresh mount)`, unit: 's', refName: 'local cp -r', ref: local }));
}
