// Peak resident memory (and CPU time) of a process over a stretch of time: the kernel's high-water mark (VmHWM,
// reset at the start through /proc/<pid>/clear_refs when allowed) and VmRSS sampled every 100 ms.
import { readFile, writeFile } from 'node:fs/promises';
import { MiB } from './stats.js';

const SAMPLE_MS = 100;

async function statusField(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1];
  return kib === undefined ? undefined : Number(kib) * 1024;
}

/** User + system CPU seconds the process has used so far (0 once it is gone). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the name
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
}

export class RssWatch {
  private sampledPeak = 0;
  private cpuAtStart = 0;
  /** CPU seconds the process used between start() and stop(). */
  cpuS = 0;
  private hwmReset = false;
  private lastHwm: number | undefined;
  private readonly timer: NodeJS.Timeout;

  private constructor(readonly pid: number) {
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  /** Starts watching `pid`; resets its VmHWM to its current RSS when /proc lets us. */
  static async start(pid: number): Promise<RssWatch> {
    const watch = new RssWatch(pid);
    // "5" resets the peak RSS (Documentation/filesystems/proc.rst); needs ownership or root
    watch.hwmReset = await writeFile(`/proc/${pid}/clear_refs`, '5').then(
      () => true,
      () => false,
    );
    watch.cpuAtStart = await cpuSeconds(pid);
    await watch.sample();
    return watch;
  }

  private async sample(): Promise<void> {
    const rss = await statusField(this.pid, 'VmRSS');
    if (rss !== undefined) this.sampledPeak = Math.max(this.sampledPeak, rss);
    if (this.hwmReset) this.lastHwm = (await statusField(this.pid, 'VmHWM')) ?? this.lastHwm;
  }

  /** Peak bytes so far: the high-water mark when it was reset at start, else the sampled maximum. */
  async peak(): Promise<number> {
    await this.sample();
    return Math.max(this.sampledPeak, this.hwmReset ? (this.lastHwm ?? 0) : 0);
  }

  /** Stops sampling; resolves with the peak in MiB. */
  async stop(): Promise<number> {
    const peak = await this.peak();
    clearInterval(this.timer);
    this.cpuS = Math.max(0, (await cpuSeconds(this.pid)) - this.cpuAtStart);
    return peak / MiB;
  }
}

/** Peak RSS (max) and CPU seconds (one per run) of the daemons of one table row. */
export class DaemonUsage {
  peakMiB = 0;
  readonly cpuS: number[] = [];

  /** Stops `watch` and adds what it saw. */
  async add(watch: RssWatch): Promise<void> {
    this.peakMiB = Math.max(this.peakMiB, await watch.stop());
    this.cpuS.push(watch.cpuS);
  }

  /** The Row fields. */
  fields(): { rssMiB: number; daemonCpuS: number[] } {
    return { rssMiB: this.peakMiB, daemonCpuS: this.cpuS };
  }
}

/**
 * Wait until `pid` is idle (under 5% of a CPU over half a second, or 60 s have passed), so a
 * timing does not include the server still digesting the previous step (Girder hashes uploads).
 */
export async function waitIdle(pid: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = await cpuSeconds(pid);
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = await cpuSeconds(pid);
    if (now - last < 0.025) return;
    last = now;
  }
}
