// What the many-files cases share: the tree, the mounts' TTL, and rows that fill up as runs end.
import type { BenchContext } from '../lib/context.js';
import type { MountUnderTest } from '../lib/mount-under-test.js';
import type { Watched } from '../lib/proxied-server.js';
import type { Row, Target } from '../lib/report.js';
import { RequestTally } from '../lib/requests.js';
import { DaemonUsage } from '../lib/rss.js';
import type { TreeLayout } from '../lib/seed.js';

export const FILE_SIZE = 4096;
/** Requests curl keeps in flight, and cat processes xargs runs at once. */
export const PARALLEL = 16;
/** The mounts' --attr-ttl, seconds. */
export const TTL_S = 5;
export const MOUNT_ARGS = ['--attr-ttl', String(TTL_S)];

/** The tree on local disk: the source of every upload and what every download must equal. */
export interface ManyFilesTree {
  local: string;
  layout: TreeLayout;
  items: number;
  /** Folders, the tree's root included. */
  folders: number;
  /** e.g. "1000 x 4 KiB in 10 folders". */
  what: string;
}

/**
 * Rows of one step of ours against one or more references: our samples, the daemon's RSS and CPU
 * and the requests the mount made are the same in each. The rows go into the table at once and
 * fill up as runs end, so an interrupted bench still reports them.
 */
export class MountRows {
  readonly ours: number[] = [];
  readonly tally: RequestTally;
  readonly usage = new DaemonUsage();
  private readonly rows: Row[] = [];

  constructor(
    private readonly ctx: BenchContext,
    tree: ManyFilesTree,
    private readonly name: string,
  ) {
    this.tally = new RequestTally(tree.folders, tree.items);
  }

  /** Adds a row of this step against `ref` (samples the caller fills). */
  against(refName: string, ref: number[], target?: Target): this {
    const row: Row = { name: this.name, unit: 's', ours: this.ours, refName, ref, ...(target === undefined ? {} : { target }) };
    this.rows.push(row);
    this.ctx.addRow(row);
    return this;
  }

  /** What to watch in ProxiedServer.step(). */
  watch(mount: MountUnderTest): Watched {
    return { usage: this.usage, mount };
  }

  /** Copies the daemon's usage and the requests into the rows; `refNames` (in order) replace theirs. */
  update(...refNames: string[]): void {
    this.rows.forEach((row, i) => Object.assign(row, this.usage.fields(), this.tally.fields(), refNames[i] === undefined ? {} : { refName: refNames[i] }));
  }
}
