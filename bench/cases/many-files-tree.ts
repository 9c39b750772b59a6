// What the many-files cases share: the tree, the mounts' TTL, and rows that fill up as runs end.
import type { BenchContext } from '../lib/context.js';
import type { MountUnderTest } from '../lib/mount-under-test.js';
import { Measured } from '../lib/measured.js';
import type { Watched } from '../lib/proxied-server.js';
import type { Row, Target } from '../lib/report.js';
import { RequestTally } from '../lib/requests.js';
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
 * One step of ours (Measured: its seconds, the daemon's RSS and CPU) against one or more references,
 * with the requests the mount made per folder and per file. The rows go into the table at once and
 * fill up as runs end, so an interrupted bench still reports them.
 */
export class MountRows extends Measured {
  readonly tally: RequestTally;
  private readonly rows: Array<{ row: Row; target?: Target }> = [];

  constructor(
    private readonly ctx: BenchContext,
    tree: ManyFilesTree,
    private readonly name: string,
  ) {
    super();
    this.tally = new RequestTally(tree.folders, tree.items);
  }

  /** Adds a row of this step against `ref` (samples the caller fills). */
  against(refName: string, ref: number[], target?: Target): this {
    const row = this.row({ name: this.name, unit: 's', refName, ref, target });
    this.rows.push({ row, target });
    this.ctx.addRow(row);
    return this;
  }

  /** What to watch in ProxiedServer.step(). */
  watching(mount: MountUnderTest): Watched {
    return { measured: this, mount };
  }

  /** Copies the daemon's usage and the requests into the rows; `refNames` (in order) replace theirs. */
  update(...refNames: string[]): void {
    this.rows.forEach(({ row, target }, i) => {
      Object.assign(row, this.row({ name: this.name, unit: 's', refName: refNames[i] ?? row.refName, ref: row.ref, target }), this.tally.fields());
    });
  }
}
