// Random 4 KiB reads at 4 KiB-aligned offsets of the big file, timed one by one in a child process:
// cold (fresh mount and cache) vs curl ranged GETs of the same ranges on one connection; warm (the
// same offsets again on the same mount) vs the same reads of the local copy through the page cache.
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { BenchContext } from '../lib/context.js';
import { curlRangedLatencies } from '../lib/curl.js';
import type { DataSet } from '../lib/dataset.js';
import { Measured } from '../lib/measured.js';
import type { Shell } from '../lib/mount-under-test.js';
import { repoRoot } from '../../test/helpers/girder-server.js';

const BLOCK = 4096;

function randomOffsets(count: number, size: number): number[] {
  const blocks = Math.floor(size / BLOCK);
  return Array.from({ length: count }, () => Math.floor(Math.random() * blocks) * BLOCK);
}

export async function randomRead(ctx: BenchContext, data: DataSet): Promise<void> {
  const child = path.join(repoRoot(), 'dist', 'bench', 'random-read-child.js');
  /** The child's latency of each read, ms (run `on` a mount, for $M). */
  const reads = async (file: string, offsets: string, on: Shell = ctx): Promise<number[]> =>
    JSON.parse((await on.timed(`"${process.execPath}" "${child}" ${file} "${offsets}" ${BLOCK}`)).stdout) as number[];
  const cold = new Measured();
  const warm = new Measured();
  const curl: number[] = [];
  const local: number[] = [];
  for (const run of ctx.runs()) {
    const offsets = randomOffsets(ctx.opts.randomReads, data.bigSize);
    const offsetsFile = path.join(ctx.work, `offsets-${run.run}.json`);
    await writeFile(offsetsFile, JSON.stringify(offsets));
    const m = await data.mount(`random-read-${run.run}`);
    const big = `"$M/${data.bigName}"`;
    await m.timed(`stat ${big} > /dev/null`);
    const made = await m.countRequests();
    cold.samples.push(...(await cold.watch(m.mount.pid, () => reads(big, offsetsFile, m))));
    cold.requests.push((await made()).requests);
    warm.samples.push(...(await warm.watch(m.mount.pid, () => reads(big, offsetsFile, m))));
    await m.release(run.last);

    curl.push(...(await curlRangedLatencies(data.curl, data.bigFileId, offsets, BLOCK)));
    await reads(`"$W/${data.bigName}"`, offsetsFile); // into the page cache
    local.push(...(await reads(`"$W/${data.bigName}"`, offsetsFile)));
    ctx.log(`random-read run ${run.run}: ${offsets.length} reads, ${cold.requests.at(-1)} requests`);
  }
  const n = ctx.opts.randomReads;
  for (const stat of ['median', 'p99'] as const) {
    const label = stat === 'median' ? 'p50' : 'p99';
    ctx.addRow(cold.row({ name: `random 4 KiB read, cold, ${label} (${n} reads/run)`, unit: 'ms', stat, refName: 'curl ranged GET', ref: curl }, stat === 'median'));
  }
  for (const stat of ['median', 'p99'] as const) {
    const label = stat === 'median' ? 'p50' : 'p99';
    ctx.addRow(warm.row({ name: `random 4 KiB read, warm, ${label}`, unit: 'ms', stat, refName: 'local file, page cache', ref: local }));
  }
}
