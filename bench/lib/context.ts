// What every case shares: options, a local work dir, progress output, Girder servers and mounts
// started as child processes (through the test helpers), shell commands timed from outside.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { rest, type Rest } from '../../test/helpers/girder-rest.js';
import { startGirder, type GirderServer } from '../../test/helpers/girder-server.js';
import { startMount, type Mount } from '../../test/helpers/mount.js';
import { killRunningCommands, runCommand } from './command.js';
import { MountUnderTest, type MountHost, type Timed } from './mount-under-test.js';
import type { BenchOptions } from './options.js';
import type { Row } from './report.js';
import { waitIdle } from './rss.js';

/** One run of a case: its number (from 1), and whether it is the last (whose mounts --keep leaves up). */
export interface Run {
  run: number;
  last: boolean;
}

export interface StartedServer {
  server: GirderServer;
  admin: Rest;
  token: string;
}

export class BenchContext implements MountHost {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  /** Mounts --keep left up. */
  readonly kept: Mount[] = [];
  private readonly cleanups: Array<() => Promise<unknown>> = [];
  private readonly t0 = performance.now();

  private constructor(
    readonly opts: BenchOptions,
    /** Local work dir (on the same disk as the cache dirs): local copies, references. */
    readonly work: string,
  ) {}

  static async create(opts: BenchOptions): Promise<BenchContext> {
    const work = await mkdtemp(path.join(tmpdir(), 'girder-bench-'));
    const ctx = new BenchContext(opts, work);
    ctx.onCleanup(() => rm(work, { recursive: true, force: true }));
    return ctx;
  }

  log(message: string): void {
    const s = ((performance.now() - this.t0) / 1000).toFixed(0).padStart(5);
    process.stderr.write(`[bench ${s}s] ${message}\n`);
  }

  note(message: string): void {
    this.notes.push(message);
    this.log(`note: ${message}`);
  }

  addRow(row: Row): void {
    this.rows.push(this.opts.assetstore === 's3' ? { ...row, name: `${row.name} [S3]` } : row);
  }

  /** The runs of a case: --runs of them, or `count`. */
  *runs(count = this.opts.runs): Generator<Run> {
    for (let run = 1; run <= count; run++) yield { run, last: run === count };
  }

  get keep(): boolean {
    return this.opts.keep;
  }

  /** Whether what `run` left on the server stays there for a look (--keep, last run). */
  keeps({ last }: Run): boolean {
    return this.opts.keep && last;
  }

  onCleanup(fn: () => Promise<unknown>): void {
    this.cleanups.push(fn);
  }

  /** A Girder server of the chosen assetstore, with the listing plugin when asked. */
  async startServer(options: { listingPlugin?: boolean } = {}): Promise<StartedServer> {
    const server = await startGirder({ assetstore: this.opts.assetstore, listingPlugin: options.listingPlugin });
    this.onCleanup(() => server.stop());
    const admin = rest(server, 'admin');
    return { server, admin, token: await admin.token() };
  }

  /** Mounts `folderId` from a fresh, empty cache dir (through `apiUrl` when given, e.g. a proxy). */
  async mount(server: GirderServer, folderId: string, label: string, extra: { apiUrl?: string; args?: string[] } = {}): Promise<MountUnderTest> {
    const env: NodeJS.ProcessEnv = {};
    if (this.opts.cpuProfDir !== undefined) {
      const dir = path.resolve(this.opts.cpuProfDir, label);
      await mkdir(dir, { recursive: true });
      // Node 20 refuses --cpu-prof in NODE_OPTIONS; a preloaded module does the same job
      const preload = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'cpu-profile-preload.js');
      env.NODE_OPTIONS = `--import=${preload}`;
      env.BENCH_CPU_PROF_DIR = dir;
    }
    const info = extra.apiUrl === undefined ? server.info : { ...server.info, apiUrl: extra.apiUrl };
    const mount = await startMount({ server: info, folderId, args: extra.args ?? [], env, timeoutMs: 120_000 });
    const m = new MountUnderTest(mount, this);
    this.onCleanup(() => m.stop());
    return m;
  }

  /**
   * Runs `cmd` with bash in a child process (with $M, $W and `vars` in its environment), throws
   * unless it exits 0, and resolves with its wall time in seconds and its output.
   */
  async timed(cmd: string, vars: Record<string, string> = {}, timeoutMs = 3_600_000): Promise<Timed> {
    const started = performance.now();
    const r = await runCommand(`set -o pipefail; ${cmd}`, { W: this.work, ...vars }, timeoutMs);
    const seconds = (performance.now() - started) / 1000;
    if (r.code !== 0) {
      throw new Error(`\`${cmd}\` exited ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`);
    }
    return { seconds, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Before a timed step: write back the dirty pages earlier steps left (the source copies this
   * bench makes, the server's last upload), then wait for the server to go idle. Otherwise the
   * disk writeback and the server's hashing of a previous step land inside the next timing.
   */
  async quiesce(serverPid: number): Promise<void> {
    await this.timed('sync -f "$W"');
    await waitIdle(serverPid);
  }

  /** Mounts kept by --keep: print where they are and wait for Ctrl-C. */
  async holdKept(servers: StartedServer[]): Promise<void> {
    if (!this.opts.keep) return;
    for (const s of servers) process.stderr.write(`server ${s.server.info.apiUrl}  Girder-Token: ${s.token}\n`);
    for (const m of this.kept) process.stderr.write(`mount ${m.mountpoint} (daemon pid ${m.pid}, cache ${m.cacheDir})\n`);
    process.stderr.write(`work dir ${this.work}\n--keep: press Ctrl-C to stop everything\n`);
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }

  async cleanup(): Promise<void> {
    killRunningCommands(); // nothing may keep a mount busy while it is stopped
    for (const fn of this.cleanups.reverse()) {
      await fn().catch((err: unknown) => this.log(`cleanup: ${err instanceof Error ? err.message : String(err)}`));
    }
    this.cleanups.length = 0;
  }
}

/** dd's summary line on stderr: the byte count it copied. */
export function ddBytes(stderr: string): number {
  const m = /^(\d+) bytes/m.exec(stderr);
  if (m === null) throw new Error(`dd printed no byte count: ${stderr}`);
  return Number(m[1]);
}
