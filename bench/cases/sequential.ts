// Cold sequential read of the big file through a fresh mount (empty cache dir, new kernel inode:
// nothing cached anywhere on our side) vs curl downloading it; then warm re-reads on the same
// mount vs `dd` of the local copy once it is in the page cache. Both sides are re-read WARM_READS
// times: the first re-read of a page also moves it to the kernel's active list, which costs time
// the later ones do not pay, and the local side was always read more than once before.
import { ddBytes, type BenchContext } from '../lib/context.js';
import type { DataSet } from '../lib/dataset.js';
import { curlDownload } from '../lib/curl.js';
import { DaemonUsage, RssWatch } from '../lib/rss.js';
import { median, mibPerS } from '../lib/stats.js';

const WARM_READS = 3;

export async function sequentialRead(ctx: BenchContext, data: DataSet): Promise<void> {
  const cold: number[] = [];
  const warm: number[] = [];
  const curl: number[] = [];
  const local: number[] = [];
  const requests: number[] = [];
  const coldUse = new DaemonUsage();
  const warmUse = new DaemonUsage();
  const dd = (file: string): string => `dd if=${file} of=/dev/null bs=1M`;
  for (let run = 1; run <= ctx.opts.runs; run++) {
    const m = await ctx.mount(data.server.server, data.folderId, `seq-read-${run}`);
    const M = m.mount.mountpoint;
    await ctx.timed(`stat "$M/${data.bigName}" > /dev/null`, { M }); // lookup outside the timing
    const before = (await m.status()).requests.requests;
    await ctx.quiesce(data.server.server.info.pid);

    let watch = await RssWatch.start(m.mount.pid);
    const c = await ctx.timed(dd(`"$M/${data.bigName}"`), { M });
    await coldUse.add(watch);
    if (ddBytes(c.stderr) !== data.bigSize) throw new Error(`cold dd read ${ddBytes(c.stderr)} bytes`);
    cold.push(mibPerS(data.bigSize, c.seconds));
    requests.push((await m.status()).requests.requests - before);

    watch = await RssWatch.start(m.mount.pid);
    for (let i = 0; i < WARM_READS; i++) {
      const w = await ctx.timed(dd(`"$M/${data.bigName}"`), { M });
      if (ddBytes(w.stderr) !== data.bigSize) throw new Error(`warm dd read ${ddBytes(w.stderr)} bytes`);
      warm.push(mibPerS(data.bigSize, w.seconds));
    }
    await warmUse.add(watch);
    await m.release(run === ctx.opts.runs);

    await ctx.quiesce(data.server.server.info.pid);
    curl.push(mibPerS(data.bigSize, await curlDownload(data.curl, data.bigFileId, data.bigSize)));
    await ctx.timed(dd(`"$W/${data.bigName}"`));
    for (let i = 0; i < WARM_READS; i++) local.push(mibPerS(data.bigSize, (await ctx.timed(dd(`"$W/${data.bigName}"`))).seconds));
    ctx.log(
      `seq-read run ${run}: cold ${cold.at(-1)?.toFixed(0)} MiB/s (curl ${curl.at(-1)?.toFixed(0)}), warm ${warm.at(-1)?.toFixed(0)} MiB/s (local ${local.at(-1)?.toFixed(0)})`,
    );
  }
  const size = `${ctx.opts.sizeMiB} MiB`;
  ctx.addRow({
    name: `cold sequential read ${size} (dd bs=1M)`,
    unit: 'MiB/s',
    ours: cold,
    refName: 'curl download',
    ref: curl,
    target: { kind: 'min', ratio: 0.8 },
    ...coldUse.fields(),
    requests: median(requests),
  });
  ctx.addRow({
    name: `warm re-read ${size} (same mount, ${WARM_READS} per run)`,
    unit: 'MiB/s',
    ours: warm,
    refName: 'local dd, page cache',
    ref: local,
    target: { kind: 'min', ratio: 0.5 },
    ...warmUse.fields(),
  });
}
