import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cliPath, forceUnmount, isMounted, run, shellQuote as q } from './mount.js';

export interface FailedMount {
  readonly code: number | null;
  readonly stderr: string;
  readonly mounted: boolean;
  readonly timedOut: boolean;
}

/**
 * Run the CLI to mount where it is expected to fail: its exit code and stderr, and whether anything
 * stayed mounted. Temp mountpoint and cache dir are removed in the teardown.
 */
export async function failingMount(
  tt: { teardown(fn: () => unknown): void },
  folderId: string,
  args: string[],
  apiKey: string,
): Promise<FailedMount> {
  const mnt = await mkdtemp(path.join(tmpdir(), 'girder-mnt-'));
  const cache = await mkdtemp(path.join(tmpdir(), 'girder-cache-'));
  tt.teardown(async () => {
    await forceUnmount(mnt);
    await rmdir(mnt).catch(() => undefined);
    await rm(cache, { recursive: true, force: true });
  });
  const r = await run(`${q(process.execPath)} ${q(cliPath())} ${folderId} ${q(mnt)} --cache-dir ${q(cache)} ${args.map(q).join(' ')}`, {
    env: { GIRDER_API_KEY: apiKey },
    timeoutMs: 120_000,
  });
  return { code: r.code, stderr: r.stderr, mounted: await isMounted(mnt), timedOut: r.timedOut };
}
