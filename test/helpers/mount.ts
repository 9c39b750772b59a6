// Runs the built CLI (dist/src/cli.js) as a child process that mounts a Girder folder, and runs
// shell commands against the mount. Nothing here touches the mountpoint synchronously: the daemon
// is another process, but a blocked sync call would still freeze this test's event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, rmdir, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GirderServer, GirderServerInfo } from './girder-server.js';
import { repoRoot } from './girder-server.js';
import { WaitAborted, waitFor } from './wait.js';

export interface StartMountOptions {
  server: GirderServer | GirderServerInfo;
  folderId: string;
  /** Extra CLI arguments after `<folderId> <mountpoint> --api-url <url>`. */
  args?: string[];
  /** Extra environment (GIRDER_API_KEY is set from `user`; inherited GIRDER_MOUNT_* variables are dropped). */
  env?: NodeJS.ProcessEnv;
  /** Reuse a cache dir (e.g. to restart after kill9()); default: a fresh temp dir. */
  cacheDir?: string;
  /** How the cache dir is passed to the CLI (default `--cache-dir`); null: not passed. */
  cacheDirFlag?: string | null;
  /** Reuse a mountpoint (e.g. to restart after kill9()); default: a fresh temp dir. */
  mountpoint?: string;
  /** Whose API key to mount with (default 'admin'). */
  user?: 'admin' | 'user';
  /** How long to wait for the mount to answer (default 60 s). */
  timeoutMs?: number;
}

export interface Mount {
  mountpoint: string;
  cacheDir: string;
  pid: number;
  process: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  logs(): string;
  stdout(): string;
  stderr(): string;
  /** SIGTERM, wait for the exit (SIGKILL after `timeoutMs`, default 120 s), then make sure nothing is mounted. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL: leaves a dead mount behind on purpose (cleanup() or a restart clears it). */
  kill9(): Promise<void>;
  /** Resolves with the exit code (null when killed by a signal). */
  waitExit(): Promise<number | null>;
  /** Stops the daemon if running, unmounts, removes the temp dirs this helper made. For t.teardown. */
  cleanup(): Promise<void>;
}

const LOG_KEEP = 1024 * 1024;

/**
 * This process's environment without GIRDER_MOUNT_* (harness settings such as GIRDER_MOUNT_VENV):
 * the CLI reads every GIRDER_MOUNT_* variable as an option and rejects unknown ones.
 * Tests that want such a variable pass it in `env`.
 */
function inheritedEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GIRDER_MOUNT_')));
}

/** The CLI to run: env GIRDER_MOUNT_CLI, else the build in this checkout. */
export function cliPath(): string {
  return process.env.GIRDER_MOUNT_CLI ?? path.join(repoRoot(), 'dist', 'src', 'cli.js');
}

export async function startMount(opts: StartMountOptions): Promise<Mount> {
  const info = 'info' in opts.server ? opts.server.info : opts.server;
  const role = opts.user ?? 'admin';
  const ownMountpoint = opts.mountpoint === undefined;
  const ownCacheDir = opts.cacheDir === undefined;
  const mountpoint = opts.mountpoint ?? (await mkdtemp(path.join(tmpdir(), 'girder-mnt-')));
  const cacheDir = opts.cacheDir ?? (await mkdtemp(path.join(tmpdir(), 'girder-cache-')));

  const args = [cliPath(), opts.folderId, mountpoint, '--api-url', info.apiUrl];
  const cacheDirFlag = opts.cacheDirFlag === undefined ? '--cache-dir' : opts.cacheDirFlag;
  if (cacheDirFlag !== null) args.push(cacheDirFlag, cacheDir);
  args.push(...(opts.args ?? []));
  const child = spawn(process.execPath, args, {
    cwd: tmpdir(),
    env: { ...inheritedEnv(), GIRDER_API_KEY: info[role].apiKey, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let out = '';
  let err = '';
  let all = '';
  const keep = (s: string): string => (s.length > LOG_KEEP ? s.slice(-LOG_KEEP) : s);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out = keep(out + chunk);
    all = keep(all + chunk);
  });
  child.stderr.on('data', (chunk: string) => {
    err = keep(err + chunk);
    all = keep(all + chunk);
  });
  let spawnError: Error | undefined;
  const exitPromise = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (e) => {
      spawnError = e;
      resolve(null);
    });
  });
  const running = (): boolean => !spawnError && child.exitCode === null && child.signalCode === null;
  // a test that dies without cleanup must not leave a daemon behind
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exitPromise.then(() => process.off('exit', killOnExit));

  const stop = async (timeoutMs = 120_000): Promise<number | null> => {
    if (running()) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        await exitPromise;
      } finally {
        clearTimeout(timer);
      }
    }
    const code = await exitPromise;
    await forceUnmount(mountpoint);
    return code;
  };

  const mount: Mount = {
    mountpoint,
    cacheDir,
    pid: child.pid ?? -1,
    process: child,
    logs: () => all,
    stdout: () => out,
    stderr: () => err,
    stop,
    async kill9() {
      if (running()) child.kill('SIGKILL');
      await exitPromise;
    },
    waitExit: () => exitPromise,
    async cleanup() {
      await stop(30_000);
      if (ownMountpoint) await rmdir(mountpoint).catch(() => undefined); // rmdir only: never recurse into a mount
      if (ownCacheDir) await rm(cacheDir, { recursive: true, force: true });
    },
  };

  try {
    await waitFor(
      async () => {
        if (spawnError) throw new WaitAborted(`could not start the daemon: ${spawnError.message}`);
        if (!running()) throw new WaitAborted(`the daemon exited with code ${child.exitCode} (signal ${child.signalCode})`);
        if (!(await isMounted(mountpoint))) return false;
        // A dead or still-starting FUSE mount fails here. statfs, not stat: the kernel answers stat
        // of a mount killed a moment ago from its attribute cache, so a restart would look ready.
        await statfs(mountpoint);
        return true;
      },
      { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 100, what: `a mount at ${mountpoint}` },
    );
  } catch (e) {
    await mount.cleanup();
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`startMount failed: ${why}\n--- daemon output ---\n${all}`);
  }
  return mount;
}

/** /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export interface MountEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string;
}

export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const [device = '', mnt = '', fstype = '', options = ''] = line.split(' ');
      return { device: unescapeMountField(device), mountpoint: unescapeMountField(mnt), fstype, options };
    });
}

/** Whether /proc/mounts lists `target` (dead FUSE mounts included, unlike `mountpoint -q`). */
export async function isMounted(target: string): Promise<boolean> {
  const wanted = path.resolve(target);
  return (await readMounts()).some((m) => m.mountpoint === wanted);
}

/** `fusermount -uz` while /proc/mounts lists the path (lazy: works on dead and busy mounts). */
export async function forceUnmount(target: string): Promise<void> {
  for (let attempt = 0; attempt < 5 && (await isMounted(target)); attempt++) {
    await run(`fusermount -uz ${shellQuote(path.resolve(target))} || umount -l ${shellQuote(path.resolve(target))}`, {
      timeoutMs: 30_000,
    });
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RunOptions {
  /** Working directory; default the system temp dir (never the mount: the command does its own cd). */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command (its whole process group) after this long (default 120 s). */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string | Buffer;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `bash -c cmd` asynchronously and collects its output; never rejects for a non-zero exit. */
export async function run(cmd: string, opts: RunOptions = {}): Promise<RunResult> {
  const child = spawn('bash', ['-c', cmd], {
    cwd: opts.cwd ?? tmpdir(),
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // own process group, so a timeout kills everything the command started
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (stdout += chunk));
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  child.stdin.on('error', () => undefined); // the command may not read its input
  child.stdin.end(opts.input ?? '');

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, opts.timeoutMs ?? 120_000);
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    return { code, signal, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
}
