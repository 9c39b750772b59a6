// What the mount should hold: every directory and file the soak made, the SHA-512 of each file's
// last closed write, and who is using what, so no reader sees a file while it is being rewritten.
import path from 'node:path/posix';
import type { Random } from './random.js';

export interface FileEntry {
  /** Relative to the mountpoint, e.g. `d3/f12.bin`. */
  path: string;
  /** Of the last write that closed; undefined after a failed write (content unknown). */
  sha512: string | undefined;
  size: number;
  /** Bumped by every closed write. */
  version: number;
  writing: boolean;
  readers: number;
  /** In a mv or rm. */
  busy: boolean;
}

export interface DirEntry {
  path: string;
  /** In a mkdir, mv or rm -r: nothing starts under it. */
  busy: boolean;
}

export class Model {
  readonly files = new Map<string, FileEntry>();
  /** Every directory but the root (''). */
  readonly dirs = new Map<string, DirEntry>();
  private counter = 0;
  /** The last few writes of each content, by SHA-512: what a mismatch got, if the soak wrote it. */
  private readonly writes = new Map<string, string[]>();

  constructor(private readonly random: Random) {}

  /** A closed write of content `sha512`, described for a mismatch report. */
  noteWrite(sha512: string, what: string): void {
    const seen = this.writes.get(sha512) ?? [];
    seen.push(what);
    this.writes.set(sha512, seen.slice(-3));
  }

  /** Where content `sha512` was written (its last few writes), or that the soak never wrote it. */
  originOf(sha512: string): string {
    const seen = this.writes.get(sha512);
    return seen === undefined ? 'content no write of the soak made' : `content written as ${seen.join('; ')}`;
  }

  /** Whether `dir` or one of its ancestors is busy (the root never is). */
  dirBusy(dir: string): boolean {
    for (let d = dir; d !== '' && d !== '.'; d = parentDir(d)) {
      if (this.dirs.get(d)?.busy === true) return true;
    }
    return false;
  }

  /** Files a writer may overwrite (no reader, no other writer, no mv or rm). */
  writable(): FileEntry[] {
    return [...this.files.values()].filter((f) => !f.writing && f.readers === 0 && !f.busy && !this.dirBusy(parentDir(f.path)));
  }

  /** Files whose current content is known and that nobody is changing. */
  readable(): FileEntry[] {
    return [...this.files.values()].filter((f) => !f.writing && !f.busy && f.sha512 !== undefined && !this.dirBusy(parentDir(f.path)));
  }

  /** Files nobody is using: free to mv or rm. */
  idle(): FileEntry[] {
    return this.writable();
  }

  /** Directories (root included, as '') nothing is moving or removing. */
  usableDirs(): string[] {
    return ['', ...[...this.dirs.keys()].filter((d) => !this.dirBusy(d))];
  }

  /** Directories whose whole subtree is idle, deepest first is not needed: any order. */
  idleSubtrees(): DirEntry[] {
    return [...this.dirs.values()].filter((d) => !this.dirBusy(d.path) && this.subtreeIdle(d.path));
  }

  subtreeIdle(dir: string): boolean {
    for (const f of this.filesUnder(dir)) if (f.writing || f.readers > 0 || f.busy) return false;
    for (const d of this.dirsUnder(dir)) if (d.busy) return false;
    return true;
  }

  filesUnder(dir: string): FileEntry[] {
    return [...this.files.values()].filter((f) => f.path.startsWith(dir + '/'));
  }

  dirsUnder(dir: string): DirEntry[] {
    return [...this.dirs.values()].filter((d) => d.path.startsWith(dir + '/'));
  }

  depth(dir: string): number {
    return dir === '' ? 0 : dir.split('/').length;
  }

  /** A name unused anywhere (a global counter), sometimes with a space and non-ASCII letters. */
  newFileName(dir: string): string {
    const n = ++this.counter;
    const kind = this.random.next();
    const name = kind < 0.6 ? `f${n}.bin` : kind < 0.8 ? `data ${n} – ü.dat` : `n${n}`;
    return join(dir, name);
  }

  newDirName(parent: string): string {
    return join(parent, `d${++this.counter}`);
  }

  addFile(p: string): FileEntry {
    const f: FileEntry = { path: p, sha512: undefined, size: 0, version: 0, writing: true, readers: 0, busy: false };
    this.files.set(p, f);
    return f;
  }

  /** mv of a file: the entry takes the new path (a file there is replaced). */
  moveFile(f: FileEntry, to: string): void {
    this.files.delete(f.path);
    f.path = to;
    this.files.set(to, f);
  }

  /** mv of a directory: it and everything under it take the new prefix. */
  moveDir(from: string, to: string): void {
    const files = this.filesUnder(from);
    const dirs = [this.dirs.get(from), ...this.dirsUnder(from)].filter((d): d is DirEntry => d !== undefined);
    for (const f of files) this.files.delete(f.path);
    for (const d of dirs) this.dirs.delete(d.path);
    for (const f of files) {
      f.path = to + f.path.slice(from.length);
      this.files.set(f.path, f);
    }
    for (const d of dirs) {
      d.path = to + d.path.slice(from.length);
      this.dirs.set(d.path, d);
    }
  }

  removeTree(dir: string): void {
    for (const f of this.filesUnder(dir)) this.files.delete(f.path);
    for (const d of this.dirsUnder(dir)) this.dirs.delete(d.path);
    this.dirs.delete(dir);
  }

  totalBytes(): number {
    let sum = 0;
    for (const f of this.files.values()) sum += f.size;
    return sum;
  }
}

export function parentDir(p: string): string {
  const d = path.dirname(p);
  return d === '.' ? '' : d;
}

export function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}
