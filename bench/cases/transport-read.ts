// Why downloads read their bodies off sockets of their own (src/girder/direct-request.ts) rather
// than through undici: the same cold sequential read of the big file by a range stream in this
// process, once over each transport, comparing the CPU each costs (undici allocates a new buffer
// for every socket read, and collecting them cost more CPU than the transfer) and the throughput.
import { GirderClient } from '../../src/girder/client.js';
import { HttpRangeStream } from '../../src/girder/range-stream.js';
import { createLogger } from '../../src/log.js';
import type { BenchContext } from '../lib/context.js';
import type { DataSet } from '../lib/dataset.js';
import { MiB, mibPerS } from '../lib/stats.js';

interface Sample {
  readonly mibPerS: number;
  /** CPU seconds of this process (user + system) per GiB read. */
  readonly cpuSPerGiB: number;
}

/** Read the whole file once through a fresh range stream; `direct`: the socket transport. */
async function readOnce(client: GirderClient, data: DataSet, direct: boolean): Promise<Sample> {
  const stream = new HttpRangeStream(client, { id: data.bigFileId, size: data.bigSize }, 0, data.bigSize, { direct });
  const into = Buffer.allocUnsafe(MiB);
  const cpu = process.cpuUsage();
  const started = performance.now();
  let total = 0;
  try {
    for (let n = await stream.read(into); n > 0; n = await stream.read(into)) total += n;
  } finally {
    stream.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  if (total !== data.bigSize) throw new Error(`read ${total} of ${data.bigSize} bytes (${direct ? 'socket' : 'undici'})`);
  return { mibPerS: mibPerS(total, seconds), cpuSPerGiB: ((used.user + used.system) / 1e6) * ((1024 * MiB) / total) };
}

export async function transportRead(ctx: BenchContext, data: DataSet): Promise<void> {
  const client = new GirderClient({
    apiUrl: data.server.server.info.apiUrl,
    credentials: { kind: 'token', token: data.server.token },
    timeoutMs: 60_000,
    retries: 0,
    logger: createLogger('warn'),
  });
  const socket: Sample[] = [];
  const undici: Sample[] = [];
  try {
    for (let run = 1; run <= ctx.opts.runs; run++) {
      // Alternate the order, so neither transport always reads right after the other warmed the server.
      for (const direct of run % 2 === 1 ? [true, false] : [false, true]) {
        await ctx.quiesce(data.server.server.info.pid);
        (direct ? socket : undici).push(await readOnce(client, data, direct));
      }
      ctx.log(
        `transport-read run ${run}: socket ${socket.at(-1)?.mibPerS.toFixed(0)} MiB/s, ${socket.at(-1)?.cpuSPerGiB.toFixed(2)} CPU s/GiB; ` +
          `undici ${undici.at(-1)?.mibPerS.toFixed(0)} MiB/s, ${undici.at(-1)?.cpuSPerGiB.toFixed(2)} CPU s/GiB`,
      );
    }
  } finally {
    await client.close();
  }
  const size = `${ctx.opts.sizeMiB} MiB`;
  ctx.addRow({
    name: `transport: CPU of a cold sequential read ${size}, socket`,
    unit: 'CPU s/GiB',
    ours: socket.map((s) => s.cpuSPerGiB),
    refName: 'undici transport',
    ref: undici.map((s) => s.cpuSPerGiB),
    target: { kind: 'max', ratio: 1 },
  });
  ctx.addRow({
    name: `transport: cold sequential read ${size}, socket`,
    unit: 'MiB/s',
    ours: socket.map((s) => s.mibPerS),
    refName: 'undici transport',
    ref: undici.map((s) => s.mibPerS),
    target: { kind: 'min', ratio: 1 },
  });
}
