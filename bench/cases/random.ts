// Random 4 KiB reads at 4 KiB-aligned offsets of the big file, timed one by one in a child process:
// cold (fresh mount and cache) vs curl ranged GETs of the same ranges on one connection; warm (the
// same offsets again on the same mount) vs the same reads of the local copy through the page cache.
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { BenchContext } from '../lib/context.js';
import { curlRangedLatencies } from '../lib/curl.js';
import type { DataSet } from '../lib/dataset.js';
import { DaemonUsage, RssWatch } from '../lib/rss.js';
import { median } from '../lib/stats.js';
import { repoRoot } from '../../test/helpers/girder-server.js';

const BLOCK = 4096;

function randomOffsets(count: number, size: number): number[] {
  const blocks = Math.floor(size / BLOCK);
  return Array.from({ length: count }, () => Math.floor(Math.random() * blocks) * BLOCK);
}

export async function randomRead(ctx: BenchContext, data: DataSet): Promise<void> {
  const child = path.join(repoRoot(), 'dist', 'bench', 'random-read-child.js');
  const reader = (file: string, offsets: string): string => `"${process.execPath}" "${child}" ${file} "${offsets}" ${BLOCK}`;
  const cold: number[] = [];
  const warm: number[] = [];
  const curl: number[] = [];
  const local: number[] = [];
  const requests: number[] = [];
  const coldUse = new DaemonUsage();
  const warmUse = new DaemonUsage();
  for (let run = 1; run <= ctx.opts.runs; run++) {
    const offsets = randomOffsets(ctx.opts.randomReads, data.bigSize);
    const offsetsFile = path.join(ctx.work, `offsets-${run}.json`);
    await writeFile(offsetsFile, JSON.stringify(offsets));
    const m = await ctx.mount(data.server.server, data.folderId, `random-read-${run}`);
    const M = m.mount.mountpoint;
    await ctx.timed(`stat "$M/${data.bigName}" > /dev/null`, { M });
    const before = (await m.status()).requests.requests;

    let watch = await RssWatch.start(m.mount.pid);
    cold.push(...(JSON.parse((await ctx.timed(reader(`"$M/${data.bigName}"`, offsetsFile), { M })).stdout) as number[]));
    await coldUse.add(watch);
    requests.push((await m.status()).requests.requests - before);
    watch = await RssWatch.start(m.mount.pid);
    warm.push(...(JSON.parse((await ctx.timed(reader(`"$M/${data.bigName}"`, offsetsFile), { M })).stdout) as number[]));
    await warmUse.add(watch);
    await m.release(run === ctx.opts.runs);

    curl.push(...(await curlRangedLatencies(data.curl, data.bigFileId, offsets, BLOCK)));
    await ctx.timed(reader(`"$W/${data.bigName}"`, offsetsFile)); // into the page cache
    local.push(...(JSON.parse((await ctx.timed(reader(`"$W/${data.bigName}"`, offsetsFile))).stdout) as number[]));
    ctx.log(`random-read run ${run}: ${offsets.length} reads, ${requests.at(-1)} requests`);
  }
  const n = ctx.opts.randomReads;
  for (const stat of ['median', 'p99'] as const) {
    const label = stat === 'median' ? 'p50' : 'p99';
    ctx.addRow({ name: `random 4 KiB read, cold, ${label} (${n} reads/run)`, unit: 'ms', stat, ours: cold, refName: 'curl ranged GET', ref: curl, ...coldUse.fields(), ...(stat === 'median' ? { requests: median(requests) } : {}) });
  }
  for (const stat of ['median', 'p99'] as const) {
    const label = stat === 'median' ? 'p50' : 'p99';
    ctx.addRow({ name: `random 4 KiB read, warm, ${label}`, unit: 'ms', stat, ours: warm, refName: 'local file, page cache', ref: local, ...warmUse.fields() });
  }
}
