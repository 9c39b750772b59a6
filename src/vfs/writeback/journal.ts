import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import { moveFile, unlinkDurably, writeFileDurably } from './durable-fs.js';
import type { JournalRecord } from './types.js';

const SUFFIX = '.json';

/**
 * The upload queue's journal: one JSON file per job, `<dir>/<id>.json`, each written atomically and
 * fsync'd. Jobs that failed for good move to `<dir>/failed/` with their data; nothing is dropped.
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
        this.log.error({ file: path, err }, 'unreadable upload journal record moved to failed/');
        await moveFile(path, join(this.failedDir, name)).catch(() => undefined);
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

  /**
   * Keep a failed job in failed/: its record (with the reason and where its data went), then its
   * data file, then drop the live record. Returns the data's new path.
   */
  async moveToFailed(rec: JournalRecord, reason: string): Promise<string> {
    const dataPath = join(this.failedDir, `${rec.id}.data`);
    const failed = { ...rec, job: { ...rec.job, tempPath: dataPath }, originalTempPath: rec.job.tempPath, failure: { reason, at: new Date().toISOString() } };
    await writeFileDurably(join(this.failedDir, `${rec.id}${SUFFIX}`), JSON.stringify(failed));
    try {
      await moveFile(rec.job.tempPath, dataPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await this.remove(rec.id);
    return dataPath;
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
