// The daemon's setting of V8's young generation (src/young-generation.ts). Each case runs in a child
// process, as V8's heap settings are the whole process's.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { repoRoot } from '../helpers/girder-server.js';

const run = promisify(execFile);
const child = path.join(repoRoot(), 'dist', 'test', 'helpers', 'young-generation-churn.js');
const MiB = 1024 * 1024;
/**
 * The new space V8 starts with (two semi-spaces of 1 MiB on 64-bit), with room for one doubling
 * (seen once in a run of this test under load); by default it grows to 32 MiB.
 */
const SMALL = 4 * MiB;

async function largestNewSpace(mode: 'small' | 'small-worker' | 'default'): Promise<number> {
  // V8's own defaults: no heap flags from the environment
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS'));
  const { stdout } = await run(process.execPath, [child, mode], { env });
  return (JSON.parse(stdout) as { largestNewSpace: number }).largestNewSpace;
}

t.test('with the setting, the new space stays about the size it starts with', async (t) => {
  const bytes = await largestNewSpace('small');
  t.ok(bytes <= SMALL, `new space reached ${(bytes / MiB).toFixed(1)} MiB`);
});

t.test('it holds after a Worker started (Node sets V8 flags anew then)', async (t) => {
  const bytes = await largestNewSpace('small-worker');
  t.ok(bytes <= SMALL, `new space reached ${(bytes / MiB).toFixed(1)} MiB`);
});

t.test("without it (V8's defaults), the same operations grow it to 4 times that and more: what the setting is for", async (t) => {
  const bytes = await largestNewSpace('default');
  t.ok(bytes >= 4 * SMALL, `new space reached ${(bytes / MiB).toFixed(1)} MiB`);
});
