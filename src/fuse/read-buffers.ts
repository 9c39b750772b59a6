/**
 * Buffers for reads that must wait: they are filled here, then copied into the kernel's buffer.
 * (A read served at once from memory is copied straight into the kernel's: ops.ts.) The kernel's
 * buffer is freed once the read is answered; a read answered EIO by the watchdog may still have a
 * pread or a copy in flight, which must then land in memory of ours, never in freed memory. A
 * buffer whose read was given up on is simply not taken back.
 */

/** libfuse 2.9 sends reads of at most 128 KiB (max_read). */
const SIZE = 128 * 1024;
/** Idle buffers kept (the kernel has about a dozen reads in flight at most). */
const KEEP = 16;

export class ReadBuffers {
  private readonly idle: Buffer[] = [];

  take(length: number): Buffer {
    if (length > SIZE) return Buffer.allocUnsafe(length);
    return this.idle.pop() ?? Buffer.allocUnsafe(SIZE);
  }

  /** Only once nothing can write into `buffer` any more. */
  give(buffer: Buffer): void {
    if (buffer.length === SIZE && this.idle.length < KEEP) this.idle.push(buffer);
  }
}
