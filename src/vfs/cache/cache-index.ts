import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';

/**
 * The persisted cache index: which blocks of which file versions are on disk, in LRU order
 * (oldest first). Written atomically (temp file, fsync, rename); read back at start and checked
 * against the block files before it is trusted.
 */
export interface IndexVersion {
  /** File name in the blocks directory (`v<num>`). */
  readonly file: string;
  readonly fileId: string;
  readonly size: number;
  readonly key: string;
}

export interface IndexData {
  readonly format: 1;
  readonly blockSize: number;
  /** Next number for a version file name. */
  readonly nextNum: number;
  readonly versions: readonly IndexVersion[];
  /** [index into versions, block index], least recently used first. */
  readonly blocks: ReadonlyArray<readonly [number, number]>;
}

const VERSION_FILE = /^v(\d{1,15})$/;

/** The number in a version file name, or undefined for any other name. */
export function versionFileNum(name: string): number | undefined {
  const m = VERSION_FILE.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The index at `file`, or a reason why there is none usable. */
export async function readIndex(file: string): Promise<IndexData | string> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no index' : `unreadable index: ${String(err)}`;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'index is not JSON';
  }
  return parseIndex(raw) ?? 'index has an unknown shape';
}

function parseIndex(raw: unknown): IndexData | undefined {
  if (!isRecord(raw) || raw.format !== 1 || !isCount(raw.blockSize) || !isCount(raw.nextNum)) return undefined;
  if (!Array.isArray(raw.versions) || !Array.isArray(raw.blocks)) return undefined;
  const versions: IndexVersion[] = [];
  for (const v of raw.versions as unknown[]) {
    if (!isRecord(v) || typeof v.file !== 'string' || versionFileNum(v.file) === undefined) return undefined;
    if (typeof v.fileId !== 'string' || !isCount(v.size) || typeof v.key !== 'string') return undefined;
    versions.push({ file: v.file, fileId: v.fileId, size: v.size, key: v.key });
  }
  const blocks: Array<readonly [number, number]> = [];
  for (const b of raw.blocks as unknown[]) {
    if (!Array.isArray(b) || b.length !== 2 || !isCount(b[0]) || !isCount(b[1]) || b[0] >= versions.length) return undefined;
    blocks.push([b[0], b[1]]);
  }
  return { format: 1, blockSize: raw.blockSize, nextNum: raw.nextNum, versions, blocks };
}

/** Replace the index at `file` in one step: a crash leaves the old one or the new one. */
export async function writeIndex(file: string, data: IndexData): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(JSON.stringify(data));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await syncDir(path.dirname(file));
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself is already done
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
