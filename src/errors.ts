/** Errors every layer may name: FsError (what the kernel sees), UsageError (what the CLI prints). */

export type Errno =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EACCES' | 'EPERM' | 'EROFS'
  | 'EIO' | 'EINVAL' | 'ENOSPC' | 'EBADF' | 'ENAMETOOLONG' | 'EFBIG' | 'ENOTSUP' | 'ENODATA'
  | 'ESTALE' | 'EXDEV' | 'EBUSY' | 'ERANGE' | 'ETIMEDOUT' | 'ELOOP';

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

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
