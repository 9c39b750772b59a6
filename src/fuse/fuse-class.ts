/**
 * fuse-native's Fuse class with the fixes girder-mount needs in its JavaScript glue:
 * - the `-o` string is ours (fuse-native's builder has no big_writes, drops 0-valued timeouts and
 *   escapes nothing);
 * - fgetattr calls ops.fgetattr (fuse-native 2.2.6 calls ops.getattr, losing the handle);
 * - getxattr/listxattr honour the kernel's buffer size: 0 asks for the length, a too-small buffer
 *   gets ERANGE (fuse-native copies past it and reports the full length);
 * - close only releases native state: FuseMount unmounts first, without fuse-native's lazy -uz.
 */
import Fuse from 'fuse-native';
import { EIO, ENODATA, ERANGE } from './errno.js';
import { fuseBinding } from './native-addon.js';

export class GirderFuse extends Fuse {
  readonly #optionString: string;

  constructor(mountpoint: string, ops: Fuse.Operations, opts: Fuse.Options, optionString: string) {
    super(mountpoint, ops, opts);
    this.#optionString = optionString;
  }

  protected override _fuseOptions(): string {
    return this.#optionString;
  }

  protected override _op_fgetattr(signal: Fuse.Signal, path: string, fd: number): void {
    const fgetattr = this.ops.fgetattr;
    if (fgetattr === undefined) {
      super._op_fgetattr(signal, path, fd);
      return;
    }
    fgetattr.call(this.ops, path, fd, (code, stat) => {
      if (code !== 0) signal(code);
      else if (stat === undefined) signal(EIO);
      else signal(0, statArray(stat));
    });
  }

  protected override _op_getxattr(signal: Fuse.Signal, path: string, name: string, value: Buffer, position: number): void {
    const answer = (code: number): void => signal(code, value.buffer);
    const getxattr = this.ops.getxattr;
    if (getxattr === undefined) {
      answer(ENODATA);
      return;
    }
    getxattr.call(this.ops, path, name, position, (code, data) => {
      if (code !== 0) answer(code);
      else if (!data) answer(ENODATA);
      else answer(fill(value, data));
    });
  }

  protected override _op_listxattr(signal: Fuse.Signal, path: string, list: Buffer): void {
    const answer = (code: number): void => signal(code, list.buffer);
    const listxattr = this.ops.listxattr;
    if (listxattr === undefined) {
      answer(0);
      return;
    }
    listxattr.call(this.ops, path, (code, names) => {
      if (code !== 0) answer(code);
      else answer(fill(list, Buffer.from((names ?? []).map((n) => `${n}\0`).join(''))));
    });
  }

  protected override _close(cb: (err: Error | null) => void): void {
    try {
      if (this._thread) fuseBinding().fuse_native_unmount(this.mnt, this._thread);
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    cb(null);
  }
}

/** getxattr/listxattr protocol: size 0 asks for the length; otherwise it must fit. */
function fill(target: Buffer, data: Buffer): number {
  if (target.length === 0) return data.length;
  if (data.length > target.length) return ERANGE;
  data.copy(target);
  return data.length;
}

/** fuse-native's stat layout (index.js getStatArray): 18 uint32, 64-bit values as low/high pairs. */
function statArray(stat: Fuse.Stat): Uint32Array {
  const ints = new Uint32Array(18);
  ints[0] = stat.mode;
  ints[1] = stat.uid;
  ints[2] = stat.gid;
  setUint64(ints, 3, stat.size);
  ints[5] = stat.dev ?? 0;
  ints[6] = stat.nlink || 1;
  ints[7] = stat.ino ?? 0;
  ints[8] = stat.rdev ?? 0;
  ints[9] = stat.blksize ?? 0;
  setUint64(ints, 10, stat.blocks ?? 0);
  setUint64(ints, 12, toMs(stat.atime));
  setUint64(ints, 14, toMs(stat.mtime));
  setUint64(ints, 16, toMs(stat.ctime));
  return ints;
}

function setUint64(ints: Uint32Array, index: number, value: number): void {
  const low = value % 4294967296;
  ints[index] = low;
  ints[index + 1] = (value - low) / 4294967296;
}

function toMs(time: Date | number): number {
  return typeof time === 'number' ? time : time.getTime();
}
