// Counts of operations by kind, bytes moved, and every failure and content mismatch, with details.

export interface OpCount {
  ok: number;
  failed: number;
  bytes: number;
  totalMs: number;
  maxMs: number;
}

export interface Failure {
  /** Seconds since the soak started. */
  t: number;
  kind: string;
  path: string;
  cmd: string;
  code: number | null;
  timedOut: boolean;
  stderr: string;
}

export interface Mismatch {
  t: number;
  /** `read` during the soak, `mount` or `server` in the final check. */
  where: 'read' | 'mount' | 'server';
  path: string;
  version: number;
  size: number;
  expected: string;
  got: string;
  /** A second read right after, to tell a passing glitch from wrong stored bytes. */
  reread?: string;
  /** Where the soak wrote the content got, if it did (Model.originOf). */
  origin?: string;
}

export class Tally {
  readonly ops = new Map<string, OpCount>();
  readonly failures: Failure[] = [];
  readonly mismatches: Mismatch[] = [];
  bytesWritten = 0;
  bytesRead = 0;
  /** Writer time spent waiting for the upload queue to shrink. */
  backpressureMs = 0;

  constructor(private readonly t0: number) {}

  now(): number {
    return (performance.now() - this.t0) / 1000;
  }

  count(kind: string, ok: boolean, bytes: number, ms: number): void {
    let c = this.ops.get(kind);
    if (c === undefined) this.ops.set(kind, (c = { ok: 0, failed: 0, bytes: 0, totalMs: 0, maxMs: 0 }));
    if (ok) c.ok++;
    else c.failed++;
    c.bytes += bytes;
    c.totalMs += ms;
    c.maxMs = Math.max(c.maxMs, ms);
  }

  fail(f: Omit<Failure, 't'>): void {
    this.failures.push({ t: this.now(), ...f, stderr: f.stderr.slice(-1500) });
  }

  mismatch(m: Omit<Mismatch, 't'>): void {
    this.mismatches.push({ t: this.now(), ...m });
  }

  get totalOps(): number {
    let n = 0;
    for (const c of this.ops.values()) n += c.ok + c.failed;
    return n;
  }
}
