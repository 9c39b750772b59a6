// Child process of test/unit/malloc-settings.test.ts (run with --expose-gc): frees one large
// buffer (which raises glibc's default mmap threshold), then fills 64 buffers of 1 MiB, frees every
// other one, and prints how much the RSS dropped, as JSON. Then it takes and frees a buffer of
// libfuse's read size (128 KiB, malloc'd and freed by libfuse for every read) 100 times and prints
// the page faults that cost per buffer. Argument `tuned`: apply the daemon's malloc settings first.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyMallocSettings, trimMallocEvery } from '../../src/fuse/malloc-settings.js';
import { createLogger } from '../../src/log.js';

const MiB = 1024 * 1024;

async function rss(): Promise<number> {
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(await readFile('/proc/self/status', 'utf8'))?.[1];
  return Number(kib) * 1024;
}

async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  // backing stores are freed after the collection, maybe by another thread
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
}

async function main(): Promise<void> {
  const settings = process.argv[2] === 'tuned' ? applyMallocSettings(createLogger('silent')) : 'default';
  let big: Buffer | null = Buffer.allocUnsafeSlow(8 * MiB).fill(1);
  big = null;
  await collect();
  const buffers: Array<Buffer | null> = Array.from({ length: 64 }, () => Buffer.allocUnsafeSlow(MiB).fill(2));
  const before = await rss();
  for (let i = 0; i < buffers.length; i += 2) buffers[i] = null;
  await collect();
  const after = await rss();
  const faultsPerReadBuffer = await faultsPerBuffer(128 * 1024, 100);
  const trimmedMiB = await trimmedHoles(settings === 'applied');
  process.stdout.write(JSON.stringify({ settings, droppedMiB: (before - after) / MiB, faultsPerReadBuffer, trimmedMiB, kept: buffers.filter((b) => b !== null).length, big }) + '\n');
}

/**
 * Fills 320 buffers of 96 KiB (below the threshold: the heap's), frees every other one, and
 * returns how much the RSS dropped once the heap was trimmed (`trim`: as the daemon does).
 */
async function trimmedHoles(trim: boolean): Promise<number> {
  const small: Array<Buffer | null> = Array.from({ length: 320 }, () => Buffer.allocUnsafeSlow(96 * 1024).fill(4));
  for (let i = 0; i < small.length; i += 2) small[i] = null;
  await collect();
  const before = await rss();
  if (trim) {
    const stop = trimMallocEvery(createLogger('silent'), 10);
    await sleep(100);
    stop();
  }
  const after = await rss();
  if (small.length === 0) throw new Error('unreachable: keeps the kept buffers alive until here');
  return (before - after) / MiB;
}

/** Minor page faults per buffer of `size` bytes filled and freed, `times` in a row. */
async function faultsPerBuffer(size: number, times: number): Promise<number> {
  await collect();
  const start = process.resourceUsage().minorPageFault;
  for (let i = 0; i < times; i++) {
    Buffer.allocUnsafeSlow(size).fill(3);
    (globalThis as { gc?: () => void }).gc?.();
  }
  return (process.resourceUsage().minorPageFault - start) / times;
}

void main();
