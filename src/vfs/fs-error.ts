/**
 * The one errno table: every failure from below the vfs (a Girder failure by its kind, a Node
 * system error by its code) as the FsError the kernel should see. FileSystemBoundary applies it
 * to every FileSystem call, so the fuse layer only ever sees FsErrors.
 */
import { FsError, type Errno } from '../errors.js';
import { GirderError } from '../girder/girder-error.js';

const NODE_ERRNOS: ReadonlySet<string> = new Set<Errno>([
  'ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EACCES', 'EPERM', 'EROFS', 'EIO',
  'EINVAL', 'ENOSPC', 'EBADF', 'ENAMETOOLONG', 'EFBIG', 'ENOTSUP', 'ENODATA', 'ESTALE', 'EXDEV',
  'EBUSY', 'ERANGE', 'ETIMEDOUT',
]);

/** Map anything thrown below the vfs boundary to the errno a caller should see. */
export function toFsError(err: unknown): FsError {
  if (err instanceof FsError) return err;
  if (err instanceof GirderError) return new FsError(girderErrno(err), err.message, { cause: err });
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EDQUOT') return new FsError('ENOSPC', String(err), { cause: err });
  if (code !== undefined && NODE_ERRNOS.has(code)) {
    return new FsError(code as Errno, String(err), { cause: err });
  }
  return new FsError('EIO', err instanceof Error ? err.message : String(err), { cause: err });
}

function girderErrno(err: GirderError): Errno {
  switch (err.kind) {
    case 'stale': return 'ESTALE'; // the file changed size on the server under an open reader
    case 'auth':
    case 'forbidden': return 'EACCES';
    case 'missing':
    case 'lost-upload': return 'ENOENT';
    default: return 'EIO';
  }
}
