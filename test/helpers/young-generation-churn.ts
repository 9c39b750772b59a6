// Child process of test/unit/young-generation.test.ts: many async operations in flight whose
// objects live a few milliseconds (as the daemon's do), which makes V8 grow its new space; prints
// the largest size of the new space, as JSON. Argument `small`: apply the daemon's setting first;
// `small-worker`: and start a Worker as the daemon does (Node then sets V8's flags anew).
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import { keepYoungGenerationSmall, newSpaceBytes } from '../../src/young-generation.js';
import { churn, idleWorker } from './churn.js';

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
  const worker = mode === 'small-worker' ? await idleWorker() : undefined;
  const largest = await churn(OPS, IN_FLIGHT, operation, newSpaceBytes);
  await worker?.terminate();
  process.stdout.write(JSON.stringify({ largestNewSpace: largest }) + '\n');
}

void main();
