import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import { dirKey, isDir, type DirNode, type Node } from './nodes.js';

/**
 * Sibling directories listed ahead of a walk, at most. Each is listed by the walk itself soon after
 * (nothing more than one listing per folder per TTL), but a walk that stops (^C, `find -quit`)
 * leaves at most this many listings nobody asked for.
 */
export const MAX_AHEAD = 8;
/** Listings fetched ahead at once, over all walks, beside the ones programs wait for. */
export const AHEAD_IN_FLIGHT = 4;
/** Directories waiting to be listed ahead, over all walks; the oldest are dropped first. */
const MAX_QUEUED = 4 * MAX_AHEAD;

export interface ListingAheadOptions {
  readonly ttlMs: number;
  /** Whether the directory's listing is fresh or being fetched (listing it now would add nothing). */
  readonly fresh: (dir: DirNode) => boolean;
  /** Lists the directory (into the cache its walker reads). */
  readonly list: (dir: DirNode) => Promise<unknown>;
  readonly logger: Logger;
}

/** The last sibling a walk read in a directory, and when. */
interface Step {
  readonly name: string;
  readonly at: number;
}

/** A listing's sub-directories in the two orders walkers take: readdir's (find, du) and by name (ls -R). */
interface Orders {
  readonly entries: ReadonlyMap<string, Node>;
  readonly size: number;
  readonly sequences: ReadonlyArray<{ readonly names: readonly string[]; readonly index: ReadonlyMap<string, number> }>;
}

/**
 * Readdir-ahead for walks (`ls -lR`, `find`, `du`, `cp -r`): a walker reads a directory only after
 * it is done with the one before, so each listing's round trip would be on its critical path. Once
 * it has read two sibling directories one after the other (in readdir or name order), the siblings
 * that follow are listed in the background, a few at a time, and the walk finds them fresh.
 *
 * Bounded so the server pays for nothing a walk does not read: nothing is listed ahead until two
 * consecutive siblings are read (an `ls` of a folder or a `cd` into one of its folders lists no
 * other), at most MAX_AHEAD ahead of the walker, and only as far as the walker's pace says it gets
 * within half a TTL: a listing fetched ahead and reached after its TTL would be fetched twice.
 */
export class ListingAhead {
  private readonly steps = new LRUCache<string, Step>({ max: 1024 });
  private readonly orders = new LRUCache<string, Orders>({ max: 16 });
  private readonly queue: DirNode[] = [];
  private readonly queued = new Set<string>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly opts: ListingAheadOptions) {}

  /** A walker read directory `name` of `parent`, whose listing is `entries`. */
  entered(parent: DirNode, entries: ReadonlyMap<string, Node>, name: string, now = Date.now()): void {
    const key = dirKey(parent);
    const last = this.steps.get(key);
    this.steps.set(key, { name, at: now });
    if (last === undefined || last.name === name) return;
    const ahead = Math.min(MAX_AHEAD, Math.floor(this.opts.ttlMs / 2 / Math.max(1, now - last.at)));
    if (ahead < 1) return;
    for (const next of this.following(key, entries, last.name, name, ahead)) this.enqueue(next);
  }

  /** Resolves once nothing is listed ahead or waits to be. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Forget every walk and drop what waits (SIGHUP, unmount). */
  clear(): void {
    this.queue.length = 0;
    this.queued.clear();
    this.steps.clear();
    this.orders.clear();
  }

  /** Up to `count` directories after `name` in the order in which `last` came right before it. */
  private following(key: string, entries: ReadonlyMap<string, Node>, last: string, name: string, count: number): DirNode[] {
    for (const { names, index } of this.ordersOf(key, entries).sequences) {
      const i = index.get(name);
      if (i === undefined || i === 0 || names[i - 1] !== last) continue;
      return names.slice(i + 1, i + 1 + count).map((n) => entries.get(n)).filter((node): node is DirNode => node !== undefined && isDir(node));
    }
    return [];
  }

  private ordersOf(key: string, entries: ReadonlyMap<string, Node>): Orders {
    const known = this.orders.get(key);
    if (known !== undefined && known.entries === entries && known.size === entries.size) return known;
    const listed = [...entries].filter(([, node]) => isDir(node)).map(([n]) => n);
    const named = [...listed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const sequence = (names: string[]) => ({ names, index: new Map(names.map((n, i) => [n, i])) });
    const orders: Orders = { entries, size: entries.size, sequences: [sequence(listed), sequence(named)] };
    this.orders.set(key, orders);
    return orders;
  }

  private enqueue(dir: DirNode): void {
    const key = dirKey(dir);
    if (this.queued.has(key) || this.opts.fresh(dir)) return;
    if (this.queue.length >= MAX_QUEUED) {
      const dropped = this.queue.shift();
      if (dropped !== undefined) this.queued.delete(dirKey(dropped));
    }
    this.queue.push(dir);
    this.queued.add(key);
    this.pump();
  }

  private pump(): void {
    while (this.running.size < AHEAD_IN_FLIGHT) {
      const dir = this.queue.shift();
      if (dir === undefined) return;
      this.queued.delete(dirKey(dir));
      if (this.opts.fresh(dir)) continue;
      const listing: Promise<void> = this.opts
        .list(dir)
        .then(
          () => undefined,
          (err: unknown) => this.opts.logger.debug({ dir: dirKey(dir), err: String(err) }, 'listing ahead failed; the walker lists it itself'),
        )
        .finally(() => {
          this.running.delete(listing);
          this.pump();
        });
      this.running.add(listing);
    }
  }
}
