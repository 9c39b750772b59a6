// Every access to the mount goes through a child process (bash -c), so a stuck FUSE call can never
// block the soak's own event loop. Each child gets its own process group; killAll() ends them all.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';

export interface ShellResult {
  code: number | null;
  stdout: string;
  /** The last 4 KiB. */
  stderr: string;
  timedOut: boolean;
  ms: number;
}

const KEEP = 4096;
const live = new Set<number>();

/** Runs `bash -c 'set -o pipefail; cmd'` with `env` added; never rejects for a non-zero exit. */
export async function sh(cmd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ShellResult> {
  const started = performance.now();
  const child = spawn('bash', ['-c', `set -o pipefail; ${cmd}`], {
    cwd: tmpdir(),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid;
  if (pid !== undefined) live.add(pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c: string) => (stdout = (stdout + c).slice(-1024 * 1024)));
  child.stderr.on('data', (c: string) => (stderr = (stderr + c).slice(-KEEP)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(pid);
  }, timeoutMs);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr, timedOut, ms: performance.now() - started };
  } catch (err) {
    return { code: null, stdout, stderr: `${stderr}${err instanceof Error ? err.message : String(err)}`, timedOut, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
    if (pid !== undefined) live.delete(pid);
  }
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** SIGKILL to every child still running (Ctrl-C). */
export function killAll(): void {
  for (const pid of live) killGroup(pid);
}

/** Single-quoted for bash. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
