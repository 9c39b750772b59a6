import { realpath } from 'node:fs/promises';
import { controlRequest } from './control/client.js';
import { controlSocketPath } from './control/socket-path.js';
import { formatStatus, statusExitCode, type MountStatus, type UnmountAnswer } from './control/status.js';
import { UsageError, errorMessage } from './errors.js';

async function socketFor(mountpoint: string): Promise<string> {
  let path: string;
  try {
    path = await realpath(mountpoint);
  } catch (err) {
    throw new UsageError(`cannot find ${mountpoint}: ${errorMessage(err)}`);
  }
  return controlSocketPath(path);
}

function notRunning(mountpoint: string, err: unknown): UsageError {
  return new UsageError(`no girder-mount is serving ${mountpoint} (its control socket does not answer: ${errorMessage(err)})`, 1);
}

/** `girder-mount status <mountpoint>`. */
export async function runStatus(mountpoint: string, json: boolean): Promise<number> {
  const socket = await socketFor(mountpoint);
  const answer = await controlRequest(socket, 'GET', '/status', 10_000).catch((err: unknown) => {
    throw notRunning(mountpoint, err);
  });
  const status = answer.body as MountStatus;
  process.stdout.write((json ? JSON.stringify(status) : formatStatus(status)) + '\n');
  return statusExitCode(status);
}

/** `girder-mount unmount <mountpoint>`: the daemon drains its uploads, then unmounts and exits. */
export async function runUnmount(mountpoint: string, timeoutS: number, force: boolean): Promise<number> {
  if (!(timeoutS >= 0)) throw new UsageError(`--timeout must be a number of seconds >= 0, got ${timeoutS}`);
  const socket = await socketFor(mountpoint);
  const query = `/unmount?timeout=${timeoutS}${force ? '&force=1' : ''}`;
  const answer = await controlRequest(socket, 'POST', query, (timeoutS + 60) * 1000).catch((err: unknown) => {
    throw notRunning(mountpoint, err);
  });
  const body = answer.body as UnmountAnswer;
  process.stderr.write(`girder-mount: ${body.message}\n`);
  // 0 only when nothing is left: not mounted, not serving a detached mount, every upload on the server.
  return body.unmounted && !body.detached && body.pending === 0 ? 0 : 1;
}
