// Cold sequential read of the big file through a fresh mount (empty cache dir, new kernel inode:
// nothing cached anywhere on our side) vs curl downloading it; then the warm re-read on the same
// mount vs `dd` of the local copy read a second time (the page cache).
import { ddBytes, type BenchContext } from '../lib/context.js';
import type { DataSet } from '../lib/dataset.js';
import { curlDownload } from '../lib/curl.js';
import { DaemonUsage, RssWatch } from '../lib/rss.js';
import { median, mibPerS } from '../lib/stats.js';

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

    let watch = await RssWatch.start(m.mount.pid);
    const c = await ctx.timed(dd(`"$M/${data.bigName}"`), { M });
    await coldUse.add(watch);
    if (ddBytes(c.stderr) !== data.bigSize) throw new Error(`cold dd read ${ddBytes(c.stderr)} bytes`);
    cold.push(mibPerS(data.bigSize, c.seconds));
    requests.push((await m.status()).requests.requests - before);

    watch = await RssWatch.start(m.mount.pid);
    const w = await ctx.timed(dd(`"$M/${data.bigName}"`), { M });
    await warmUse.add(watch);
    if (ddBytes(w.stderr) !== data.bigSize) throw new Error(`warm dd read ${ddBytes(w.stderr)} bytes`);
    warm.push(mibPerS(data.bigSize, w.seconds));
    await m.release(run === ctx.opts.runs);

    curl.push(mibPerS(data.bigSize, await curlDownload(data.curl, data.bigFileId, data.bigSize)));
    await ctx.timed(dd(`"$W/${data.bigName}"`));
    local.push(mibPerS(data.bigSize, (await ctx.timed(dd(`"$W/${data.bigName}"`))).seconds));
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
    name: `warm re-read ${size} (same mount)`,
    unit: 'MiB/s',
    ours: warm,
    refName: 'local dd, page cache',
    ref: local,
    target: { kind: 'min', ratio: 0.5 },
    ...warmUse.fields(),
  });
}
