import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import { moveFile, unlinkDurably, writeFileDurably } from './durable-fs.js';
import type { JournalRecord } from './types.js';

const SUFFIX = '.json';

/**
 * The upload queue's journal: one JSON file per job, `<dir>/<id>.json`, each written atomically and
 * fsync'd. A record that cannot be read is moved to `<dir>/failed/` (with a log line naming it).
 */
export class Journal {
  readonly failedDir: string;
  /** Writes of one record, in order (an update never overtakes an earlier one). */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(readonly dir: string, private readonly log: Logger) {
    this.failedDir = join(dir, 'failed');
  }

  async init(): Promise<void> {
    await mkdir(this.failedDir, { recursive: true, mode: 0o700 });
  }

  /** Records left by an earlier run, oldest first. Unreadable ones are moved to failed/. */
  async readAll(): Promise<JournalRecord[]> {
    const records: JournalRecord[] = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.startsWith('.') && name.endsWith('.tmp')) {
        await unlink(path).catch(() => undefined); // a write cut short: its rename never happened
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue;
      try {
        records.push(parseRecord(await readFile(path, 'utf8')));
      } catch (err) {
        const to = join(this.failedDir, name);
        await moveFile(path, to).then(
          () => this.log.error({ file: to, err }, `unreadable upload journal record moved to ${to}`),
          () => this.log.error({ file: path, err }, `unreadable upload journal record left at ${path}`),
        );
      }
    }
    return records.sort((a, b) => a.seq - b.seq);
  }

  write(rec: JournalRecord): Promise<void> {
    const data = JSON.stringify(rec);
    return this.serial(rec.id, () => writeFileDurably(this.pathOf(rec.id), data));
  }

  remove(id: string): Promise<void> {
    return this.serial(id, () => unlinkDurably(this.pathOf(id)));
  }

  private pathOf(id: string): string {
    return join(this.dir, `${id}${SUFFIX}`);
  }

  private serial(id: string, op: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(id) ?? Promise.resolve()).catch(() => undefined).then(op);
    this.chains.set(id, next);
    void next.finally(() => {
      if (this.chains.get(id) === next) this.chains.delete(id);
    }).catch(() => undefined);
    return next;
  }
}

function parseRecord(text: string): JournalRecord {
  const rec = JSON.parse(text) as Partial<JournalRecord> | null;
  const job = rec?.job;
  if (rec?.v !== 1 || typeof rec.id !== 'string' || typeof rec.seq !== 'number' || !job ||
      typeof job.path !== 'string' || typeof job.tempPath !== 'string' || typeof job.size !== 'number' ||
      typeof job.target !== 'object' || job.target === null) {
    throw new Error('not an upload journal record');
  }
  return { v: 1, id: rec.id, seq: rec.seq, submittedAt: Number(rec.submittedAt ?? 0), job, resume: rec.resume ?? {} };
}
