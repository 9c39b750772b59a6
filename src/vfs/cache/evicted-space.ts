import { errorMessage } from '../../errors.js';
import type { BlockLru } from './block-lru.js';
import { PunchError, type VersionFile } from './version-file.js';
import { errCode, type WarnOnce } from './warn-once.js';

/**
 * Evicted blocks and the giving back of their disk space (hole punch, truncate or unlink). Space
 * is freed only after an index without those blocks is on disk, so a crash never leaves an index
 * naming freed blocks: each eviction belongs to a generation, and a save frees the generations
 * older than its snapshot.
 */
export class EvictedSpace {
  /** Files with evicted blocks to free. */
  private readonly freeing = new Set<VersionFile>();
  private gen = 0;
  private punching = true;

  constructor(private readonly lru: BlockLru, private readonly warn: WarnOnce) {}

  /** Holes can be punched in cache files here (else eviction takes whole files). */
  get punchWorks(): boolean {
    return this.punching;
  }

  /** Take block `idx` of `vf` off the disk; its space is freed after the next save. False when it was not there. */
  evict(vf: VersionFile, idx: number): boolean {
    const e = vf.evict(idx, this.gen);
    if (e === undefined) return false;
    this.lru.unblock();
    this.lru.remove(e);
    this.freeing.add(vf);
    return true;
  }

  /** A dropped version: its file goes as a whole. */
  forget(vf: VersionFile): void {
    this.freeing.delete(vf);
  }

  /** A save takes its snapshot: the generation it may free once saved. */
  nextGeneration(): number {
    return this.gen++;
  }

  /** Free the space of blocks evicted up to generation `gen` (an index without them is saved). */
  async freeUpTo(gen: number): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const vf of [...this.freeing]) {
      this.freeing.delete(vf);
      const job = vf.enqueue(() => this.freeBlocks(vf, gen))
        .catch((err: unknown) => this.warn.warn(`free:${errCode(err)}`, { err: errorMessage(err) }, 'cannot free evicted cache blocks'));
      jobs.push(job);
    }
    await Promise.all(jobs);
  }

  private async freeBlocks(vf: VersionFile, gen: number): Promise<void> {
    const idxs = vf.takeEvicted(gen);
    if (vf.hasEvicted) this.freeing.add(vf);
    if (vf.dead || idxs.length === 0 || !vf.mayExist || !this.punching) {
      if (!vf.holdsBlocks && vf.mayExist && !vf.dead) await vf.unlink();
      return;
    }
    try {
      await vf.freeSpace(idxs);
    } catch (err) {
      if (!(err instanceof PunchError)) throw err;
      this.punching = false;
      this.warn.warn('punch', { err: errorMessage(err.cause) }, 'cannot punch holes in cache files; evicting whole files from now on');
    }
  }
}
