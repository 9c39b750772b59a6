// One mount of a case: the daemon's status and request counters on its control socket, commands
// run against it, and its release (or, with --keep on the last run, not).
import { performance } from 'node:perf_hooks';
import { controlRequest } from '../../src/control/client.js';
import { controlSocketPath } from '../../src/control/socket-path.js';
import type { MountStatus } from '../../src/control/status.js';
import type { Mount } from '../../test/helpers/mount.js';
import { sleep } from '../../test/helpers/wait.js';

/** A command's wall time and output. */
export interface Timed {
  seconds: number;
  stdout: string;
  stderr: string;
}

/** Where a case runs its shell commands: the work dir (BenchContext), or a mount ($M set). */
export interface Shell {
  timed(cmd: string): Promise<Timed>;
}

export type RequestCounts = MountStatus['requests'];

export interface MountHost {
  /** Runs a shell command with these variables, timed from outside (BenchContext.timed). */
  timed(cmd: string, vars: Record<string, string>): Promise<Timed>;
  /** Whether --keep asks to leave the last mounts up. */
  readonly keep: boolean;
  /** Where a mount kept up goes, to be shown at the end. */
  readonly kept: Mount[];
}

export class MountUnderTest implements Shell {
  private released = false;
  private readonly socket: string;

  constructor(
    readonly mount: Mount,
    private readonly host: MountHost,
  ) {
    this.socket = controlSocketPath(mount.mountpoint);
  }

  /** The daemon's answer on its control socket (what `girder-mount status --json` prints). */
  async status(): Promise<MountStatus> {
    const answer = await controlRequest(this.socket, 'GET', '/status', 30_000);
    if (answer.status !== 200) throw new Error(`status of ${this.mount.mountpoint}: HTTP ${answer.status}`);
    return answer.body as MountStatus;
  }

  /** Reads the daemon's request counters; the function it resolves with tells how much each has grown since. */
  async countRequests(): Promise<() => Promise<RequestCounts>> {
    const before = (await this.status()).requests;
    return async () => {
      const after = (await this.status()).requests;
      return {
        requests: after.requests - before.requests,
        errors: after.errors - before.errors,
        retries: after.retries - before.retries,
        bytesDownloaded: after.bytesDownloaded - before.bytesDownloaded,
        bytesUploaded: after.bytesUploaded - before.bytesUploaded,
      };
    };
  }

  /** Polls the status every 100 ms until no upload is pending. */
  async waitUploadsDone(timeoutMs = 3_600_000): Promise<MountStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status();
      const failed = s.failedUploads[0];
      if (failed !== undefined) throw new Error(`upload of ${failed.path} failed: ${failed.reason}, kept at ${failed.keptAt}`);
      if (s.uploads.length === 0) return s;
      if (Date.now() > deadline) throw new Error(`uploads of ${this.mount.mountpoint} still pending after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** A shell command with $M set to the mountpoint, timed from outside. */
  timed(cmd: string): Promise<Timed> {
    return this.host.timed(cmd, { M: this.mount.mountpoint });
  }

  /** Runs `cmd` (as timed()), then waits for the uploads: seconds until the command returned, and until uploaded. */
  async untilUploaded(cmd: string): Promise<{ returned: number; uploaded: number }> {
    const started = performance.now();
    const returned = (await this.timed(cmd)).seconds;
    await this.waitUploadsDone();
    return { returned, uploaded: (performance.now() - started) / 1000 };
  }

  /** SIGTERM and unmount, unless --keep and `keepIfAsked`; then it stays up until the bench ends. */
  async release(keepIfAsked = false): Promise<void> {
    if (keepIfAsked && this.host.keep) {
      this.host.kept.push(this.mount);
      return;
    }
    await this.stop();
  }

  /** SIGTERM and unmount, whatever --keep says (at cleanup). */
  async stop(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.mount.cleanup();
  }
}
