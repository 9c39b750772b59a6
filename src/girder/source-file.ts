import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { alignedOffset, UNCACHED_ALIGN, isAligned, openUncached } from '../uncached-io.js';
import type { DirectRequestBody } from './direct-request.js';
import type { UploadSource } from './types.js';

/** Bytes per read, and per write to the socket. */
const BLOCK = 512 * 1024;

/**
 * The local file an upload sends, as request bodies that move through two reused buffers: no new
 * memory per read (see direct-request.ts). Aligned reads go around the page cache when the file
 * system allows (uncached-io.ts): a file staged for upload is read once, and caching it would only
 * take memory from everything else.
 */
export class SourceFile {
  /** Bodies are written one at a time: they share the buffers. */
  private busy: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly handle: FileHandle,
    private direct: FileHandle | undefined,
    private readonly buffers: readonly [Buffer, Buffer],
  ) {}

  /** Opens `source.path`, which must be `source.size` bytes long. */
  static async open(source: UploadSource): Promise<SourceFile> {
    const handle = await open(source.path, 'r');
    let direct: FileHandle | undefined;
    try {
      const { size } = await handle.stat();
      if (size !== source.size) throw new Error(`upload source ${source.path} is ${size} bytes, expected ${source.size}`);
      const block = Math.min(BLOCK, size);
      const area = Buffer.allocUnsafeSlow(2 * block + UNCACHED_ALIGN);
      // A small file gains nothing from going around the cache.
      direct = size >= BLOCK ? await openUncached(source.path, constants.O_RDONLY) : undefined;
      const d = direct;
      const shift = d === undefined ? 0 : await alignedOffset(area, (view) => d.read(view, 0, view.length, 0));
      if (shift === undefined) {
        await direct?.close();
        direct = undefined;
      }
      const at = shift ?? 0;
      return new SourceFile(handle, direct, [area.subarray(at, at + block), area.subarray(at + block, at + 2 * block)]);
    } catch (err) {
      await direct?.close().catch(() => undefined);
      await handle.close();
      throw err;
    }
  }

  /**
   * A request body of the file's bytes [offset, offset + length). `onSent` hears of each buffer the
   * socket took, with the bytes sent so far by this attempt (a body is written again after a re-login).
   */
  body(offset: number, length: number, onSent: (bytes: number, attemptSent: number) => void): DirectRequestBody {
    return {
      length,
      writeTo: (send) => {
        const run = this.busy.then(() => this.writeRange(offset, length, send, onSent));
        this.busy = run.catch(() => undefined);
        return run;
      },
    };
  }

  async close(): Promise<void> {
    await this.busy;
    await this.direct?.close().catch(() => undefined);
    await this.handle.close();
  }

  private async writeRange(
    offset: number,
    length: number,
    send: (bytes: Buffer) => Promise<void>,
    onSent: (bytes: number, attemptSent: number) => void,
  ): Promise<void> {
    const end = offset + length;
    // One buffer is read into while the other is with the socket.
    let sending: Promise<void> = Promise.resolve();
    try {
      for (let pos = offset, turn = 0; pos < end; turn++) {
        const buffer = this.buffers[turn % 2] as Buffer;
        const n = await this.readInto(buffer, Math.min(buffer.length, end - pos), pos);
        await sending;
        if (n === 0) throw new Error(`the upload source ended at byte ${pos}, before byte ${end}`);
        const upTo = pos + n - offset;
        sending = send(buffer.subarray(0, n)).then(() => onSent(n, upTo));
        sending.catch(() => undefined); // awaited next turn; a failed read must not leave it unheard
        pos += n;
      }
      await sending;
    } finally {
      // The buffers are free for the next body only once the socket is done with them.
      await sending.catch(() => undefined);
    }
  }

  private async readInto(buffer: Buffer, length: number, position: number): Promise<number> {
    const d = this.direct;
    if (d === undefined) return (await this.handle.read(buffer, 0, length, position)).bytesRead;
    if (!isAligned(position)) {
      // (a resumed upload) the ordinary way up to the next aligned position, then direct again
      const toAligned = UNCACHED_ALIGN - (position % UNCACHED_ALIGN);
      return (await this.handle.read(buffer, 0, Math.min(length, toAligned), position)).bytesRead;
    }
    try {
      // A last, partial block is asked for whole: the read stops at the end of the file.
      const whole = Math.ceil(length / UNCACHED_ALIGN) * UNCACHED_ALIGN;
      const { bytesRead } = await d.read(buffer, 0, whole, position);
      return Math.min(bytesRead, length);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      this.direct = undefined; // the kernel wants another alignment after all: read the ordinary way
      await d.close().catch(() => undefined);
      return (await this.handle.read(buffer, 0, length, position)).bytesRead;
    }
  }
}
