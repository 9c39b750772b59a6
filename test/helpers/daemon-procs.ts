// Finds girder-mount daemons started indirectly (by mount(8) through the mount helper, or by a
// systemd-like runner), which the test has no ChildProcess for: they are the processes whose
// command line holds the test's own (unique, temporary) mountpoint.
import { readdir, readFile } from 'node:fs/promises';
import { forceUnmount } from './mount.js';
import { waitFor } from './wait.js';

/** PIDs of girder-mount processes (other than this one) with `mountpoint` as a command-line argument. */
export async function daemonsServing(mountpoint: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (args.includes(mountpoint) && args.some((a) => /(?:^|\/)(?:cli\.js|girder-mount)$/.test(a))) {
      if (!(await isZombie(Number(name)))) pids.push(Number(name));
    }
  }
  return pids;
}

async function isZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const afterName = stat.slice(stat.lastIndexOf(')') + 2);
  return stat === '' || afterName.startsWith('Z');
}

export function processAlive(pid: number): Promise<boolean> {
  return isZombie(pid).then((z) => !z);
}

/** Waits until `pid` is gone (or a zombie); false after `timeoutMs`. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(async () => !(await processAlive(pid)), { timeoutMs, intervalMs: 200, what: `process ${pid} to exit` });
    return true;
  } catch {
    return false;
  }
}

/** Waits until `pid` has left the process table (reaped, not just a zombie); false after `timeoutMs`. */
export async function waitReaped(pid: number, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(async () => (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')) === '', {
      timeoutMs,
      intervalMs: 200,
      what: `process ${pid} to be reaped`,
    });
    return true;
  } catch {
    return false;
  }
}

/** For t.teardown: stop every daemon serving `mountpoint` (TERM, then KILL), then clear the mount. */
export async function stopDaemonsAndUnmount(mountpoint: string): Promise<void> {
  for (const pid of await daemonsServing(mountpoint)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      continue;
    }
    if (!(await waitGone(pid, 30_000))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  await forceUnmount(mountpoint);
}
