// The daemon's malloc settings (src/fuse/malloc-settings.ts, through the patched fuse-native addon):
// large buffers freed in the middle of others go back to the system. Each case runs in a child
// process, as malloc settings are the whole process's.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { repoRoot } from '../helpers/girder-server.js';

const run = promisify(execFile);
const child = path.join(repoRoot(), 'dist', 'test', 'helpers', 'malloc-holes.js');

async function holes(mode: 'tuned' | 'default'): Promise<{ settings: string; droppedMiB: number; faultsPerReadBuffer: number; trimmedMiB: number }> {
  // glibc's own defaults: none of its malloc variables
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_') && k !== 'GLIBC_TUNABLES'));
  const { stdout } = await run(process.execPath, ['--expose-gc', child, mode], { env });
  return JSON.parse(stdout) as { settings: string; droppedMiB: number; faultsPerReadBuffer: number; trimmedMiB: number };
}

t.test('with the settings, 32 freed buffers of 1 MiB among 32 kept leave the RSS', async (t) => {
  const r = await holes('tuned');
  t.equal(r.settings, 'applied', 'the patched addon is built (scripts/build-fuse-native.sh)');
  t.ok(r.droppedMiB >= 24, `RSS dropped by ${r.droppedMiB.toFixed(1)} MiB`);
});

t.test("without them (glibc's defaults), the same holes stay resident: what the settings are for", async (t) => {
  const r = await holes('default');
  t.ok(r.droppedMiB < 8, `RSS dropped by ${r.droppedMiB.toFixed(1)} MiB`);
});

t.test("with the settings, libfuse's 128 KiB read buffer is reused from the heap, not mapped anew for each read", async (t) => {
  const r = await holes('tuned');
  // a fresh mapping of 128 KiB costs 32 page faults, paid again by every read; from the heap, a few
  // pages past glibc's top pad are given back and faulted in again
  t.ok(r.faultsPerReadBuffer < 16, `${r.faultsPerReadBuffer.toFixed(1)} page faults per buffer`);
});

t.test('trimming gives back the holes left inside the heap by smaller buffers freed among kept ones', async (t) => {
  const tuned = await holes('tuned');
  t.ok(tuned.trimmedMiB >= 10, `trimmed: RSS dropped by ${tuned.trimmedMiB.toFixed(1)} MiB of the 15 MiB of holes`);
  const untrimmed = await holes('default');
  t.ok(untrimmed.trimmedMiB < 2, `untrimmed: RSS dropped by ${untrimmed.trimmedMiB.toFixed(1)} MiB`);
});
