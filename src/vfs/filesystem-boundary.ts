/**
 * The vfs as the fuse layer gets it: every FileSystem call of the model, its failure converted
 * once (fs-error.ts) so that nothing but FsError crosses into src/fuse/.
 */
import type { Attr, FileSystem, FsStats } from './api.js';
import { toFsError } from './fs-error.js';

async function converted<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    throw toFsError(err);
  }
}

export class FileSystemBoundary implements FileSystem {
  constructor(private readonly fs: FileSystem) {}

  getattr(path: string): Promise<Attr> { return converted(this.fs.getattr(path)); }
  fgetattr(path: string, fh: number): Promise<Attr> { return converted(this.fs.fgetattr(path, fh)); }
  readdir(path: string): Promise<string[]> { return converted(this.fs.readdir(path)); }
  statfs(): Promise<FsStats> { return converted(this.fs.statfs()); }

  open(path: string, flags: number): Promise<number> { return converted(this.fs.open(path, flags)); }
  create(path: string, mode: number, flags: number): Promise<number> { return converted(this.fs.create(path, mode, flags)); }
  read(fh: number, into: Buffer, length: number, position: number): Promise<number> { return converted(this.fs.read(fh, into, length, position)); }
  readNow(fh: number, into: Buffer, length: number, position: number): number | undefined { return this.fs.readNow(fh, into, length, position); }
  write(fh: number, data: Buffer, length: number, position: number): Promise<number> { return converted(this.fs.write(fh, data, length, position)); }
  flush(fh: number): Promise<void> { return converted(this.fs.flush(fh)); }
  fsync(fh: number): Promise<void> { return converted(this.fs.fsync(fh)); }
  release(fh: number): Promise<void> { return converted(this.fs.release(fh)); }
  truncate(path: string, size: number): Promise<void> { return converted(this.fs.truncate(path, size)); }
  ftruncate(fh: number, size: number): Promise<void> { return converted(this.fs.ftruncate(fh, size)); }

  unlink(path: string): Promise<void> { return converted(this.fs.unlink(path)); }
  mkdir(path: string, mode: number): Promise<void> { return converted(this.fs.mkdir(path, mode)); }
  rmdir(path: string): Promise<void> { return converted(this.fs.rmdir(path)); }
  rename(from: string, to: string): Promise<void> { return converted(this.fs.rename(from, to)); }
  symlink(target: string, path: string): Promise<void> { return converted(this.fs.symlink(target, path)); }
  readlink(path: string): Promise<string> { return converted(this.fs.readlink(path)); }
  utimens(path: string, atime: number, mtime: number): Promise<void> { return converted(this.fs.utimens(path, atime, mtime)); }
  chmod(path: string, mode: number): Promise<void> { return converted(this.fs.chmod(path, mode)); }
  chown(path: string, uid: number, gid: number): Promise<void> { return converted(this.fs.chown(path, uid, gid)); }

  getxattr(path: string, name: string): Promise<Buffer> { return converted(this.fs.getxattr(path, name)); }
  setxattr(path: string, name: string, value: Buffer): Promise<void> { return converted(this.fs.setxattr(path, name, value)); }
  listxattr(path: string): Promise<string[]> { return converted(this.fs.listxattr(path)); }
  removexattr(path: string, name: string): Promise<void> { return converted(this.fs.removexattr(path, name)); }

  progressOf(path: string): number { return this.fs.progressOf?.(path) ?? -1; }
  waitsOf(path: string): Record<string, unknown> { return this.fs.waitsOf?.(path) ?? {}; }
}
