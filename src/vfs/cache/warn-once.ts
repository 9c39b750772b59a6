import type { Logger } from '../../log.js';

/** Cache troubles logged once per kind: a failing disk would otherwise log at every block. */
export class WarnOnce {
  private readonly warned = new Set<string>();

  constructor(private readonly log: Logger) {}

  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.log.warn(fields, msg);
  }
}

/** The errno code of a failed file operation, to tell kinds of trouble apart. */
export function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'unknown';
}
