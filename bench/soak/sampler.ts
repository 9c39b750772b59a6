// Samples the daemon every few seconds: resident memory (VmRSS), open file descriptors, and its
// status (pending uploads, requests). Reads /proc and the control socket, never the mountpoint.
import { readdir, readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { controlRequest } from '../../src/control/client.js';
import { controlSocketPath } from '../../src/control/socket-path.js';
import type { MountStatus } from '../../src/control/status.js';
import { cpuSeconds } from '../lib/rss.js';

export interface Sample {
  /** Seconds since the soak started. */
  t: number;
  phase: 'soak' | 'drain';
  rssKiB: number;
  /** The kernel's peak RSS of the daemon so far (VmHWM): catches what falls between samples. */
  hwmKiB?: number;
  /** Anonymous memory (heap, buffers) of the RSS, without mapped files. */
  rssAnonKiB: number;
  /** The daemon's own process.memoryUsage() (status --json), bytes: V8 heap, Buffers and such. */
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
  arrayBuffers?: number;
  fds: number;
  /** CPU seconds (user + system) the daemon used since it started. */
  cpuS: number;
  /** 1-minute load average of the host (other work skews the timings, not the checks). */
  load1: number;
  pendingUploads?: number;
  requests?: number;
  requestErrors?: number;
  retries?: number;
  bytesUploaded?: number;
  bytesDownloaded?: number;
  cacheBytes?: number;
}

export class Sampler {
  readonly samples: Sample[] = [];
  phase: Sample['phase'] = 'soak';
  lastStatus: MountStatus | undefined;
  statusErrors = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly socket: string;

  constructor(
    private readonly pid: number,
    mountpoint: string,
    private readonly t0: number,
    private readonly onStatus: (s: MountStatus) => void,
  ) {
    this.socket = controlSocketPath(mountpoint);
  }

  start(intervalMs: number): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const t = (performance.now() - this.t0) / 1000;
      const text = await readFile(`/proc/${this.pid}/status`, 'utf8').catch(() => '');
      const rss = /^VmRSS:\s+(\d+) kB/m.exec(text)?.[1];
      const fds = await readdir(`/proc/${this.pid}/fd`).then((l) => l.length, () => -1);
      if (rss === undefined) return; // the daemon is gone
      const anon = /^RssAnon:\s+(\d+) kB/m.exec(text)?.[1];
      const hwm = /^VmHWM:\s+(\d+) kB/m.exec(text)?.[1];
      const cpuS = await cpuSeconds(this.pid);
      const sample: Sample = { t, phase: this.phase, rssKiB: Number(rss), rssAnonKiB: Number(anon ?? NaN), hwmKiB: Number(hwm ?? NaN), fds, cpuS, load1: Math.round(loadavg()[0]! * 100) / 100 };
      try {
        const answer = await controlRequest(this.socket, 'GET', '/status', 10_000);
        if (answer.status === 200) {
          const s = answer.body as MountStatus;
          this.lastStatus = s;
          this.onStatus(s);
          Object.assign(sample, {
            pendingUploads: s.uploads.length,
            requests: s.requests.requests,
            requestErrors: s.requests.errors,
            retries: s.requests.retries,
            bytesUploaded: s.requests.bytesUploaded,
            bytesDownloaded: s.requests.bytesDownloaded,
            cacheBytes: s.cache.bytesCached,
          });
          if (s.memory !== undefined) {
            const { heapUsed, heapTotal, external, arrayBuffers } = s.memory;
            Object.assign(sample, { heapUsed, heapTotal, external, arrayBuffers });
          }
        } else this.statusErrors++;
      } catch {
        this.statusErrors++;
      }
      this.samples.push(sample);
    } finally {
      this.busy = false;
    }
  }
}
