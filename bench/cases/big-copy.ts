// `cp` of a big local file into the mount, timed until the daemon reports no pending upload, vs a
// chunked upload of the same file with curl; then the same `cp` again (identical bytes: nothing
// may be uploaded) vs `sha512sum` of the file. The file's first bytes change every run, so the
// server never holds its content already (the mount would copy it server-side, sending nothing).
import type { BenchContext } from '../lib/context.js';
import { curlChunkedUpload } from '../lib/curl.js';
import type { DataSet } from '../lib/dataset.js';
import { DaemonUsage, RssWatch } from '../lib/rss.js';
import { median, mibPerS } from '../lib/stats.js';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export async function bigCopy(ctx: BenchContext, data: DataSet): Promise<void> {
  const first: number[] = [];
  const again: number[] = [];
  const curl: number[] = [];
  const sha: number[] = [];
  const cpReturns: number[] = [];
  const againCpReturns: number[] = [];
  const localCp: number[] = [];
  const requests: number[] = [];
  const firstUse = new DaemonUsage();
  const againUse = new DaemonUsage();
  const admin = data.server.admin;
  const settle = (): Promise<void> => ctx.quiesce(data.server.server.info.pid);
  const upLocal = path.join(ctx.work, 'up.bin');
  await ctx.timed(`cp "$W/${data.bigName}" "${upLocal}"`);
  for (let run = 1; run <= ctx.opts.runs; run++) {
    const name = `copy-${run}.bin`;
    const fh = await open(upLocal, 'r+');
    await fh.write(randomBytes(64), 0, 64, 0);
    await fh.close();
    const m = await ctx.mount(data.server.server, data.folderId, `big-copy-${run}`);
    const M = m.mount.mountpoint;
    await ctx.timed('ls "$M" > /dev/null', { M });
    const copy = `cp "${upLocal}" "$M/${name}"`;

    await settle();
    let before = (await m.status()).requests;
    let watch = await RssWatch.start(m.mount.pid);
    let started = performance.now();
    cpReturns.push(mibPerS(data.bigSize, (await ctx.timed(copy, { M })).seconds));
    await m.waitUploadsDone();
    first.push(mibPerS(data.bigSize, (performance.now() - started) / 1000));
    await firstUse.add(watch);
    let after = (await m.status()).requests;
    requests.push(after.requests - before.requests);
    if (after.bytesUploaded - before.bytesUploaded < data.bigSize) {
      ctx.note(`big-copy run ${run}: the daemon counted ${after.bytesUploaded - before.bytesUploaded} bytes uploaded for a ${data.bigSize}-byte file`);
    }

    await settle();
    before = after;
    watch = await RssWatch.start(m.mount.pid);
    started = performance.now();
    againCpReturns.push((await ctx.timed(copy, { M })).seconds);
    await m.waitUploadsDone();
    again.push((performance.now() - started) / 1000);
    await againUse.add(watch);
    after = (await m.status()).requests;
    if (after.bytesUploaded !== before.bytesUploaded) {
      ctx.note(`big-copy run ${run}: the identical re-copy uploaded ${after.bytesUploaded - before.bytesUploaded} bytes`);
    }
    await m.release(run === ctx.opts.runs);

    await settle();
    const up = await curlChunkedUpload(data.curl, data.folderId, `curl-${run}.bin`, upLocal, data.bigSize);
    curl.push(mibPerS(data.bigSize, up.seconds));
    localCp.push(mibPerS(data.bigSize, (await ctx.timed(`cp "${upLocal}" "$W/local-copy.bin" && rm "$W/local-copy.bin"`)).seconds));
    await settle();
    sha.push((await ctx.timed(`sha512sum "${upLocal}" > /dev/null`)).seconds);
    ctx.log(`big-copy run ${run}: cp ${first.at(-1)?.toFixed(0)} MiB/s (curl ${curl.at(-1)?.toFixed(0)}), re-copy ${again.at(-1)?.toFixed(1)} s (sha512sum ${sha.at(-1)?.toFixed(1)} s)`);

    // the server's disk: drop this run's uploads (not on the last run with --keep)
    if (!(ctx.opts.keep && run === ctx.opts.runs)) {
      for (const item of await admin.listItems(data.folderId)) {
        if (item.name === name || item.name === `curl-${run}.bin`) await admin.delete(`/item/${item._id}`);
      }
    }
  }
  const size = `${ctx.opts.sizeMiB} MiB`;
  ctx.note(`big copy: the identical re-copy's cp returned after ${median(againCpReturns).toFixed(2)} s of its ${median(again).toFixed(2)} s (median)`);
  ctx.addRow({
    name: `cp ${size} into the mount, until uploaded`,
    unit: 'MiB/s',
    ours: first,
    refName: 'curl chunked upload',
    ref: curl,
    target: { kind: 'min', ratio: 0.7 },
    ...firstUse.fields(),
    requests: median(requests),
  });
  ctx.addRow({
    name: `  the same cp, until cp returns`,
    unit: 'MiB/s',
    ours: cpReturns,
    refName: 'local cp to the same disk',
    ref: localCp,
  });
  ctx.addRow({
    name: `cp ${size} again (identical)`,
    unit: 's',
    ours: again,
    refName: 'sha512sum',
    ref: sha,
    target: { kind: 'max', ratio: 1.3 },
    ...againUse.fields(),
  });
}
