// Child process of the random-read case: reads `length` bytes at each offset of a JSON list from a
// file (on the mount, or a local reference) and prints each read's latency in ms as a JSON array.
// Usage: node dist/bench/random-read-child.js <file> <offsets.json> [length]
import { open, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

async function main(): Promise<void> {
  const [file, offsetsFile, lengthText] = process.argv.slice(2);
  if (file === undefined || offsetsFile === undefined) throw new Error('usage: random-read-child <file> <offsets.json> [length]');
  const length = Number(lengthText ?? 4096);
  const offsets = JSON.parse(await readFile(offsetsFile, 'utf8')) as number[];
  const buffer = Buffer.alloc(length);
  const latencies: number[] = [];
  const fh = await open(file, 'r');
  try {
    for (const offset of offsets) {
      const started = performance.now();
      const { bytesRead } = await fh.read(buffer, 0, length, offset);
      latencies.push(performance.now() - started);
      if (bytesRead !== length) throw new Error(`read at ${offset} returned ${bytesRead} bytes, expected ${length}`);
    }
  } finally {
    await fh.close();
  }
  process.stdout.write(JSON.stringify(latencies) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
