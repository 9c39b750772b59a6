import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import { versionKeyOf } from './cache/version-key.js';
import type { DirNode, FileNode, Node } from './nodes.js';
import type { DataReader } from './ports.js';
import { SiblingsAhead } from './siblings-ahead.js';

/**
 * A reader's next small files fetched ahead of it: at most 16 ahead, 8 at a time (measured with
 * `npm run bench -- --only many-files`: `cp -r` out of 10,000 files of 4 KiB).
 */
export const FILES_AHEAD = { maxAhead: 16, inFlight: 8 } as const;

/**
 * Read-ahead across files: a program reading a directory's files one after the other (`cp -r`,
 * `tar -c`, `sha512sum *`, `rsync`) waits for each file's download before it opens the next. Once
 * it has read two files one after the other, the small files that follow are fetched whole into
 * the cache in the background, and it finds them there. A file with some version cached already is
 * left alone: fetching another version would drop it, and its open checks which one is current.
 */
export class FilesAhead {
  private readonly ahead: SiblingsAhead<FileNode>;
  /** When the fetches of files fetched ahead, and not opened since, started, by file id. */
  private readonly fetchedAt = new LRUCache<string, number>({ max: 4 * 1024 });

  constructor(reader: DataReader, ttlMs: number, logger: Logger) {
    this.ahead = new SiblingsAhead<FileNode>({
      what: 'fetching',
      ttlMs,
      ...FILES_AHEAD,
      walks: (node: Node): node is FileNode => node.kind === 'file',
      keyOf: (node) => node.file.id,
      done: (node) => node.file.size === 0 || node.file.size > reader.wholeFileBytes || reader.holds(node.file.id),
      act: async (node) => {
        // Set before the fetch ends: a reader catching up opens the file while its bytes are on their way.
        this.fetchedAt.set(node.file.id, Date.now());
        await reader.prefetch({ id: node.file.id, size: node.file.size, versionKey: versionKeyOf(node.file) });
        if (!reader.holds(node.file.id)) this.fetchedAt.delete(node.file.id);
      },
      logger,
    });
  }

  /** A program opened file `name` of `dir` (whose listing is `entries`) for reading. */
  opened(dir: DirNode, entries: ReadonlyMap<string, Node>, name: string): void {
    this.ahead.entered(dir, entries, name);
  }

  /**
   * When the file's cached bytes were fetched ahead, if no program opened it since: they are what
   * Girder had then, so that is when the file was last checked. Asked once, at its first open.
   */
  takeFetchedAt(fileId: string): number | undefined {
    const at = this.fetchedAt.get(fileId);
    this.fetchedAt.delete(fileId);
    return at;
  }

  /** Stop: what waits is dropped; resolves once nothing is in flight. */
  stop(): Promise<void> {
    return this.ahead.stop();
  }
}
