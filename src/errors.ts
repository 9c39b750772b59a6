/** Typed errors that cross layer boundaries. Each boundary maps them once. */

/** An error answer (or failure to answer) from the Girder server. */
export class GirderError extends Error {
  override readonly name = 'GirderError';
  constructor(
    message: string,
    /** HTTP status; 0 when no answer arrived (socket error, timeout). */
    readonly status: number,
    /** Girder's error `type` (rest, access, validation, girder, internal), or a local kind. */
    readonly type: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Girder answers 400 "Invalid <model> id (...)" for ids that do not exist (no 404s). */
  get isMissing(): boolean {
    return this.status === 400 && /^Invalid (folder|item|file|upload) id/.test(this.message);
  }

  /** No usable answer: the network or the server is down, or it answered 5xx. */
  get isTransient(): boolean {
    return this.status === 0 || this.status >= 500;
  }

  get isAccessDenied(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

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
    // The file changed size on the server under an open reader.
    if (err.type === 'stale') return new FsError('ESTALE', err.message, { cause: err });
    if (err.isAccessDenied) return new FsError('EACCES', err.message, { cause: err });
    if (err.isMissing) return new FsError('ENOENT', err.message, { cause: err });
    return new FsError('EIO', err.message, { cause: err });
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
