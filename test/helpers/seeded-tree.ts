// Deterministic test data from a seed: a random number generator, and trees of files (names,
// folders, sizes and bytes all drawn from it), so a failure can be replayed with the same seed.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** mulberry32: a small, fast 32-bit generator; the same seed gives the same sequence. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (x ^ (x >>> 14)) >>> 0;
  }

  /** A uniform integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.next() / 0x1_0000_0000) * (hi - lo));
  }

  /** A uniform float in [0, 1). */
  fraction(): number {
    return this.next() / 0x1_0000_0000;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length)] as T;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i);
    for (; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }

  /** Lines of lowercase words: compressible like source code, so git's deltas have something to do. */
  text(n: number): Buffer {
    const words = ['alpha', 'beta', 'gamma', 'delta', 'return', 'const', 'value', 'index', 'girder', 'mount', 'file', '{', '}', '=', '+', '42'];
    const parts: string[] = [];
    let length = 0;
    while (length < n) {
      const line = Array.from({ length: this.int(1, 12) }, () => this.pick(words)).join(' ') + '\n';
      parts.push(line);
      length += line.length;
    }
    return Buffer.from(parts.join('').slice(0, n));
  }
}

export interface TreeSpec {
  seed: number;
  files: number;
  /** Sub-folders, nested up to 3 deep (the files are spread over them and the root). */
  dirs: number;
  /** Bytes of one file, drawn from the generator. */
  size: (rng: SeededRandom) => number;
  content: 'binary' | 'text';
}

export interface WrittenTree {
  files: number;
  dirs: number;
  bytes: number;
  /** Relative paths of the files, in the order written. */
  paths: string[];
}

/** Mostly small files, as in source trees and package folders, with a few of a few MiB. */
export function packageLikeSize(rng: SeededRandom): number {
  const x = rng.fraction();
  if (x < 0.2) return rng.int(0, 64);
  if (x < 0.9) return rng.int(64, 8192);
  if (x < 0.995) return rng.int(8192, 128 * 1024);
  return rng.int(1024 * 1024, 2 * 1024 * 1024);
}

/** A file name; now and then one with a space or non-ASCII letters, as real trees have. */
function fileName(rng: SeededRandom, i: number, ext: string): string {
  const n = String(i).padStart(4, '0');
  const odd = rng.int(0, 40);
  if (odd === 0) return `name with spaces ${n}${ext}`;
  if (odd === 1) return `ünïcödé-${n}${ext}`;
  return `f${n}${ext}`;
}

/** Writes a tree under `root` (created if needed), the same for the same spec. */
export async function writeSeededTree(root: string, spec: TreeSpec): Promise<WrittenTree> {
  const rng = new SeededRandom(spec.seed);
  const dirs = [''];
  for (let i = 0; i < spec.dirs; i++) {
    const parent = rng.pick(dirs.filter((d) => d.split('/').length < 3));
    dirs.push(path.posix.join(parent, `d${String(i).padStart(2, '0')}`));
  }
  await mkdir(root, { recursive: true });
  for (const d of dirs) await mkdir(path.join(root, d), { recursive: true });
  const ext = spec.content === 'text' ? '.txt' : '.dat';
  const paths: string[] = [];
  let bytes = 0;
  for (let i = 0; i < spec.files; i++) {
    const rel = path.posix.join(rng.pick(dirs), fileName(rng, i, ext));
    const size = spec.size(rng);
    await writeFile(path.join(root, rel), spec.content === 'text' ? rng.text(size) : rng.bytes(size));
    paths.push(rel);
    bytes += size;
  }
  return { files: spec.files, dirs: spec.dirs, bytes, paths };
}
