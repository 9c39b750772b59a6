import type { DirectBlocks } from './direct-blocks.js';
import { VersionFile } from './version-file.js';

/**
 * The cached versions of each remote file (one, except right after a restart), and the numbers
 * their block files are named by.
 */
export class VersionRegistry {
  private readonly byFile = new Map<string, VersionFile[]>();
  private next = 0;

  constructor(
    private readonly blocksDir: string,
    private readonly blockSize: number,
    /** Called when a version's last queued disk mutation is done. */
    private readonly onIdle: (vf: VersionFile) => void,
    private readonly direct: DirectBlocks | undefined,
  ) {}

  /** The number the next new version file is named by. */
  get nextNum(): number {
    return this.next;
  }

  /** A version file numbered `num` (registered by whoever makes it). */
  make(num: number, fileId: string, size: number, key: string): VersionFile {
    // A file of one block is written buffered: direct writes need a second descriptor, whose open
    // and close were a third of the cost of caching a small file (find | xargs cat of 10,000 files
    // of 4 KiB), and the few pages it leaves in the page cache are clean and soon reclaimed.
    const direct = size > this.blockSize ? this.direct : undefined;
    const vf: VersionFile = new VersionFile(num, this.blocksDir, fileId, size, key, this.blockSize, () => this.onIdle(vf), direct);
    return vf;
  }

  /** A version file with the next number. */
  makeNext(fileId: string, size: number, key: string): VersionFile {
    return this.make(this.next++, fileId, size, key);
  }

  /** Versions restored from the index at start, and the next number after theirs. */
  restore(nextNum: number, versions: readonly VersionFile[]): void {
    this.next = nextNum;
    for (const vf of versions) this.byFile.set(vf.fileId, [...(this.byFile.get(vf.fileId) ?? []), vf]);
  }

  versionsOf(fileId: string): readonly VersionFile[] {
    return this.byFile.get(fileId) ?? [];
  }

  /** `vf` is the only version of its file from now on. */
  keepOnly(vf: VersionFile): void {
    this.byFile.set(vf.fileId, [vf]);
  }

  remove(vf: VersionFile): void {
    const list = this.byFile.get(vf.fileId);
    if (list === undefined || !list.includes(vf)) return;
    const rest = list.filter((v) => v !== vf);
    if (rest.length > 0) this.byFile.set(vf.fileId, rest);
    else this.byFile.delete(vf.fileId);
  }

  has(fileId: string): boolean {
    return this.byFile.has(fileId);
  }

  all(): VersionFile[] {
    return [...this.byFile.values()].flat();
  }
}
