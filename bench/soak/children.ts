// Every access to the mount goes through a child process (bash -c), so a stuck FUSE call can never
// block the soak's own event loop. Each child gets its own process group; killAll() ends them all.
import { killRunningCommands, runCommand, type CommandResult } from '../lib/command.js';

/** What sh() gives back: the last MiB of stdout and the last 4 KiB of stderr. */
export type ShellResult = CommandResult;

/** Runs `bash -c 'set -o pipefail; cmd'` with `env` added; never rejects, not even when bash cannot start. */
export async function sh(cmd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ShellResult> {
  const started = performance.now();
  try {
    return await runCommand(`set -o pipefail; ${cmd}`, env, timeoutMs, { stdoutTail: 1024 * 1024, stderrTail: 4096 });
  } catch (err) {
    return { code: null, stdout: '', stderr: err instanceof Error ? err.message : String(err), timedOut: false, ms: performance.now() - started };
  }
}

/** SIGKILL to every child still running (Ctrl-C). */
export function killAll(): void {
  killRunningCommands();
}

/** Single-quoted for bash. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
