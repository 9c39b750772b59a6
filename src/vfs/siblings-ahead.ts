import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import { dirKey, type DirNode, type Node } from './nodes.js';

export interface SiblingsAheadOptions<N extends Node> {
  /** What is done ahead, for the log ("listing", "fetching"). */
  readonly what: string;
  readonly ttlMs: number;
  /**
   * Siblings acted on ahead of the walker, at most. The walker itself reaches each soon after, but
   * one that stops (^C, `find -quit`) leaves at most this many done for nobody.
   */
  readonly maxAhead: number;
  /** Siblings acted on at once, over all walks. */
  readonly inFlight: number;
  /** The siblings a walk goes through, in the directory's orders (sub-directories; files). */
  readonly walks: (node: Node) => node is N;
  /** The key a sibling is queued under. */
  readonly keyOf: (node: N) => string;
  /** Whether acting on it now would add nothing (its listing is fresh, it is not worth fetching...). */
  readonly done: (node: N) => boolean;
  readonly act: (node: N) => Promise<unknown>;
  readonly logger: Logger;
}

/** The last sibling a walk read in a directory, and when. */
interface Step {
  readonly name: string;
  readonly at: number;
}

/** A listing's walked siblings in the two orders walkers take: readdir's (find, du, cp, tar) and by name (ls -R, rsync). */
interface Orders {
  readonly entries: ReadonlyMap<string, Node>;
  readonly size: number;
  readonly sequences: ReadonlyArray<{ readonly names: readonly string[]; readonly index: ReadonlyMap<string, number> }>;
}

/** Waiting to be acted on, over all walks, as a multiple of maxAhead; the oldest are dropped first. */
const QUEUED_PER_AHEAD = 4;

/**
 * Work done ahead of a walker: a program that goes through a directory's entries one after the
 * other (`ls -lR` and `find` reading sub-directories, `cp -r` and `tar` reading files) waits for
 * each one's round trip before it asks for the next. Once it has read two siblings one after the
 * other (in readdir or name order), the siblings that follow are acted on in the background
 * (listed, fetched), a few at a time, and the walker finds them ready.
 *
 * Bounded so the server pays for nothing a walk does not read: nothing is done ahead until two
 * consecutive siblings are read (an `ls` of a folder, a `cd` into one, a `cat` of one file does
 * nothing else), at most maxAhead ahead of the walker, and only as far as the walker's pace says it
 * gets within half a TTL: a listing or a file fetched ahead and reached after its TTL would be
 * asked for again.
 */
export class SiblingsAhead<N extends Node> {
  private readonly steps = new LRUCache<string, Step>({ max: 1024 });
  private readonly orders = new LRUCache<string, Orders>({ max: 16 });
  private readonly queue: N[] = [];
  private readonly queued = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  /** Keys of the siblings being acted on. */
  private readonly active = new Set<string>();

  constructor(private readonly opts: SiblingsAheadOptions<N>) {}

  /** A walker read sibling `name` of `parent`, whose listing is `entries`. */
  entered(parent: DirNode, entries: ReadonlyMap<string, Node>, name: string, now = Date.now()): void {
    const key = dirKey(parent);
    const last = this.steps.get(key);
    this.steps.set(key, { name, at: now });
    if (last === undefined || last.name === name) return;
    const ahead = Math.min(this.opts.maxAhead, Math.floor(this.opts.ttlMs / 2 / Math.max(1, now - last.at)));
    if (ahead < 1) return;
    for (const next of this.following(key, entries, last.name, name, ahead)) this.enqueue(next);
  }

  /** Resolves once nothing is done ahead or waits to be. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** The end of the mount: what waits is dropped; resolves once nothing is in flight. */
  async stop(): Promise<void> {
    this.clear();
    await this.idle();
  }

  /** Forget every walk and drop what waits (SIGHUP, unmount). */
  clear(): void {
    this.queue.length = 0;
    this.queued.clear();
    this.steps.clear();
    this.orders.clear();
  }

  /** Up to `count` siblings after `name` in the order in which `last` came right before it. */
  private following(key: string, entries: ReadonlyMap<string, Node>, last: string, name: string, count: number): N[] {
    for (const { names, index } of this.ordersOf(key, entries).sequences) {
      const i = index.get(name);
      if (i === undefined || i === 0 || names[i - 1] !== last) continue;
      return names
        .slice(i + 1, i + 1 + count)
        .map((n) => entries.get(n))
        .filter((node): node is N => node !== undefined && this.opts.walks(node));
    }
    return [];
  }

  private ordersOf(key: string, entries: ReadonlyMap<string, Node>): Orders {
    const known = this.orders.get(key);
    // A listing edited in place (a file written or removed here) keeps its orders for a while: they
    // only guess what comes next, and sorting a large directory at each such open would cost more.
    if (known !== undefined && known.entries === entries && Math.abs(known.size - entries.size) <= Math.max(16, known.size >> 3)) return known;
    const listed = [...entries].filter(([, node]) => this.opts.walks(node)).map(([n]) => n);
    const named = [...listed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const sequence = (names: string[]) => ({ names, index: new Map(names.map((n, i) => [n, i])) });
    const orders: Orders = { entries, size: entries.size, sequences: [sequence(listed), sequence(named)] };
    this.orders.set(key, orders);
    return orders;
  }

  private enqueue(node: N): void {
    const key = this.opts.keyOf(node);
    if (this.queued.has(key) || this.active.has(key) || this.opts.done(node)) return;
    if (this.queue.length >= QUEUED_PER_AHEAD * this.opts.maxAhead) {
      const dropped = this.queue.shift();
      if (dropped !== undefined) this.queued.delete(this.opts.keyOf(dropped));
    }
    this.queue.push(node);
    this.queued.add(key);
    this.pump();
  }

  private pump(): void {
    while (this.running.size < this.opts.inFlight) {
      const node = this.queue.shift();
      if (node === undefined) return;
      const key = this.opts.keyOf(node);
      this.queued.delete(key);
      if (this.active.has(key) || this.opts.done(node)) continue;
      this.active.add(key);
      const work: Promise<void> = this.opts
        .act(node)
        .then(
          () => undefined,
          (err: unknown) => this.opts.logger.debug({ key, err: String(err) }, `${this.opts.what} ahead failed; the walker asks itself`),
        )
        .finally(() => {
          this.running.delete(work);
          this.active.delete(key);
          this.pump();
        });
      this.running.add(work);
    }
  }
}
