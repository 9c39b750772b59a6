// What the heap-setting children share: a Worker started as the daemon starts its write thread
// (Node sets V8's flags anew then), and `ops` operations run `inFlight` at a time, with the largest
// value `measure` gave while they ran.
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../src/young-generation.js';

export async function idleWorker(): Promise<Worker> {
  const worker = startWorker('setInterval(() => {}, 1000)', { eval: true });
  await once(worker, 'online');
  return worker;
}

export async function churn(ops: number, inFlight: number, operation: (i: number) => Promise<unknown>, measure: () => number): Promise<number> {
  let started = 0;
  let largest = 0;
  const run = async (): Promise<void> => {
    while (started < ops) {
      await operation(started++);
      largest = Math.max(largest, measure());
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => run()));
  return largest;
}
