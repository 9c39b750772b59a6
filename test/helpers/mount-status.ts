// `girder-mount status` of a running mount (its JSON, its text, its exit code), polled until its uploads are done.
import type { MountStatus } from '../../src/control/status.js';
import { cliPath, run, shellQuote } from './mount.js';
import { WaitAborted, waitFor } from './wait.js';

/** The exit codes `status` uses when it answered: all fine, some upload waiting, some failed. */
const ANSWERED = new Set([0, 3, 4]);

export interface StatusRun {
  code: number | null;
  /** The output as printed (JSON with `json`). */
  stdout: string;
  stderr: string;
}

/** Run `girder-mount status <mountpoint> [--json]` and return what it printed and its exit code. */
export async function runStatus(mountpoint: string, json: boolean): Promise<StatusRun> {
  const r = await run(`${shellQuote(process.execPath)} ${shellQuote(cliPath())} status ${shellQuote(mountpoint)}${json ? ' --json' : ''}`, {
    timeoutMs: 60_000,
  });
  if (r.code === null || !ANSWERED.has(r.code)) {
    const why = `girder-mount status exited ${r.code}: ${r.stderr}`;
    // a daemon that is gone will not come back while we poll
    throw /no girder-mount is serving/.test(r.stderr) ? new WaitAborted(why) : new Error(why);
  }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

export async function mountStatus(mountpoint: string): Promise<MountStatus> {
  return JSON.parse((await runStatus(mountpoint, true)).stdout) as MountStatus;
}

/** Polls the daemon until no upload and no removal is pending (Girder has every change); resolves with the last status. */
export async function waitUploadsDone(mountpoint: string, timeoutMs = 300_000): Promise<MountStatus> {
  return waitFor(
    async () => {
      const s = await mountStatus(mountpoint);
      return s.uploads.length === 0 && (s.removals ?? 0) === 0 ? s : undefined;
    },
    { timeoutMs, intervalMs: 250, what: `the uploads of ${mountpoint} to finish` },
  );
}
