// Local files the writers copy into the mount, each with its SHA-512 known before it is copied:
// a fixed pool (the same content lands in many files: exercises the server-side de-duplication and
// "same bytes, skip") and fresh random files made for one write and removed after it.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { writeRandomFile } from '../../test/helpers/random-file.js';
import type { Random } from './random.js';

export interface Source {
  path: string;
  size: number;
  sha512: string;
  /** Remove after use (a fresh file). */
  fresh: boolean;
}

export class Sources {
  private readonly pool: Source[] = [];
  private freshCount = 0;

  private constructor(
    private readonly dir: string,
    private readonly random: Random,
    private readonly minSize: number,
    private readonly maxSize: number,
  ) {}

  static async create(dir: string, random: Random, minSize: number, maxSize: number, poolSize: number): Promise<Sources> {
    const s = new Sources(dir, random, minSize, maxSize);
    // the smallest and largest sizes are always in the pool
    const sizes = [minSize, maxSize];
    while (sizes.length < poolSize) sizes.push(random.size(minSize, maxSize));
    for (const [i, size] of sizes.entries()) {
      const p = path.join(dir, `pool-${i}.bin`);
      s.pool.push({ path: p, size, sha512: await writeRandomFile(p, size), fresh: false });
    }
    return s;
  }

  /** Half of the time a pool file, else a new random one. */
  async next(): Promise<Source> {
    if (this.random.chance(0.5)) return this.random.pick(this.pool)!;
    const size = this.random.size(this.minSize, this.maxSize);
    const p = path.join(this.dir, `fresh-${++this.freshCount}.bin`);
    return { path: p, size, sha512: await writeRandomFile(p, size), fresh: true };
  }

  async done(source: Source): Promise<void> {
    if (source.fresh) await rm(source.path, { force: true });
  }

  get poolBytes(): number {
    return this.pool.reduce((s, x) => s + x.size, 0);
  }
}
