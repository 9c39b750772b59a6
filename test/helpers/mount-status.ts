// `girder-mount status --json` of a running mount, polled until its uploads are done.
import type { MountStatus } from '../../src/control/status.js';
import { cliPath, run, shellQuote } from './mount.js';
import { WaitAborted, waitFor } from './wait.js';

export async function mountStatus(mountpoint: string): Promise<MountStatus> {
  const r = await run(`${shellQuote(process.execPath)} ${shellQuote(cliPath())} status ${shellQuote(mountpoint)} --json`, {
    timeoutMs: 60_000,
  });
  if (r.code !== 0) {
    const why = `girder-mount status exited ${r.code}: ${r.stderr}`;
    // a daemon that is gone will not come back while we poll
    throw /no girder-mount is serving/.test(r.stderr) ? new WaitAborted(why) : new Error(why);
  }
  return JSON.parse(r.stdout) as MountStatus;
}

/** Polls the daemon until no upload is pending; resolves with the last status. */
export async function waitUploadsDone(mountpoint: string, timeoutMs = 300_000): Promise<MountStatus> {
  return waitFor(
    async () => {
      const s = await mountStatus(mountpoint);
      return s.uploads.length === 0 ? s : undefined;
    },
    { timeoutMs, intervalMs: 250, what: `the uploads of ${mountpoint} to finish` },
  );
}
