// Counts the daemon's warnings and errors from its JSON log lines (pino levels 40, 50, 60).
import type { Readable } from 'node:stream';

export interface LogLine {
  level: number;
  msg: string;
  line: string;
}

const RECENT_LINES = 20_000;

export class DaemonLog {
  warnings = 0;
  errors = 0;
  /** The first lines of each kind, for the report. */
  readonly kept: LogLine[] = [];
  /** Messages with their count. */
  readonly byMessage = new Map<string, number>();
  /** The last RECENT_LINES lines of any level, for the story of a mismatch. */
  private readonly recent: string[] = [];

  /** Recent lines that contain any of `needles`, oldest first. */
  recentWith(needles: readonly string[]): string[] {
    return this.recent.filter((line) => needles.some((n) => n !== '' && line.includes(n)));
  }

  watch(stream: Readable | null): void {
    if (stream === null) return;
    let pending = '';
    stream.on('data', (chunk: string | Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) this.add(line);
    });
  }

  private add(line: string): void {
    this.recent.push(line.slice(0, 1000));
    if (this.recent.length > RECENT_LINES) this.recent.splice(0, this.recent.length - RECENT_LINES);
    let rec: { level?: unknown; msg?: unknown };
    try {
      rec = JSON.parse(line) as { level?: unknown; msg?: unknown };
    } catch {
      return;
    }
    const level = Number(rec.level);
    if (!(level >= 40)) return;
    if (level >= 50) this.errors++;
    else this.warnings++;
    const msg = String(rec.msg ?? '');
    const key = `${level >= 50 ? 'error' : 'warn'}: ${msg}`;
    this.byMessage.set(key, (this.byMessage.get(key) ?? 0) + 1);
    if (this.kept.length < 40) this.kept.push({ level, msg, line: line.slice(0, 2000) });
  }
}
