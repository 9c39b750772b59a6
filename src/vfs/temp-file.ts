import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { openUncached } from '../uncached-io.js';
import type { LocalWriter } from './local-writes/index.js';

/** A local copy's temp file in the cache directory (0600). */
export interface TempFile {
  readonly tempPath: string;
  readonly fd: FileHandle;
  /** The file opened again with O_DIRECT, for the aligned part of front-to-back writes. */
  readonly direct: FileHandle | undefined;
}

/** A new empty temp file, and a direct descriptor of it when its file system and the write thread allow. */
export async function newTemp(dataDir: string, writer: LocalWriter): Promise<TempFile> {
  const tempPath = join(dataDir, `${randomUUID()}.data`);
  const fd = await open(tempPath, 'w+', 0o600);
  let direct: FileHandle | undefined;
  try {
    direct = await openUncached(tempPath, constants.O_WRONLY);
    if (direct !== undefined && !(await writer.canWriteDirect(direct.fd))) {
      await direct.close();
      direct = undefined;
    }
  } catch (err) {
    await direct?.close().catch(() => undefined);
    await fd.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  return { tempPath, fd, direct };
}

/** A new temp file holding the first `keep` bytes of `from` (copy-on-write of a shared one). */
export async function newTempWith(dataDir: string, writer: LocalWriter, from: FileHandle, keep: number): Promise<TempFile> {
  const next = await newTemp(dataDir, writer);
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < keep; ) {
      const { bytesRead } = await from.read(chunk, 0, Math.min(chunk.length, keep - pos), pos);
      if (bytesRead === 0) break;
      await next.fd.write(chunk, 0, bytesRead, pos);
      pos += bytesRead;
    }
  } catch (err) {
    await next.fd.close().catch(() => undefined);
    await next.direct?.close().catch(() => undefined);
    await unlink(next.tempPath).catch(() => undefined);
    throw err;
  }
  return next;
}
