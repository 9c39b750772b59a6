// Starts scripts/girder-server.py (real Girder 5.0.21 on mongomock) as a child process for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface GirderAccount {
  id: string;
  login: string;
  password: string;
  apiKey: string;
}

/** Where the server keeps file bytes (scripts/girder-server.py --assetstore). */
export type AssetstoreKind = 'filesystem' | 's3';

/** The current assetstore, as the ready line describes it. */
export interface AssetstoreInfo {
  type: AssetstoreKind;
  id: string;
  name: string;
  /** S3 only: the bucket, and the local S3 server (moto) Girder talks to, e.g. http://127.0.0.1:PORT. */
  bucket?: string;
  service?: string;
  /** hashsum_download computes each new file's SHA-512 after its upload (the server turns it on for s3). */
  hashsumAutoCompute: boolean;
}

export interface GirderServerInfo {
  ready: true;
  apiUrl: string;
  port: number;
  pid: number;
  dataDir: string;
  admin: GirderAccount;
  user: GirderAccount;
  folders: {
    adminPublic: string;
    adminPrivate: string;
    userPublic: string;
    userPrivate: string;
  };
  /** Girder plugins the server loaded (always hashsum_download; mount_listing with listingPlugin). */
  plugins: string[];
  assetstore: AssetstoreInfo;
}

export interface StartGirderOptions {
  port?: number;
  dataDir?: string;
  /** How long to wait for the ready line (default 120 s). */
  timeoutMs?: number;
  /** Extra environment for the server process. */
  env?: NodeJS.ProcessEnv;
  /** Load the girder-mount-listing plugin (scripts/girder-plugin): GET /folder/{id}/listing. */
  listingPlugin?: boolean;
  /** Count database queries per collection; read them with dbQueries(). */
  countDbQueries?: boolean;
  /**
   * The current assetstore: 'filesystem', or 's3' on a local S3 server (moto) started and stopped
   * with Girder. Default: $GIRDER_TEST_ASSETSTORE, else 'filesystem'.
   */
  assetstore?: AssetstoreKind;
}

/** The assetstore tests get when they do not choose one: $GIRDER_TEST_ASSETSTORE (filesystem or s3). */
export function defaultAssetstore(): AssetstoreKind {
  const env = process.env.GIRDER_TEST_ASSETSTORE;
  if (env === undefined || env === '' || env === 'filesystem') return 'filesystem';
  if (env === 's3') return 's3';
  throw new Error(`GIRDER_TEST_ASSETSTORE must be filesystem or s3, not ${env}`);
}

export interface GirderServer {
  info: GirderServerInfo;
  process: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code (null if killed by a signal). */
  stop(): Promise<number | null>;
}

/** The repository root (this file is compiled to dist/test/helpers/). */
export function repoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const parts = here.split(path.sep);
  const distAt = parts.lastIndexOf('dist');
  return distAt > 0 ? parts.slice(0, distAt).join(path.sep) : path.resolve(here, '..', '..');
}

export function venvPython(): string {
  const venv = process.env.GIRDER_MOUNT_VENV ?? path.join(repoRoot(), '.venv');
  return path.join(venv, 'bin', 'python');
}

const STDERR_KEEP = 64 * 1024;

/** Database queries per collection so far, on a server started with countDbQueries. */
export async function dbQueries(info: GirderServerInfo): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${info.port}/testing/db-queries`);
  if (!res.ok) throw new Error(`GET /testing/db-queries -> ${res.status} (start the server with countDbQueries)`);
  return (await res.json()) as Record<string, number>;
}

export async function startGirder(opts: StartGirderOptions = {}): Promise<GirderServer> {
  // stdin stays open while this process lives: the server stops when it closes, even after a SIGKILL
  const args = [path.join(repoRoot(), 'scripts', 'girder-server.py'), '--exit-on-stdin-eof', '--port', String(opts.port ?? 0)];
  if (opts.dataDir !== undefined) args.push('--data-dir', opts.dataDir);
  if (opts.listingPlugin === true) args.push('--listing-plugin');
  if (opts.countDbQueries === true) args.push('--count-db-queries');
  args.push('--assetstore', opts.assetstore ?? defaultAssetstore());
  const child = spawn(venvPython(), args, {
    cwd: repoRoot(),
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined);

  let stderrText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderrText = (stderrText + chunk).slice(-STDERR_KEEP);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  // a test that dies without stop() must not leave a server behind
  const killOnExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));

  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  let info: GirderServerInfo;
  try {
    info = await readReadyLine(child, opts.timeoutMs ?? 120_000, () => stderrText);
  } catch (err) {
    await stop();
    throw err;
  }
  return { info, process: child, stderr: () => stderrText, stop };
}

function readReadyLine(
  child: ChildProcess,
  timeoutMs: number,
  stderr: () => string,
): Promise<GirderServerInfo> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`girder-server.py ${why}\n--- stderr ---\n${stderr()}`));
    };
    const onData = (chunk: string): void => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      const line = buffered.slice(0, newline);
      try {
        const parsed = JSON.parse(line) as GirderServerInfo;
        if (parsed.ready !== true) return fail(`printed an unexpected line: ${line}`);
        cleanup();
        resolve(parsed);
      } catch {
        fail(`printed a line that is not JSON: ${line}`);
      }
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited before it was ready (code ${code}, signal ${signal})`);
    const onError = (err: Error): void =>
      fail(`could not start: ${err.message} (run scripts/setup.sh to make .venv, or set GIRDER_MOUNT_VENV)`);
    const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}
