/** Errors to the negative errno numbers fuse-native hands the kernel. */
import { constants } from 'node:os';
import { FsError, type Errno } from '../errors.js';

const ERRNO = constants.errno as Readonly<Record<string, number | undefined>>;

function negative(name: string): number {
  const value = ERRNO[name];
  if (value === undefined) throw new Error(`no errno ${name} on this platform`);
  return -value;
}

export const EIO = negative('EIO');
export const ENOENT = negative('ENOENT');
export const EEXIST = negative('EEXIST');
export const ENODATA = negative('ENODATA');
export const ERANGE = negative('ERANGE');
export const EINVAL = negative('EINVAL');
export const EPERM = negative('EPERM');

/** The negative errno for an errno name; EIO for a name this platform lacks. */
export function fuseErrno(name: Errno): number {
  const value = ERRNO[name];
  return value === undefined ? EIO : -value;
}

/** FsError -> its errno; anything else (a bug: the FileSystem rejects with FsError only) -> EIO. */
export function errnoOf(err: unknown): number {
  return err instanceof FsError ? fuseErrno(err.errno) : EIO;
}
