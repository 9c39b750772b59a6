import { constants } from 'node:fs';
import { copyFile, link, lstat, mkdir, open, readFile, readdir, unlink } from 'node:fs/promises';
import { dirname, extname, join, relative } from 'node:path';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { fsyncDir, unlinkDurably, writeFileDurably } from './durable-fs.js';

/** An upload that can never reach Girder, whose bytes wait in lost+found for the user. */
export interface KeptUpload {
  /** The file's path in the mount. */
  readonly path: string;
  /** Where its bytes are now. */
  readonly keptAt: string;
  readonly size: number;
  readonly reason: string;
  /** ISO time it was moved there. */
  readonly failedAt: string;
}

/** Suffixes tried after the name itself before giving up on a place. */
const MAX_SUFFIX = 1000;
/** Records without a file (the user moved or deleted it) are forgotten once the listing was complete. */
const LIST_LIMIT = 1000;

/**
 * `<cache-dir>/lost+found/<mount path>`: the bytes of uploads that can never succeed (their target
 * was deleted on the server). Why each is there is recorded beside the journal (`<journal>/kept/`),
 * so `status` can say it after a restart; the user clears an entry by moving or deleting its file.
 */
export class LostAndFound {
  constructor(readonly dir: string, private readonly recordsDir: string, private readonly log: Logger) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await mkdir(this.recordsDir, { recursive: true, mode: 0o700 });
  }

  /**
   * Give `dataPath` a name under lost+found after the mount path (with `~1`, `~2`... before the
   * extension when taken) and record why. The data file keeps its old name too: the caller drops
   * that once its journal record is gone, so a failure anywhere here loses nothing.
   */
  async keep(id: string, mountPath: string, dataPath: string, reason: string): Promise<string> {
    const keptAt = await this.place(id, mountPath, dataPath);
    const size = (await lstat(keptAt)).size;
    const record: KeptUpload = { path: mountPath, keptAt, size, reason, failedAt: new Date().toISOString() };
    try {
      await writeFileDurably(join(this.recordsDir, `${id}.json`), JSON.stringify(record));
    } catch (err) {
      this.log.warn({ path: mountPath, keptAt, err: errorMessage(err) }, 'could not record why an upload went to lost+found (its bytes are there)');
    }
    return keptAt;
  }

  /** What lost+found holds now (at most 1000 files), oldest first, with the reasons recorded. */
  async list(): Promise<KeptUpload[]> {
    const records = new Map<string, { name: string; rec: KeptUpload }>();
    for (const name of await readdir(this.recordsDir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.recordsDir, name), 'utf8')) as KeptUpload;
        if (typeof rec.keptAt === 'string') records.set(rec.keptAt, { name, rec });
      } catch {
        // a record cut short: its file is still listed, without a reason
      }
    }
    const files: Array<{ path: string; size: number; mtime: Date }> = [];
    const complete = await this.walk(this.dir, files);
    const kept = files.map((f): KeptUpload => {
      const known = records.get(f.path);
      records.delete(f.path);
      return known?.rec ?? {
        path: '/' + relative(this.dir, f.path), keptAt: f.path, size: f.size,
        reason: 'no record of why (kept by an earlier run)', failedAt: f.mtime.toISOString(),
      };
    });
    if (complete) {
      for (const { name } of records.values()) await unlink(join(this.recordsDir, name)).catch(() => undefined);
    }
    // Two uploads can fail in the same millisecond; the path then decides, so the order never
    // depends on the order readdir happens to return.
    return kept.sort((a, b) => byCodePoint(a.failedAt, b.failedAt) || byCodePoint(a.keptAt, b.keptAt));
  }

  /**
   * Earlier versions kept such uploads in `<journal>/failed/`: move them here, where the README
   * and `status` send the user.
   */
  async adoptLegacy(failedDir: string): Promise<void> {
    for (const name of await readdir(failedDir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      const recPath = join(failedDir, name);
      try {
        const rec = JSON.parse(await readFile(recPath, 'utf8')) as { job?: { path?: unknown; tempPath?: unknown }; failure?: { reason?: unknown } };
        const path = rec.job?.path;
        const data = rec.job?.tempPath;
        if (typeof path !== 'string' || typeof data !== 'string') continue; // an unreadable journal record: leave it
        const reason = typeof rec.failure?.reason === 'string' ? rec.failure.reason : 'failed in an earlier version';
        const keptAt = await this.keep(name.slice(0, -'.json'.length), path, data, reason);
        await unlinkDurably(data);
        await unlinkDurably(recPath);
        this.log.warn({ path, keptAt }, 'an upload kept by an earlier version is now in lost+found');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') await unlink(recPath).catch(() => undefined); // its data is gone already
        else this.log.warn({ file: recPath, err: errorMessage(err) }, 'could not move an upload kept by an earlier version to lost+found');
      }
    }
  }

  /** Link the data in under the mount path; a file in the way of a parent directory moves it under `<id>/`. */
  private async place(id: string, mountPath: string, dataPath: string): Promise<string> {
    const parts = mountPath.split('/').filter((p) => p !== '');
    const name = parts.pop() ?? id;
    let dir = join(this.dir, ...parts);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTDIR') throw err;
      dir = join(this.dir, id, ...parts);
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    for (let n = 0; n < MAX_SUFFIX; n++) {
      const target = join(dir, n === 0 ? name : withSuffix(name, n));
      try {
        await linkOrCopy(dataPath, target);
        await fsyncDir(dirname(target));
        return target;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    throw new Error(`${MAX_SUFFIX} files named like ${join(dir, name)} in lost+found already`);
  }

  /** Regular files under `dir`, up to LIST_LIMIT; false when the limit cut the walk short. */
  private async walk(dir: string, into: Array<{ path: string; size: number; mtime: Date }>): Promise<boolean> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return true;
    }
    for (const e of entries) {
      if (into.length >= LIST_LIMIT) return false;
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (!(await this.walk(path, into))) return false;
      } else if (e.isFile()) {
        const st = await lstat(path).catch(() => undefined);
        if (st !== undefined) into.push({ path, size: st.size, mtime: st.mtime });
      }
    }
    return true;
  }
}

/** `report.pdf` -> `report~1.pdf` (dot files and names without an extension get it at the end). */
function withSuffix(name: string, n: number): string {
  const ext = extname(name);
  return ext === '' || ext === name ? `${name}~${n}` : `${name.slice(0, -ext.length)}~${n}${ext}`;
}

/** A second name for the bytes, or a copy when the two places are on different filesystems; never over an existing file. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to, constants.COPYFILE_EXCL);
    const fh = await open(to, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
