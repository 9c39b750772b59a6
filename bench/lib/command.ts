// `bash -c` in a child process with its own process group, remembered while it runs, so an
// interrupted bench can kill whatever is still using a mount before it unmounts.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface CommandLimits {
  /** Characters of stdout kept (the last ones); default all. */
  stdoutTail?: number;
  /** Characters of stderr kept (the last ones); default 64 Ki. */
  stderrTail?: number;
}

const running = new Set<number>();

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every command still running (their whole process groups). */
export function killRunningCommands(): void {
  for (const pid of running) killGroup(pid);
}

export async function runCommand(cmd: string, env: NodeJS.ProcessEnv, timeoutMs: number, limits: CommandLimits = {}): Promise<CommandResult> {
  const started = performance.now();
  const stdoutTail = limits.stdoutTail ?? Infinity;
  const stderrTail = limits.stderrTail ?? 64 * 1024;
  const child = spawn('bash', ['-c', cmd], { cwd: tmpdir(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c: string) => (stdout = tail(stdout + c, stdoutTail)));
  child.stderr.on('data', (c: string) => (stderr = tail(stderr + c, stderrTail)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (pid !== undefined) killGroup(pid);
  }, timeoutMs);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr, timedOut, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
    if (pid !== undefined) running.delete(pid);
  }
}

function tail(text: string, keep: number): string {
  return text.length > keep ? text.slice(-keep) : text;
}
