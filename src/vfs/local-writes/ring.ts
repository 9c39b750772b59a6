/**
 * The shared-memory ring that carries writes of local files from the main thread to the write
 * thread: fixed slots of data plus a row of numbers per slot, and two counters.
 */

/** Bytes one slot holds: the largest write FUSE sends with big_writes. */
export const SLOT_BYTES = 128 * 1024;
/** Slots in the ring: how far (4 MiB) writes may run ahead of the disk and the hash. */
export const SLOTS = 32;

/** Int32 counters: ops published by the main thread, and ops the write thread has finished. */
export const HEAD = 0;
export const TAIL = 1;
export const COUNTERS = 2;

/** Numbers per slot (a Float64Array row): what to do, to which file, where. */
export const FIELDS = 8;
export const F_OP = 0;
export const F_KEY = 1;
export const F_FD = 2;
export const F_POS = 3;
export const F_LEN = 4;
export const F_REQ = 5;
/** The file's O_DIRECT descriptor, or -1: used for writes whose position and length are aligned. */
export const F_DFD = 6;
/** Where in the data buffer the slot's bytes start (the slot's place plus the buffer's aligned offset). */
export const F_OFF = 7;

/** Room at the start of the data buffer to move the slots to an address direct I/O accepts. */
export const ALIGN_SPARE = 4096;

export const enum Op {
  /** pwrite the slot's bytes, and add them to the file's hash (they follow what it has hashed). */
  WriteHashed = 1,
  /** pwrite the slot's bytes; the file's hash is gone (not front to back any more). */
  Write = 2,
  /** The file was truncated to 0: a new hash, and an earlier write failure no longer matters. */
  Reset = 3,
  /** The file's hash is gone (truncated to another size). */
  Unhash = 4,
  /** Reply once every earlier op is done, with the file's first write error and (F_LEN = 1) its hash. */
  Barrier = 5,
  /** Forget the file (its handle is about to close); replies like Barrier. */
  Forget = 6,
}

export interface RingBuffers {
  readonly data: SharedArrayBuffer;
  readonly counters: SharedArrayBuffer;
  readonly meta: SharedArrayBuffer;
}

export function allocateRing(): RingBuffers {
  return {
    data: new SharedArrayBuffer(ALIGN_SPARE + SLOTS * SLOT_BYTES),
    counters: new SharedArrayBuffer(COUNTERS * Int32Array.BYTES_PER_ELEMENT),
    meta: new SharedArrayBuffer(SLOTS * FIELDS * Float64Array.BYTES_PER_ELEMENT),
  };
}

/** What the write thread posts back. Errors are posted before the op's slot is released. */
export type WriterMessage =
  | { readonly t: 'error'; readonly key: number; readonly code: string; readonly message: string }
  | { readonly t: 'reply'; readonly req: number; readonly digest?: string; readonly code?: string; readonly message?: string };
