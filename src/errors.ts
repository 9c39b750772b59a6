/** Typed errors that cross layer boundaries. Each boundary maps them once. */
import { GirderError } from './girder/girder-error.js';

export type Errno =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EACCES' | 'EPERM' | 'EROFS'
  | 'EIO' | 'EINVAL' | 'ENOSPC' | 'EBADF' | 'ENAMETOOLONG' | 'EFBIG' | 'ENOTSUP' | 'ENODATA'
  | 'ESTALE' | 'EXDEV' | 'EBUSY' | 'ERANGE' | 'ETIMEDOUT';

/** A filesystem error with the errno the kernel should see. */
export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(readonly errno: Errno, message?: string, options?: { cause?: unknown }) {
    super(message ?? errno, options);
  }
}

/** A mistake of the person running the command: printed as one line, exit code 2 (or given). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string, readonly exitCode = 2) {
    super(message);
  }
}

const NODE_ERRNOS: ReadonlySet<string> = new Set<Errno>([
  'ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EACCES', 'EPERM', 'EROFS', 'EIO',
  'EINVAL', 'ENOSPC', 'EBADF', 'ENAMETOOLONG', 'EFBIG', 'ENOTSUP', 'ENODATA', 'ESTALE', 'EXDEV',
  'EBUSY', 'ERANGE', 'ETIMEDOUT',
]);

/** Map anything thrown below the vfs boundary to the errno a caller should see. */
export function toFsError(err: unknown): FsError {
  if (err instanceof FsError) return err;
  if (err instanceof GirderError) {
    switch (err.kind) {
      // The file changed size on the server under an open reader.
      case 'stale': return new FsError('ESTALE', err.message, { cause: err });
      case 'auth':
      case 'forbidden': return new FsError('EACCES', err.message, { cause: err });
      case 'missing':
      case 'lost-upload': return new FsError('ENOENT', err.message, { cause: err });
      default: return new FsError('EIO', err.message, { cause: err });
    }
  }
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EDQUOT') return new FsError('ENOSPC', String(err), { cause: err });
  if (code !== undefined && NODE_ERRNOS.has(code)) {
    return new FsError(code as Errno, String(err), { cause: err });
  }
  return new FsError('EIO', err instanceof Error ? err.message : String(err), { cause: err });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
