// Child process of test/unit/young-generation.test.ts: operations whose objects live through a few
// scavenges (as an upload's do) while a record of each stays (as the cache's version records do),
// so that garbage dies in the old space; prints the largest heap V8 kept and what was live at the
// end (run it with --expose-gc), as JSON. Argument
// `daemon`: the daemon's settings; `daemon-worker`: and a Worker started as the daemon does;
// `new-space-only`: only the small new space (the daemon's setting before the old-space one).
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { keepYoungGenerationSmall } from '../../src/young-generation.js';
import { churn, idleWorker } from './churn.js';

const OPS = 100_000;
const IN_FLIGHT = 400;

const kept = new Map<number, { id: number; name: string; key: string; blocks: Map<number, { idx: number; bytes: number }> }>();

async function operation(i: number): Promise<number> {
  const state = { id: i, path: `/a/b/file-${i}`, parts: new Array<number>(200).fill(i), text: 'x'.repeat(300) + i };
  await sleep(20);
  kept.set(i, { id: i, name: `file-${i}`, key: `${i}:${Date.now()}`, blocks: new Map([[0, { idx: 0, bytes: 4096 }]]) });
  return state.text.length;
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode === 'new-space-only') v8.setFlagsFromString('--semi-space-growth-factor=1');
  else keepYoungGenerationSmall();
  const worker = mode === 'daemon-worker' ? await idleWorker() : undefined;
  const largest = await churn(OPS, IN_FLIGHT, operation, () => v8.getHeapStatistics().total_heap_size);
  await worker?.terminate();
  (globalThis as { gc?: () => void }).gc?.(); // run with --expose-gc: what is live at the end
  const live = v8.getHeapStatistics().used_heap_size;
  process.stdout.write(JSON.stringify({ largestHeapTotal: largest, live, kept: kept.size }) + '\n');
}

void main();
