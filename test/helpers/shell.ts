// Ordinary tools (cp, rsync, dd, sha512sum ...) run by bash in a child process, with the mountpoint
// and a local work dir in $M and $W, so commands need no quoting of temp paths.
import { run, type RunResult } from './mount.js';

export interface Shell {
  /** Runs `cmd`; never rejects for a non-zero exit. */
  (cmd: string, timeoutMs?: number): Promise<RunResult>;
  /** Runs `cmd` and throws (with its output) unless it exits 0; resolves with its stdout. */
  ok(cmd: string, timeoutMs?: number): Promise<string>;
  /** The hex SHA-512 of a file, by `sha512sum` (a path under $M or $W, in shell syntax). */
  sha512sum(file: string): Promise<string>;
}

export function shell(vars: { M: string; W: string }): Shell {
  const sh = ((cmd: string, timeoutMs = 300_000) => run(`set -o pipefail; ${cmd}`, { env: vars, timeoutMs })) as Shell;
  sh.ok = async (cmd, timeoutMs) => {
    const r = await sh(cmd, timeoutMs);
    if (r.code !== 0) {
      throw new Error(`\`${cmd}\` exited ${r.code}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
    return r.stdout;
  };
  sh.sha512sum = async (file) => {
    const out = await sh.ok(`sha512sum < ${file}`);
    const hex = /^([0-9a-f]{128})\b/.exec(out)?.[1];
    if (hex === undefined) throw new Error(`sha512sum of ${file} printed ${out}`);
    return hex;
  };
  return sh;
}
