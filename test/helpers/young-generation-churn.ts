// Child process of test/unit/young-generation.test.ts: many async operations in flight whose
// objects live a few milliseconds (as the daemon's do), which makes V8 grow its new space; prints
// the largest size of the new space, as JSON. Argument `small`: apply the daemon's setting first;
// `small-worker`: and start a Worker as the daemon does (Node then sets V8's flags anew).
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { keepYoungGenerationSmall, newSpaceBytes, startWorker } from '../../src/young-generation.js';

const OPS = 100_000;
const IN_FLIGHT = 200;

async function operation(i: number): Promise<number> {
  const state = { id: i, path: `/a/b/file-${i}`, bytes: Buffer.alloc(64), parts: new Array<number>(20).fill(i) };
  await turn();
  await sleep(1);
  return JSON.stringify(state).length;
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode === 'small' || mode === 'small-worker') keepYoungGenerationSmall();
  const worker = mode === 'small-worker' ? startWorker('setInterval(() => {}, 1000)', { eval: true }) : undefined;
  if (worker !== undefined) await once(worker, 'online');
  let started = 0;
  let largest = 0;
  const churn = async (): Promise<void> => {
    while (started < OPS) {
      await operation(started++);
      largest = Math.max(largest, newSpaceBytes());
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, () => churn()));
  await worker?.terminate();
  process.stdout.write(JSON.stringify({ largestNewSpace: largest }) + '\n');
}

void main();
