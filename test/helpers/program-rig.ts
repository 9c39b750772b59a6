// A rig for running real programs (tar, git, sqlite3, rsync, fio ...) on a mount and checking what
// they left: one Girder server and a counting proxy for the whole file; per program a folder, a
// mount with an empty cache, the same commands timed on the mount and on local disk, and a remount
// with another empty cache dir to check the result through the mount and over REST.
//
// Every command has a time bound. A command still running at its bound is killed; one that does not
// die (a process asleep in the kernel on a FUSE request that is never answered cannot be killed)
// is freed by killing the daemon and detaching the mount, so a hung mount fails the test instead
// of hanging it.
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CountingProxy } from './counting-proxy.js';
import { rest, type RawFolder, type Rest } from './girder-rest.js';
import { startGirder, type GirderServer } from './girder-server.js';
import { mountStatus, waitUploadsDone } from './mount-status.js';
import { forceUnmount, run, startMount, type Mount, type RunResult } from './mount.js';
import { remoteTree, type TreeEntry } from './remote-tree.js';
import { sleep } from './wait.js';

/** How long a killed command may take to go away before the daemon is killed to free it. */
const STUCK_GRACE_MS = 10_000;

export interface Teardown {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

export interface TimingRow {
  program: string;
  step: string;
  /** Seconds on the mount (undefined: not run there). */
  mount: number | undefined;
  /** Seconds of the same step on local disk (undefined: no local run). */
  local: number | undefined;
  /** Requests the mount sent during the step, by route. */
  requests: Map<string, number>;
}

export interface BoundedResult extends RunResult {
  seconds: number;
  /** The command did not go away after SIGKILL: it was freed by killing the daemon. */
  stuck: boolean;
}

/** A step that failed: its message holds the command, its output and the daemon's log. */
export class StepFailed extends Error {
  override name = 'StepFailed';
}

export class ProgramRig {
  readonly rows: TimingRow[] = [];

  private constructor(
    readonly server: GirderServer,
    readonly admin: Rest,
    readonly proxy: CountingProxy,
    readonly root: RawFolder,
    /** Local work dir of the whole file (each program has a sub-folder). */
    readonly work: string,
  ) {}

  static async start(t: Teardown, name: string): Promise<ProgramRig> {
    const server = await startGirder();
    t.teardown(() => server.stop());
    const admin = rest(server, 'admin');
    const root = await admin.createFolder(server.info.folders.adminPrivate, `${name}-${process.pid}`);
    const proxy = await CountingProxy.start({ target: server.info.apiUrl });
    t.teardown(() => proxy.close());
    const work = await mkdtemp(path.join(tmpdir(), `${name}-work-`));
    t.teardown(() => rm(work, { recursive: true, force: true }));
    return new ProgramRig(server, admin, proxy, root, work);
  }

  /** A folder for `program` on the server, a local work dir, and a mount with an empty cache. */
  async session(t: Teardown, program: string, mountArgs: string[] = []): Promise<ProgramSession> {
    const folder = await this.admin.createFolder(this.root._id, program);
    const work = path.join(this.work, program);
    await mkdir(path.join(work, 'local'), { recursive: true });
    const session = new ProgramSession(this, program, folder, work, mountArgs);
    t.teardown(() => session.cleanup());
    // keep the server small: on mongomock every request scans the whole collection
    t.teardown(() => this.admin.delete(`/folder/${folder._id}`).catch(() => undefined));
    await session.mountFresh();
    return session;
  }

  /** The timings so far (of one program, or all), as a table. */
  table(program?: string): string {
    const secs = (s: number | undefined): string => (s === undefined ? '-' : s.toFixed(2));
    const lines = ['program | step | mount s | local s | requests by route', '--- | --- | --- | --- | ---'];
    for (const r of this.rows.filter((row) => program === undefined || row.program === program)) {
      const reqs = [...r.requests.entries()].sort((a, b) => b[1] - a[1]).map(([p, n]) => `${p} ${n}`).join(', ');
      lines.push(`${r.program} | ${r.step} | ${secs(r.mount)} | ${secs(r.local)} | ${reqs || '0'}`);
    }
    return lines.join('\n');
  }
}

export interface StepOptions {
  /** Time bound of the command on the mount (default 60 s). */
  timeoutMs?: number;
  /** Also run it on local disk, with $D the local copy, for the timing table (default true). */
  local?: boolean;
}

/**
 * One program's run: commands get $M (the mountpoint), $P (the program's folder on the mount), $W
 * (its local work dir), $L (the local-disk copy, $W/local), and $D: $P on the mount, $L locally.
 */
export class ProgramSession {
  mount: Mount | undefined;
  /** Every daemon of this session, the current one last. */
  private readonly mounts: Mount[] = [];
  private statusNote = '';

  constructor(
    readonly rig: ProgramRig,
    readonly program: string,
    readonly folder: RawFolder,
    readonly work: string,
    private readonly mountArgs: string[],
  ) {}

  get M(): string {
    if (this.mount === undefined) throw new StepFailed(`${this.program}: no mount (an earlier step killed it)`);
    return this.mount.mountpoint;
  }

  get P(): string {
    return path.join(this.M, this.program);
  }

  get L(): string {
    return path.join(this.work, 'local');
  }

  private vars(d: string): NodeJS.ProcessEnv {
    return { M: this.M, P: this.P, W: this.work, L: this.L, D: d };
  }

  /** A mount of the rig's root through the proxy, with a new empty cache dir. */
  async mountFresh(): Promise<Mount> {
    const info = { ...this.rig.server.info, apiUrl: this.rig.proxy.apiUrl };
    this.mount = await startMount({ server: info, folderId: this.rig.root._id, args: this.mountArgs });
    this.mounts.push(this.mount);
    return this.mount;
  }

  /**
   * Runs `cmd` (bash, with pipefail) within `timeoutMs`. A command that outlives SIGKILL is stuck
   * on the mount: the daemon is killed and the mount detached, which frees it, and the session has
   * no mount from then on.
   */
  async bounded(cmd: string, timeoutMs: number, d?: string): Promise<BoundedResult> {
    const started = performance.now();
    const env = this.mount === undefined ? { W: this.work, L: this.L, D: d ?? this.L } : this.vars(d ?? this.P);
    const running = run(`set -o pipefail; ${cmd}`, { env, timeoutMs });
    const late = Symbol('late');
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([running, new Promise<typeof late>((resolve) => (timer = setTimeout(() => resolve(late), timeoutMs + STUCK_GRACE_MS)))]);
    clearTimeout(timer);
    if (first !== late) return { ...first, seconds: (performance.now() - started) / 1000, stuck: false };
    await this.killMount('a command stayed stuck after SIGKILL');
    const freed = await Promise.race([running, sleep(30_000).then(() => undefined)]);
    if (freed === undefined) throw new StepFailed(`\`${cmd}\` is still stuck 30 s after the daemon was killed and the mount detached`);
    return { ...freed, timedOut: true, seconds: (performance.now() - started) / 1000, stuck: true };
  }

  /** Runs `cmd` with $D on local disk, then on the mount; throws unless both exit 0 in time; adds a timing row. */
  async step(step: string, cmd: string, opts: StepOptions = {}): Promise<BoundedResult> {
    let local: BoundedResult | undefined;
    if (opts.local !== false) {
      local = await this.bounded(cmd, 300_000, this.L);
      if (local.code !== 0) throw new StepFailed(`${this.program}/${step} on local disk: ${describeRun(cmd, local)}`);
    }
    const mark = this.rig.proxy.mark();
    const started = performance.now();
    try {
      const r = await this.onMount(step, cmd, opts.timeoutMs ?? 60_000);
      this.rig.rows.push({ program: this.program, step, mount: r.seconds, local: local?.seconds, requests: this.rig.proxy.counts(mark) });
      return r;
    } catch (err) {
      const seconds = (performance.now() - started) / 1000;
      this.rig.rows.push({ program: this.program, step: `${step} (FAILED)`, mount: seconds, local: local?.seconds, requests: this.rig.proxy.counts(mark) });
      throw err;
    }
  }

  /** Waits until the mount has no pending upload. */
  async uploadsDone(timeoutMs = 60_000): Promise<void> {
    try {
      await waitUploadsDone(this.M, timeoutMs);
    } catch (err) {
      throw new StepFailed(`${this.program}: uploads not done within ${timeoutMs / 1000} s: ${(err as Error).message}`);
    }
  }

  /** Runs `cmd` with $D = $P, once, on the mount; throws (with the daemon's log) unless it exits 0 in time. */
  async onMount(step: string, cmd: string, timeoutMs = 60_000): Promise<BoundedResult> {
    const mount = this.mount;
    const logsBefore = mount?.logs().length ?? 0;
    this.statusNote = '';
    let noting: Promise<void> | undefined;
    const statusAtTimeout = setTimeout(() => (noting = this.noteStatus()), Math.max(0, timeoutMs - 3_000));
    let r: BoundedResult;
    try {
      r = await this.bounded(cmd, timeoutMs, this.P);
    } finally {
      clearTimeout(statusAtTimeout);
    }
    if (r.code !== 0 || r.timedOut) {
      if (noting !== undefined) await Promise.race([noting, sleep(10_000)]);
      const fresh = mount?.logs().slice(logsBefore) ?? '';
      throw new StepFailed(`${this.program}/${step} on the mount: ${describeRun(cmd, r)}\n${this.statusNote}--- daemon log of the step (tail) ---\n${tail(fresh, 25)}`);
    }
    return r;
  }

  /** Takes the daemon's status and who waits on FUSE shortly before a step's bound, for the failure message. */
  private async noteStatus(): Promise<void> {
    if (this.mount === undefined) return;
    const waiting = await processesWaitingOnFuse(this.mount.mountpoint);
    try {
      const s = await mountStatus(this.mount.mountpoint);
      this.statusNote = `status near the bound: ${s.uploads.length} uploads pending, ${s.requests.requests} requests, ${s.requests.errors} errors\n`;
    } catch (err) {
      this.statusNote = `status near the bound: ${(err as Error).message}\n`;
    }
    if (waiting !== '') this.statusNote += `processes of this mount, or asleep on a FUSE request of any mount, near the bound:\n${waiting}\n`;
  }

  /**
   * Waits (at most `drainMs`) for the mount's uploads, stops it (SIGTERM, as a user would unmount),
   * checks it exited cleanly, and mounts again with a new empty cache dir: from then on everything
   * read comes from the server.
   */
  async remount(drainMs = 60_000): Promise<void> {
    const mount = this.mount;
    if (mount === undefined) throw new StepFailed(`${this.program}: no mount to remount`);
    const mark = this.rig.proxy.mark();
    const started = performance.now();
    try {
      await waitUploadsDone(mount.mountpoint, drainMs);
    } catch (err) {
      const s = await mountStatus(mount.mountpoint).catch(() => undefined);
      await this.killMount('uploads did not finish');
      throw new StepFailed(`${this.program}: uploads not done ${drainMs / 1000} s after the program ended (${s?.uploads.length ?? '?'} still pending): ${(err as Error).message}`);
    }
    const drained = (performance.now() - started) / 1000;
    this.rig.rows.push({ program: this.program, step: 'uploads done (after the program)', mount: drained, local: undefined, requests: this.rig.proxy.counts(mark) });
    const code = await mount.stop(60_000);
    this.mount = undefined;
    const shutdown = mount.logs().split('\n').filter((l) => /unmount failed|still pending|could not refresh/.test(l));
    if (code !== 0 || shutdown.length > 0) {
      throw new StepFailed(`${this.program}: the daemon did not stop cleanly (exit ${code}):\n${shutdown.join('\n')}\n--- daemon log (tail) ---\n${tail(mount.logs(), 30)}`);
    }
    await this.mountFresh();
  }

  /** Files and folders under `rel` (relative to $P), read through the mount: sizes and SHA-512s. */
  async mountTree(rel = '.'): Promise<Record<string, TreeEntry>> {
    const at = `cd "$P"/${JSON.stringify(rel)}`;
    const dirs = await this.onMount('list folders', `${at} && find . -mindepth 1 -type d -printf '%P\\n'`, 120_000);
    const odd = await this.onMount('list others', `${at} && find . -mindepth 1 ! -type d ! -type f -printf '%y %P\\n'`, 120_000);
    if (odd.stdout !== '') throw new StepFailed(`${this.program}: entries that are neither files nor folders:\n${odd.stdout}`);
    const sizes = await this.onMount('list files', `${at} && find . -type f -printf '%s\\t%P\\n'`, 120_000);
    const sums = await this.onMount('hash files', `${at} && find . -type f -print0 | xargs -0 -r sha512sum --`, 120_000);
    const out: Record<string, TreeEntry> = {};
    for (const d of lines(dirs.stdout)) out[d] = 'dir';
    const sha = new Map<string, string>();
    for (const line of lines(sums.stdout)) {
      const m = /^([0-9a-f]{128}) {2}\.\/(.*)$/.exec(line);
      if (m === null) throw new StepFailed(`${this.program}: sha512sum printed ${line}`);
      sha.set(m[2] as string, m[1] as string);
    }
    for (const line of lines(sizes.stdout)) {
      const tab = line.indexOf('\t');
      const name = line.slice(tab + 1);
      out[name] = { size: Number(line.slice(0, tab)), sha512: sha.get(name) ?? '(not hashed)' };
    }
    return out;
  }

  /** The same listing over REST: what Girder holds under `rel` of the program's folder. */
  async serverTree(rel = '.'): Promise<Record<string, TreeEntry>> {
    let folderId = this.folder._id;
    for (const part of rel.split('/').filter((p) => p !== '.' && p !== '')) {
      const found = (await this.rig.admin.listFolders(folderId)).find((f) => f.name === part);
      if (found === undefined) throw new StepFailed(`${this.program}: no folder ${rel} on the server`);
      folderId = found._id;
    }
    return remoteTree(this.rig.admin, folderId);
  }

  /** Stops every daemon of this session and removes their mounts and caches. */
  async cleanup(): Promise<void> {
    for (const m of this.mounts) await m.cleanup();
    this.mount = undefined;
  }

  /** SIGKILL the daemon and detach its mount: frees every process waiting on it. */
  private async killMount(why: string): Promise<void> {
    const mount = this.mount;
    if (mount === undefined) return;
    this.mount = undefined;
    this.killed.push(why);
    await mount.kill9();
    await forceUnmount(mount.mountpoint);
  }

  private readonly killed: string[] = [];

  /** Log lines of level `min` and above (40 warn, 50 error) of every daemon of this session. */
  logLines(min: number): string[] {
    return this.mounts.flatMap((m) => m.logs().split('\n')).filter((l) => Number(/"level":(\d+)/.exec(l)?.[1] ?? 0) >= min);
  }

  /** Warnings and errors of the daemons so far, counted by message, and why the test killed one. */
  warningSummary(): string {
    const counts = new Map<string, number>();
    for (const line of this.logLines(40)) {
      const key = `level ${/"level":(\d+)/.exec(line)?.[1]}: ${/"msg":"([^"]*)"/.exec(line)?.[1] ?? line}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const out = [...counts.entries()].map(([k, n]) => `${n} x ${k}`);
    return [...out, ...this.killed.map((why) => `the test killed a daemon: ${why}`)].join('\n');
  }
}

/**
 * Processes asleep in the kernel on a FUSE request, or with `mountpoint` on their command line:
 * pid, wait channel, command and kernel stack.
 */
export async function processesWaitingOnFuse(mountpoint?: string): Promise<string> {
  const found: string[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const wchan = await readFile(`/proc/${pid}/wchan`, 'utf8').catch(() => '');
    const stack = await readFile(`/proc/${pid}/stack`, 'utf8').catch(() => '');
    const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim().slice(0, 160);
    const ours = mountpoint !== undefined && cmd.includes(mountpoint) && !/cli\.js|girder-mount/.test(cmd);
    if (!ours && !/fuse|request_wait_answer/.test(`${wchan}\n${stack}`)) continue;
    const frames = stack.split('\n').map((l) => l.replace(/^\[<[0-9a-f]+>\] /, '').replace(/\+0x[0-9a-f/x]+$/, '')).filter((l) => l !== '').slice(0, 6);
    found.push(`  pid ${pid} (${cmd}) waits in ${wchan || '?'}: ${frames.join(' <- ')}`);
  }
  return found.join('\n');
}

export function describeRun(cmd: string, r: BoundedResult): string {
  const how = r.stuck
    ? `stuck: still running ${STUCK_GRACE_MS / 1000} s after SIGKILL at its time bound, freed by killing the daemon`
    : r.timedOut
      ? `timed out after ${r.seconds.toFixed(1)} s`
      : `exited ${r.code}${r.signal ? ` (signal ${r.signal})` : ''} after ${r.seconds.toFixed(1)} s`;
  return `\`${cmd}\` ${how}\n--- stdout (tail) ---\n${tail(r.stdout, 60)}\n--- stderr (tail) ---\n${tail(r.stderr, 30)}`;
}

export function tail(text: string, n: number): string {
  return text.split('\n').slice(-n - 1).join('\n');
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}
