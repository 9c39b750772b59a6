/**
 * A small in-memory FileSystem (src/vfs/api.ts) for fuse-layer tests only: POSIX-like errors,
 * file data in 1 MiB chunks, xattrs, and counters of write calls (to see big_writes at work).
 * `faults` makes open() of chosen paths fail, to test errno mapping.
 */
import { FsError, type Errno } from '../../src/errors.js';
import {
  O_ACCMODE, O_TRUNC, S_IFDIR, S_IFLNK, S_IFREG,
  type Attr, type FileSystem, type FsStats,
} from '../../src/vfs/api.js';

const CHUNK = 1 << 20;

interface Node {
  kind: 'dir' | 'file' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  atime: number;
  mtime: number;
  ctime: number;
  xattrs: Map<string, Buffer>;
  children: Map<string, Node>;
  chunks: Map<number, Buffer>;
  size: number;
  target?: string;
}

export interface WriteStats {
  writeCalls: number;
  writeBytes: number;
  minWrite: number;
  maxWrite: number;
  /** Calls with length >= 64 KiB. */
  bigWrites: number;
  /** getxattr calls that reached JavaScript. */
  getxattrCalls: number;
  flushCalls: number;
}

/** Per path: an errno name (FsError) or 'crash' (a plain Error, i.e. a bug below the fuse layer). */
export type Faults = Record<string, Errno | 'crash'>;

export class MemoryFs implements FileSystem {
  readonly stats: WriteStats = { writeCalls: 0, writeBytes: 0, minWrite: 0, maxWrite: 0, bigWrites: 0, getxattrCalls: 0, flushCalls: 0 };
  /** Every utimens call as it arrived, for tests. */
  readonly utimensCalls: Array<{ path: string; atime: number; mtime: number }> = [];
  private readonly root: Node;
  private readonly handles = new Map<number, { node: Node; flags: number }>();
  private nextHandle = 1;

  constructor(private readonly faults: Faults = {}, owner = { uid: 0, gid: 0 }) {
    this.root = this.makeNode('dir', 0o755, owner.uid, owner.gid);
  }

  async getattr(path: string): Promise<Attr> {
    return this.attr(this.lookup(path));
  }

  async fgetattr(_path: string, fh: number): Promise<Attr> {
    return this.attr(this.handle(fh).node);
  }

  async readdir(path: string): Promise<string[]> {
    const node = this.lookup(path);
    if (node.kind !== 'dir') throw new FsError('ENOTDIR');
    return [...node.children.keys()];
  }

  async statfs(): Promise<FsStats> {
    return { bsize: 4096, blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19, files: 1 << 16, ffree: 1 << 15, namemax: 255 };
  }

  async open(path: string, flags: number): Promise<number> {
    this.fault(path);
    const node = this.lookup(path);
    if (node.kind === 'dir') throw new FsError('EISDIR');
    if (flags & O_TRUNC && (flags & O_ACCMODE) !== 0) this.resize(node, 0);
    return this.addHandle(node, flags);
  }

  async create(path: string, mode: number, flags: number): Promise<number> {
    const { parent, name } = this.parentOf(path);
    let node = parent.children.get(name);
    if (node?.kind === 'dir') throw new FsError('EISDIR');
    if (node === undefined) {
      node = this.makeNode('file', mode & 0o7777, this.root.uid, this.root.gid);
      parent.children.set(name, node);
      this.touch(parent);
    } else {
      this.resize(node, 0);
    }
    return this.addHandle(node, flags);
  }

  /** Always "wait": reads here go through `read`, which tests replace to make them slow or fail. */
  readNow(_fh: number, _into: Buffer, _length: number, _position: number): number | undefined {
    return undefined;
  }

  async read(fh: number, into: Buffer, length: number, position: number): Promise<number> {
    const { node } = this.handle(fh);
    const end = Math.min(node.size, position + length);
    let done = 0;
    for (let pos = position; pos < end;) {
      const index = Math.floor(pos / CHUNK);
      const offset = pos - index * CHUNK;
      const n = Math.min(CHUNK - offset, end - pos);
      const chunk = node.chunks.get(index);
      if (chunk) chunk.copy(into, done, offset, offset + n);
      else into.fill(0, done, done + n);
      done += n;
      pos += n;
    }
    return done;
  }

  async write(fh: number, data: Buffer, length: number, position: number): Promise<number> {
    const { node, flags } = this.handle(fh);
    if ((flags & O_ACCMODE) === 0) throw new FsError('EBADF');
    this.count(length);
    for (let done = 0; done < length;) {
      const pos = position + done;
      const index = Math.floor(pos / CHUNK);
      const offset = pos - index * CHUNK;
      const n = Math.min(CHUNK - offset, length - done);
      let chunk = node.chunks.get(index);
      if (!chunk) {
        chunk = Buffer.alloc(CHUNK);
        node.chunks.set(index, chunk);
      }
      data.copy(chunk, offset, done, done + n);
      done += n;
    }
    node.size = Math.max(node.size, position + length);
    this.touch(node);
    return length;
  }

  async flush(fh: number): Promise<void> {
    this.stats.flushCalls++;
    this.handle(fh);
  }

  async fsync(fh: number): Promise<void> {
    this.handle(fh);
  }

  async release(fh: number): Promise<void> {
    this.handle(fh);
    this.handles.delete(fh);
  }

  async truncate(path: string, size: number): Promise<void> {
    const node = this.lookup(path);
    if (node.kind === 'dir') throw new FsError('EISDIR');
    this.resize(node, size);
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    this.resize(this.handle(fh).node, size);
  }

  async unlink(path: string): Promise<void> {
    const { parent, name } = this.parentOf(path);
    const node = parent.children.get(name);
    if (node === undefined) throw new FsError('ENOENT');
    if (node.kind === 'dir') throw new FsError('EISDIR');
    parent.children.delete(name);
    this.touch(parent);
  }

  async mkdir(path: string, mode: number): Promise<void> {
    const { parent, name } = this.parentOf(path);
    if (parent.children.has(name)) throw new FsError('EEXIST');
    parent.children.set(name, this.makeNode('dir', mode & 0o7777, this.root.uid, this.root.gid));
    this.touch(parent);
  }

  async symlink(target: string, path: string): Promise<void> {
    const { parent, name } = this.parentOf(path);
    if (parent.children.has(name)) throw new FsError('EEXIST');
    const node = this.makeNode('symlink', 0o777, this.root.uid, this.root.gid);
    node.target = target;
    node.size = Buffer.byteLength(target);
    parent.children.set(name, node);
    this.touch(parent);
  }

  async readlink(path: string): Promise<string> {
    const node = this.lookup(path);
    if (node.target === undefined) throw new FsError('EINVAL');
    return node.target;
  }

  async rmdir(path: string): Promise<void> {
    if (path === '/') throw new FsError('EBUSY');
    const { parent, name } = this.parentOf(path);
    const node = parent.children.get(name);
    if (node === undefined) throw new FsError('ENOENT');
    if (node.kind !== 'dir') throw new FsError('ENOTDIR');
    if (node.children.size > 0) throw new FsError('ENOTEMPTY');
    parent.children.delete(name);
    this.touch(parent);
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.parentOf(from);
    const node = src.parent.children.get(src.name);
    if (node === undefined) throw new FsError('ENOENT');
    const dst = this.parentOf(to);
    if (node.kind === 'dir' && (to + '/').startsWith(from + '/')) throw new FsError('EINVAL');
    const existing = dst.parent.children.get(dst.name);
    if (existing === node) return;
    if (existing !== undefined) {
      if (existing.kind === 'dir' && node.kind !== 'dir') throw new FsError('EISDIR');
      if (existing.kind !== 'dir' && node.kind === 'dir') throw new FsError('ENOTDIR');
      if (existing.kind === 'dir' && existing.children.size > 0) throw new FsError('ENOTEMPTY');
    }
    src.parent.children.delete(src.name);
    dst.parent.children.set(dst.name, node);
    this.touch(src.parent);
    this.touch(dst.parent);
    node.ctime = Date.now();
  }

  async utimens(path: string, atime: number, mtime: number): Promise<void> {
    const node = this.lookup(path);
    this.utimensCalls.push({ path, atime, mtime });
    node.atime = atime;
    node.mtime = mtime;
    node.ctime = Date.now();
  }

  async chmod(path: string, mode: number): Promise<void> {
    const node = this.lookup(path);
    node.mode = mode & 0o7777;
    node.ctime = Date.now();
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    const node = this.lookup(path);
    node.uid = uid;
    node.gid = gid;
    node.ctime = Date.now();
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    this.stats.getxattrCalls++;
    const value = this.lookup(path).xattrs.get(name);
    if (value === undefined) throw new FsError('ENODATA');
    return value;
  }

  async setxattr(path: string, name: string, value: Buffer): Promise<void> {
    this.lookup(path).xattrs.set(name, value);
  }

  async listxattr(path: string): Promise<string[]> {
    return [...this.lookup(path).xattrs.keys()];
  }

  async removexattr(path: string, name: string): Promise<void> {
    if (!this.lookup(path).xattrs.delete(name)) throw new FsError('ENODATA');
  }

  /** Where file handles stand (a leak shows up here). */
  openHandles(): number {
    return this.handles.size;
  }

  /** Faults hit open() only: the file can be created and listed, opening it fails. */
  private fault(path: string): void {
    const fault = this.faults[path];
    if (fault === 'crash') throw new Error(`simulated bug at ${path}`);
    if (fault !== undefined) throw new FsError(fault, `simulated ${fault} at ${path}`);
  }

  private count(length: number): void {
    const s = this.stats;
    s.writeCalls++;
    s.writeBytes += length;
    s.minWrite = s.writeCalls === 1 ? length : Math.min(s.minWrite, length);
    s.maxWrite = Math.max(s.maxWrite, length);
    if (length >= 64 * 1024) s.bigWrites++;
  }

  private makeNode(kind: Node['kind'], perm: number, uid: number, gid: number): Node {
    const now = Date.now();
    return {
      kind, mode: perm, uid, gid, atime: now, mtime: now, ctime: now,
      xattrs: new Map(), children: new Map(), chunks: new Map(), size: 0,
    };
  }

  private attr(node: Node): Attr {
    const dir = node.kind === 'dir';
    let subdirs = 0;
    if (dir) for (const child of node.children.values()) if (child.kind === 'dir') subdirs++;
    return {
      mode: (dir ? S_IFDIR : node.kind === 'symlink' ? S_IFLNK : S_IFREG) | node.mode,
      size: dir ? 4096 : node.size,
      mtime: node.mtime,
      atime: node.atime,
      ctime: node.ctime,
      nlink: dir ? 2 + subdirs : 1,
      uid: node.uid,
      gid: node.gid,
    };
  }

  private lookup(path: string): Node {
    let node = this.root;
    for (const name of path.split('/').filter(Boolean)) {
      if (node.kind !== 'dir') throw new FsError('ENOTDIR');
      const child = node.children.get(name);
      if (child === undefined) throw new FsError('ENOENT', `no ${path}`);
      node = child;
    }
    return node;
  }

  private parentOf(path: string): { parent: Node; name: string } {
    const cut = path.lastIndexOf('/');
    const name = path.slice(cut + 1);
    if (name === '') throw new FsError('EINVAL');
    const parent = this.lookup(path.slice(0, cut) || '/');
    if (parent.kind !== 'dir') throw new FsError('ENOTDIR');
    return { parent, name };
  }

  private handle(fh: number): { node: Node; flags: number } {
    const handle = this.handles.get(fh);
    if (handle === undefined) throw new FsError('EBADF');
    return handle;
  }

  private addHandle(node: Node, flags: number): number {
    const fh = this.nextHandle++;
    this.handles.set(fh, { node, flags });
    return fh;
  }

  private resize(node: Node, size: number): void {
    for (const index of [...node.chunks.keys()]) {
      if (index * CHUNK >= size) node.chunks.delete(index);
    }
    const last = node.chunks.get(Math.floor(size / CHUNK));
    if (last) last.fill(0, size % CHUNK);
    node.size = size;
    this.touch(node);
  }

  private touch(node: Node): void {
    node.mtime = node.ctime = Date.now();
  }
}
