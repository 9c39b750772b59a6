import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { alignedLength, alignedOffset, UNCACHED_ALIGN, openUncached } from '../../uncached-io.js';

/** Bytes one direct write takes at most (the staging buffer's size). */
const STAGE_BYTES = 1024 * 1024;

/**
 * Writes cache blocks around the page cache (uncached-io.ts). A block fetched for a reader is also in
 * the kernel's page cache of the mounted file, which is what serves re-reads: caching the block
 * file too would hold every byte twice. The blocks come from pooled buffers at addresses direct
 * I/O may refuse, so their aligned part is copied into one aligned staging buffer first (a copy
 * costs far less than the page-cache pages it saves); writes take turns with it.
 */
export class DirectBlocks {
  private turn: Promise<unknown> = Promise.resolve();

  private constructor(private readonly stage: Buffer) {}

  /** Direct writes into files of `dir`, or undefined where its file system has none. */
  static async open(dir: string): Promise<DirectBlocks | undefined> {
    const probe = path.join(dir, `.direct-probe-${randomUUID()}`);
    const made = await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    await made.close();
    let fh: FileHandle | undefined;
    try {
      fh = await openUncached(probe, constants.O_WRONLY);
      if (fh === undefined) return undefined;
      const area = Buffer.allocUnsafeSlow(STAGE_BYTES + UNCACHED_ALIGN);
      const h = fh;
      const shift = await alignedOffset(area, (view) => h.write(view, 0, view.length, 0)).catch(() => undefined);
      return shift === undefined ? undefined : new DirectBlocks(area.subarray(shift, shift + STAGE_BYTES));
    } finally {
      await fh?.close();
      await unlink(probe).catch(() => undefined);
    }
  }

  /**
   * Write `data` at `position` (a multiple of UNCACHED_ALIGN): the whole 4 KiB blocks through
   * `direct`, the rest (the end of a file's last block) through `buffered`.
   */
  write(direct: FileHandle, buffered: FileHandle, data: Buffer, position: number): Promise<void> {
    const run = this.turn.then(() => this.writeNow(direct, buffered, data, position));
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async writeNow(direct: FileHandle, buffered: FileHandle, data: Buffer, position: number): Promise<void> {
    const aligned = alignedLength(position, data.length);
    for (let done = 0; done < aligned; ) {
      const n = Math.min(STAGE_BYTES, aligned - done);
      data.copy(this.stage, 0, done, done + n);
      await writeAll(direct, this.stage.subarray(0, n), position + done);
      done += n;
    }
    if (aligned < data.length) await writeAll(buffered, data.subarray(aligned), position + aligned);
  }
}

/** Write all of `bytes` at `position` (a write that takes nothing is an EIO). */
export async function writeAll(fh: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += bytesWritten;
  }
}
