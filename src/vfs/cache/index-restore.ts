import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../log.js';
import { readIndex, versionFileNum, type IndexData } from './cache-index.js';
import type { BlockEntry, VersionFile } from './version-file.js';

export interface RestoredIndex {
  /** Number for the next new version file. */
  readonly nextNum: number;
  /** Versions with blocks on disk. */
  readonly versions: readonly VersionFile[];
  /** Their blocks, least recently used first. */
  readonly blocks: readonly BlockEntry[];
  /** Index entries dropped and stray files deleted: the index on disk is out of date. */
  readonly dropped: number;
}

/**
 * The cache as the index at `indexFile` left it: only blocks whose file is there and long enough
 * are kept; files of `blocksDir` the index does not name are deleted. An unusable index, or one
 * of another block size, starts the cache cold.
 */
export async function restoreIndex(
  indexFile: string,
  blocksDir: string,
  blockSize: number,
  log: Logger,
  make: (num: number, fileId: string, size: number, key: string) => VersionFile,
): Promise<RestoredIndex> {
  const dir = path.dirname(indexFile);
  const found = await readIndex(indexFile);
  let data: IndexData | null = typeof found === 'string' ? null : found;
  if (typeof found === 'string' && found !== 'no index') log.warn({ dir, reason: found }, 'cache index unusable: starting cold');
  if (data !== null && data.blockSize !== blockSize) {
    log.info({ dir, was: data.blockSize, now: blockSize }, 'cache block size changed: starting cold');
    data = null;
  }
  const byIndex: Array<VersionFile | undefined> = [];
  const lengths: number[] = [];
  let dropped = 0;
  let nextNum = data?.nextNum ?? 0;
  for (const [i, v] of (data?.versions ?? []).entries()) {
    const num = versionFileNum(v.file) ?? 0;
    nextNum = Math.max(nextNum, num + 1);
    const vf = make(num, v.fileId, v.size, v.key);
    try {
      const st = await fsp.lstat(vf.path);
      if (!st.isFile()) continue;
      lengths[i] = st.size;
    } catch {
      continue;
    }
    vf.foundOnDisk();
    byIndex[i] = vf;
  }
  const blocks: BlockEntry[] = [];
  for (const [vi, idx] of data?.blocks ?? []) {
    const vf = byIndex[vi];
    const len = vf?.blockLength(idx) ?? 0;
    const e = vf === undefined || len === 0 || idx * blockSize + len > (lengths[vi] ?? 0) ? undefined : vf.land(idx, len);
    if (e === undefined) {
      dropped++;
      continue;
    }
    blocks.push(e);
  }
  const versions = byIndex.filter((vf): vf is VersionFile => vf !== undefined && vf.holdsBlocks);
  const kept = new Set(versions.map((vf) => vf.name));
  for (const name of await fsp.readdir(blocksDir)) {
    if (kept.has(name)) continue;
    await fsp.rm(path.join(blocksDir, name), { force: true, recursive: true });
    dropped++;
  }
  if (dropped > 0) log.info({ dir, dropped }, 'cache index: dropped entries whose files were missing or short, and stray files');
  return { nextNum, versions, blocks, dropped };
}
