// heap-collector.ts: a full collection once the V8 heap has grown by the slack past what the last one
// kept (V8 would wait until it doubled); none while it has not grown so far.
import t from 'tap';
import v8 from 'node:v8';
import { collectHeapWhenGrown } from '../../src/heap-collector.js';
import { silentLogger } from '../../src/log.js';
import { sleep, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const used = (): number => v8.getHeapStatistics().used_heap_size;

/** About `bytes` of small objects, kept until the caller lets go of them. */
function objects(bytes: number): Array<{ id: number; text: string; parts: number[] }> {
  const out: Array<{ id: number; text: string; parts: number[] }> = [];
  for (let size = 0, i = 0; size < bytes; i++, size += 400) out.push({ id: i, text: `object ${i} `.repeat(10), parts: [i, i + 1, i + 2] });
  return out;
}

t.test('garbage past the slack is collected at the next check; a heap that grew less is left alone', async (t) => {
  const collector = collectHeapWhenGrown(silentLogger(), { slackBytes: 16 * MiB, everyMs: 50 });
  t.teardown(collector.stop);
  const held = [objects(2 * MiB)];
  await sleep(300);
  t.equal(collector.collections(), 0, 'a heap that grew by 2 MiB: no collection');
  held.length = 0;

  // Dropped before the next check; the scavenges of their own making promoted them: they die in
  // the old space, which V8 leaves alone until it doubles.
  held.push(objects(48 * MiB));
  const grown = used();
  held.length = 0;
  t.ok(grown > 40 * MiB, `the heap held the objects (${(grown / MiB).toFixed(0)} MiB used)`);
  await waitFor(() => collector.collections() > 0, { timeoutMs: 2000, intervalMs: 10, what: 'a collection' });
  t.ok(used() < grown - 32 * MiB, `collected: ${(used() / MiB).toFixed(0)} MiB used, ${(grown / MiB).toFixed(0)} before`);
});
