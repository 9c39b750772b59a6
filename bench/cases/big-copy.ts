// `cp` of a big local file into the mount, timed until the daemon reports no pending upload, vs a
// chunked upload of the same file with curl; then the same `cp` again (identical bytes: nothing
// may be uploaded) vs `sha512sum` of the file. The file's first bytes change every run, so the
// server never holds its content already (the mount would copy it server-side, sending nothing).
import type { BenchContext } from '../lib/context.js';
import { curlChunkedUpload } from '../lib/curl.js';
import type { DataSet } from '../lib/dataset.js';
import { Measured } from '../lib/measured.js';
import { median, mibPerS } from '../lib/stats.js';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';

export async function bigCopy(ctx: BenchContext, data: DataSet): Promise<void> {
  const first = new Measured();
  const again = new Measured();
  const cpReturns: number[] = [];
  const againCpReturns: number[] = [];
  const curl: number[] = [];
  const sha: number[] = [];
  const localCp: number[] = [];
  const admin = data.server.admin;
  const upLocal = path.join(ctx.work, 'up.bin');
  await ctx.timed(`cp "$W/${data.bigName}" "${upLocal}"`);
  for (const run of ctx.runs()) {
    const name = `copy-${run.run}.bin`;
    const fh = await open(upLocal, 'r+');
    await fh.write(randomBytes(64), 0, 64, 0);
    await fh.close();
    const m = await data.mount(`big-copy-${run.run}`);
    await m.timed('ls "$M" > /dev/null');
    const copied = (): Promise<{ returned: number; uploaded: number }> => m.untilUploaded(`cp "${upLocal}" "$M/${name}"`);

    await data.settle();
    let made = await m.countRequests();
    const firstCopy = await first.watch(m.mount.pid, copied);
    first.samples.push(mibPerS(data.bigSize, firstCopy.uploaded));
    cpReturns.push(mibPerS(data.bigSize, firstCopy.returned));
    const firstMade = await made();
    first.requests.push(firstMade.requests);
    if (firstMade.bytesUploaded < data.bigSize) {
      ctx.note(`big-copy run ${run.run}: the daemon counted ${firstMade.bytesUploaded} bytes uploaded for a ${data.bigSize}-byte file`);
    }

    await data.settle();
    made = await m.countRequests();
    const againCopy = await again.watch(m.mount.pid, copied);
    again.samples.push(againCopy.uploaded);
    againCpReturns.push(againCopy.returned);
    const againMade = await made();
    if (againMade.bytesUploaded !== 0) {
      ctx.note(`big-copy run ${run.run}: the identical re-copy uploaded ${againMade.bytesUploaded} bytes`);
    }
    await m.release(run.last);

    await data.settle();
    const up = await curlChunkedUpload(data.curl, data.folderId, `curl-${run.run}.bin`, upLocal, data.bigSize);
    curl.push(mibPerS(data.bigSize, up.seconds));
    localCp.push(mibPerS(data.bigSize, (await ctx.timed(`cp "${upLocal}" "$W/local-copy.bin" && rm "$W/local-copy.bin"`)).seconds));
    await data.settle();
    sha.push((await ctx.timed(`sha512sum "${upLocal}" > /dev/null`)).seconds);
    ctx.log(`big-copy run ${run.run}: cp ${first.samples.at(-1)?.toFixed(0)} MiB/s (curl ${curl.at(-1)?.toFixed(0)}), re-copy ${again.samples.at(-1)?.toFixed(1)} s (sha512sum ${sha.at(-1)?.toFixed(1)} s)`);

    // the server's disk: drop this run's uploads (not on the last run with --keep)
    if (!ctx.keeps(run)) {
      for (const item of await admin.listItems(data.folderId)) {
        if (item.name === name || item.name === `curl-${run.run}.bin`) await admin.delete(`/item/${item._id}`);
      }
    }
  }
  const size = `${ctx.opts.sizeMiB} MiB`;
  ctx.note(`big copy: the identical re-copy's cp returned after ${median(againCpReturns).toFixed(2)} s of its ${median(again.samples).toFixed(2)} s (median)`);
  ctx.addRow(first.row({ name: `cp ${size} into the mount, until uploaded`, unit: 'MiB/s', refName: 'curl chunked upload', ref: curl, target: { kind: 'min', ratio: 0.7 } }));
  ctx.addRow({ name: `  the same cp, until cp returns`, unit: 'MiB/s', ours: cpReturns, refName: 'local cp to the same disk', ref: localCp });
  ctx.addRow(again.row({ name: `cp ${size} again (identical)`, unit: 's', refName: 'sha512sum', ref: sha, target: { kind: 'max', ratio: 1.3 } }));
}
