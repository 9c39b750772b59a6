/**
 * Checking a mountpoint before mounting, and clearing a dead FUSE mount left there by a killed
 * daemon. Only asynchronous fs calls: the path may be a FUSE mount served by this very process.
 */
import { opendir, realpath, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { UsageError, errorMessage } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { fusermountUnmount } from './fusermount.js';
import { mountsAt } from './proc-mounts.js';

/** A live mount answers at once; one that does not within this time is hung. */
const PROBE_TIMEOUT_MS = 10_000;
const MAX_STACKED_MOUNTS = 8;

/**
 * Resolves `given` to the absolute real path to mount on, or rejects with a one-line UsageError:
 * does not exist, not a directory, not empty, already mounted (listed in /proc/mounts and answers).
 * A dead mount (listed, but statfs fails with ENOTCONN: "Transport endpoint is not connected") is
 * cleared with `fusermount -uz` and the path reused.
 */
export async function prepareMountpoint(given: string, logger: Logger = silentLogger()): Promise<string> {
  const real = await resolveMountpoint(given);
  for (let mounted = await mountsAt(real), cleared = 0; mounted.length > 0; mounted = await mountsAt(real)) {
    const top = mounted[mounted.length - 1];
    if (cleared++ > MAX_STACKED_MOUNTS) throw new UsageError(`mountpoint ${given}: dead mounts keep reappearing`);
    // statfs always reaches the FUSE server; stat may be answered from the kernel's attribute cache.
    const probe = await withTimeout(statfs(real));
    if (probe.code === 'ENOTCONN') {
      await clearDeadMount(given, real, logger, top?.type);
      continue;
    }
    if (probe.code === 'ETIMEDOUT') {
      throw new UsageError(`mountpoint ${given} is a mount that does not answer; unmount it with: fusermount -uz ${real}`);
    }
    throw new UsageError(`mountpoint ${given} is already mounted (${top?.type} from ${top?.source}); unmount it first`);
  }
  const status = await withTimeout(stat(real));
  if (status.code === 'ENOENT') throw new UsageError(`mountpoint ${given} does not exist`);
  if (status.code === 'ENOTCONN') {
    throw new UsageError(`mountpoint ${given} is not connected but not listed in /proc/mounts; try: fusermount -uz ${real}`);
  }
  if (status.value === undefined) throw new UsageError(`mountpoint ${given}: ${status.message}`);
  if (!status.value.isDirectory()) throw new UsageError(`mountpoint ${given} is not a directory`);
  if (!(await isEmptyDirectory(real))) throw new UsageError(`mountpoint ${given} is not empty`);
  return real;
}

/** The real path; for a dead mount (realpath fails with ENOTCONN) the real parent plus the name. */
async function resolveMountpoint(given: string): Promise<string> {
  const absolute = path.resolve(given);
  try {
    return await realpath(absolute);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENOENT') throw new UsageError(`mountpoint ${given} does not exist`);
    if (code === 'ENOTDIR') throw new UsageError(`mountpoint ${given} is not a directory`);
    if (code !== 'ENOTCONN') throw new UsageError(`mountpoint ${given}: ${errorMessage(err)}`);
  }
  const parent = await realpath(path.dirname(absolute)).catch((err: unknown) => {
    throw new UsageError(`mountpoint ${given}: ${errorMessage(err)}`);
  });
  return path.join(parent, path.basename(absolute));
}

async function clearDeadMount(given: string, real: string, logger: Logger, type: string | undefined): Promise<void> {
  const result = await fusermountUnmount(real, true);
  if (!result.ok) throw new UsageError(`mountpoint ${given} is a dead mount that could not be cleared: ${result.message}`);
  logger.warn({ mountpoint: real, type },
    'cleared a dead FUSE mount (Transport endpoint is not connected) left by an earlier run');
}

interface Outcome<T> {
  value?: T;
  code?: string;
  message?: string;
}

/** Settles with the value or the error code; ETIMEDOUT when a (hung) mount does not answer. */
async function withTimeout<T>(attempt: Promise<T>): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome<T>>((resolve) => {
    timer = setTimeout(() => resolve({ code: 'ETIMEDOUT', message: 'no answer' }), PROBE_TIMEOUT_MS);
  });
  const outcome = attempt.then(
    (value): Outcome<T> => ({ value }),
    (err: unknown): Outcome<T> => ({ code: codeOf(err), message: errorMessage(err) }),
  );
  try {
    return await Promise.race([outcome, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function isEmptyDirectory(dir: string): Promise<boolean> {
  const handle = await opendir(dir).catch((err: unknown) => {
    throw new UsageError(`mountpoint ${dir}: ${errorMessage(err)}`);
  });
  try {
    return (await handle.read()) === null;
  } finally {
    await handle.close();
  }
}

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}
