// Cold sequential read of the big file through a fresh mount (empty cache dir, new kernel inode:
// nothing cached anywhere on our side) vs curl downloading it; then warm re-reads on the same
// mount vs `dd` of the local copy once it is in the page cache. Both sides are re-read WARM_READS
// times: the first re-read of a page also moves it to the kernel's active list, which costs time
// the later ones do not pay, and the local side was always read more than once before.
import { ddBytes, type BenchContext } from '../lib/context.js';
import type { DataSet } from '../lib/dataset.js';
import { curlDownload } from '../lib/curl.js';
import { Measured } from '../lib/measured.js';
import type { Shell } from '../lib/mount-under-test.js';
import { mibPerS } from '../lib/stats.js';

const WARM_READS = 3;

export async function sequentialRead(ctx: BenchContext, data: DataSet): Promise<void> {
  const cold = new Measured();
  const warm = new Measured();
  const curl: number[] = [];
  const local: number[] = [];
  /** MiB/s of a whole read of `file` (run `on` a mount, for $M). */
  const dd = async (file: string, on: Shell = ctx): Promise<number> => {
    const r = await on.timed(`dd if=${file} of=/dev/null bs=1M`);
    if (ddBytes(r.stderr) !== data.bigSize) throw new Error(`dd of ${file} read ${ddBytes(r.stderr)} bytes`);
    return mibPerS(data.bigSize, r.seconds);
  };
  for (const run of ctx.runs()) {
    const m = await data.mount(`seq-read-${run.run}`);
    const big = `"$M/${data.bigName}"`;
    await m.timed(`stat ${big} > /dev/null`); // lookup outside the timing
    const made = await m.countRequests();
    await data.settle();
    cold.samples.push(await cold.watch(m.mount.pid, () => dd(big, m)));
    cold.requests.push((await made()).requests);
    await warm.watch(m.mount.pid, async () => {
      for (let i = 0; i < WARM_READS; i++) warm.samples.push(await dd(big, m));
    });
    await m.release(run.last);

    await data.settle();
    curl.push(mibPerS(data.bigSize, await curlDownload(data.curl, data.bigFileId, data.bigSize)));
    await dd(`"$W/${data.bigName}"`);
    for (let i = 0; i < WARM_READS; i++) local.push(await dd(`"$W/${data.bigName}"`));
    ctx.log(
      `seq-read run ${run.run}: cold ${cold.samples.at(-1)?.toFixed(0)} MiB/s (curl ${curl.at(-1)?.toFixed(0)}), warm ${warm.samples.at(-1)?.toFixed(0)} MiB/s (local ${local.at(-1)?.toFixed(0)})`,
    );
  }
  const size = `${ctx.opts.sizeMiB} MiB`;
  ctx.addRow(cold.row({ name: `cold sequential read ${size} (dd bs=1M)`, unit: 'MiB/s', refName: 'curl download', ref: curl, target: { kind: 'min', ratio: 0.8 } }));
  ctx.addRow(warm.row({ name: `warm re-read ${size} (same mount, ${WARM_READS} per run)`, unit: 'MiB/s', refName: 'local dd, page cache', ref: local, target: { kind: 'min', ratio: 0.5 } }));
}
