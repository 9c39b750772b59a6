// Our side of a table row, gathered run after run: the samples of one measured step, the peak RSS
// and CPU time of the process that did the work (the daemon) over that step, and the Girder
// requests it made for it. A case keeps one per row and turns it into the row at the end.
import type { Row, Target } from './report.js';
import { DaemonUsage, RssWatch } from './rss.js';
import { median } from './stats.js';

/** What a row takes besides our side: its name and unit, and the reference measured in the same run. */
export interface RowFields {
  name: string;
  unit: string;
  refName: string;
  ref: number[];
  target?: Target;
  stat?: Row['stat'];
}

export class Measured {
  /** One per run (or per read, for latencies). */
  readonly samples: number[] = [];
  /** Requests the daemon made for the step, one count per run (when the case counts them). */
  readonly requests: number[] = [];
  private readonly usage = new DaemonUsage();

  /** Runs `step` while watching process `pid` (peak RSS, CPU time); resolves with what `step` gave. */
  async watch<T>(pid: number, step: () => Promise<T>): Promise<T> {
    const watch = await RssWatch.start(pid);
    try {
      return await step();
    } finally {
      await this.usage.add(watch);
    }
  }

  /**
   * The row of these samples against `fields.ref`: with the process's peak RSS and CPU time once a
   * step was watched, and the median request count when any were counted.
   */
  row(fields: RowFields, withRequests = this.requests.length > 0): Row {
    const usage = this.usage.cpuS.length > 0 ? this.usage.fields() : {};
    return {
      name: fields.name,
      unit: fields.unit,
      stat: fields.stat,
      ours: this.samples,
      refName: fields.refName,
      ref: fields.ref,
      target: fields.target,
      ...usage,
      requests: withRequests ? median(this.requests) : undefined,
    };
  }
}
