/**
 * The main thread's side of the write thread (worker.ts). A FUSE write costs the main thread one
 * copy into the ring and is answered at once; the write thread does the pwrite and the SHA-512 on
 * the other core. Errors of those pwrites reach the file through `onError` (soon) and through its
 * next barrier (for sure), so close() and fsync() report them as a disk file system would.
 */
import { ftruncate, write } from 'node:fs';
import { promisify } from 'node:util';
import { alignedOffset, UNCACHED_ALIGN } from '../../uncached-io.js';
import { FsError } from '../../errors.js';
import { startWorker, workersStarted } from '../../young-generation.js';
import { toFsError } from '../fs-error.js';
import { allocateRing, ALIGN_SPARE, F_DFD, F_FD, F_KEY, F_LEN, F_OFF, F_OP, F_POS, F_REQ, FIELDS, HEAD, Op, SLOT_BYTES, SLOTS, TAIL, type RingBuffers, type WriterMessage } from './ring.js';

const writeAt = promisify(write);
const truncateFd = promisify(ftruncate);

/** A file's descriptors: buffered, and O_DIRECT (-1 when there is none). */
export interface WriteFds {
  readonly fd: number;
  readonly direct: number;
}

export interface BarrierResult {
  /** SHA-512 of the file's bytes when they were written front to back, and asked for. */
  readonly digest: string | undefined;
  /** The first write of the file that failed. */
  readonly error: FsError | undefined;
}

interface Submission {
  readonly op: Op;
  readonly key: number;
  readonly fds: WriteFds;
  readonly pos: number;
  readonly len: number;
  readonly req: number;
  readonly bytes: Buffer | undefined;
  readonly resolve: (seq: number) => void;
  readonly reject: (err: unknown) => void;
}

/** The write thread as the main thread sees it: Worker's events and reference counting. */
export interface WriteThread {
  on(event: 'message', listener: (m: WriterMessage) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  ref(): void;
  unref(): void;
}

/** Starts worker.js on the ring. */
function startWriteThread(ring: RingBuffers): WriteThread {
  return startWorker(new URL('./worker.js', import.meta.url), { workerData: ring });
}

export class LocalWriter {
  private readonly worker: WriteThread;
  private readonly data: Buffer;
  private readonly counters: Int32Array;
  private readonly meta: Float64Array;
  /** Ops published (unwrapped). */
  private head = 0;
  private nextKey = 1;
  private nextReq = 1;
  private readonly queue: Submission[] = [];
  private readonly tailWaiters: Array<{ readonly seq: number; readonly resolve: () => void; readonly reject: (err: unknown) => void }> = [];
  private readonly replies = new Map<number, { readonly resolve: (r: BarrierResult) => void; readonly reject: (err: unknown) => void }>();
  private readonly errorHandlers = new Map<number, (err: FsError) => void>();
  private watchingTail = false;
  private referenced = false;
  private dead: FsError | undefined;
  /** Where in the data buffer slots must start for direct I/O to accept their address; undefined until found. */
  private directShift: number | undefined;
  /** Where slots start now: moved to directShift only while the ring is empty, so no queued op's bytes move. */
  private slotShift = 0;
  /** The kernel took no offset of the ring (it wants a coarser alignment): no direct writes. */
  private directRefused = false;
  private aligning: Promise<boolean> | undefined;

  /** `startThread` is for tests, which drive the ring's counters themselves. */
  constructor(startThread: (ring: RingBuffers) => WriteThread = startWriteThread) {
    const ring = allocateRing();
    this.data = Buffer.from(ring.data);
    this.counters = new Int32Array(ring.counters);
    this.meta = new Float64Array(ring.meta);
    this.worker = startThread(ring);
    this.worker.on('message', (m: WriterMessage) => this.onMessage(m));
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`the write thread exited with code ${code}`)));
    this.worker.unref(); // (after the listeners, which ref it) held only while something waits on it: see holdWhileWaiting
  }

  /** A key for a file's ops; `onError` hears of its first failed write. */
  register(onError: (err: FsError) => void): number {
    const key = this.nextKey++;
    this.errorHandlers.set(key, onError);
    return key;
  }

  /**
   * Whether writes may use the O_DIRECT descriptor `directFd`: the first call finds an offset of the
   * ring from which the kernel takes direct writes, by writing to `directFd` at 0. The file must be
   * new and empty; it is truncated back to 0. A failure to find out (a full disk) says no, and
   * the next file tries again.
   */
  canWriteDirect(directFd: number): Promise<boolean> {
    if (this.directShift !== undefined) return Promise.resolve(true);
    if (this.directRefused) return Promise.resolve(false);
    this.aligning ??= (async () => {
      try {
        const shift = await alignedOffset(this.data.subarray(0, ALIGN_SPARE + UNCACHED_ALIGN), (view) => writeAt(directFd, view, 0, view.length, 0));
        await truncateFd(directFd, 0);
        if (shift === undefined) this.directRefused = true;
        else this.directShift = shift;
        return shift !== undefined;
      } catch {
        await truncateFd(directFd, 0).catch(() => undefined);
        return false;
      } finally {
        this.aligning = undefined;
      }
    })();
    return this.aligning;
  }

  /** Queue bytes for the file at `pos` (copied before this resolves). Resolves with the last op's sequence number. */
  write(key: number, fds: WriteFds, pos: number, bytes: Buffer, hashed: boolean): Promise<number> {
    // All pieces are submitted at once, so no other write lands between them.
    let last: Promise<number> = Promise.resolve(-1);
    for (let done = 0; done < bytes.length; done += SLOT_BYTES) {
      last.catch(noop); // only the last one is awaited; a failure fails them all alike
      const piece = bytes.subarray(done, done + SLOT_BYTES);
      last = this.submit(hashed ? Op.WriteHashed : Op.Write, key, fds, pos + done, piece.length, 0, piece);
    }
    return last;
  }

  async reset(key: number): Promise<void> {
    await this.submit(Op.Reset, key, NO_FDS, 0, 0, 0, undefined);
  }

  async unhash(key: number): Promise<void> {
    await this.submit(Op.Unhash, key, NO_FDS, 0, 0, 0, undefined);
  }

  /** Resolves once every op queued so far for any file is done, with the file's state. */
  barrier(key: number, wantDigest: boolean): Promise<BarrierResult> {
    return this.request(Op.Barrier, key, wantDigest ? 1 : 0);
  }

  /** Like barrier, and the write thread forgets the file. */
  async forget(key: number): Promise<BarrierResult> {
    try {
      return await this.request(Op.Forget, key, 0);
    } finally {
      this.errorHandlers.delete(key);
    }
  }

  /** Where the ring stands, for the log line of an operation given up on. */
  state(): { published: number; completed: number; queued: number; waiters: number; watchingTail: boolean; dead: boolean } {
    return {
      published: this.head, completed: this.completedAt(this.loadTail()), queued: this.queue.length,
      waiters: this.tailWaiters.length, watchingTail: this.watchingTail, dead: this.dead !== undefined,
    };
  }

  /** Resolves once op `seq` (from write()) is done: its bytes are in the file. */
  reached(seq: number): Promise<void> {
    const tail = this.loadTail();
    if (seq < 0 || this.completedAt(tail) > seq) return Promise.resolve();
    if (this.dead !== undefined) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.tailWaiters.push({ seq, resolve, reject });
      this.watchTail(tail);
      this.holdWhileWaiting();
    });
  }

  private request(op: Op.Barrier | Op.Forget, key: number, len: number): Promise<BarrierResult> {
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.replies.set(req, { resolve, reject });
      this.holdWhileWaiting();
      this.submit(op, key, NO_FDS, 0, len, req, undefined).catch((err: unknown) => {
        this.replies.delete(req);
        this.holdWhileWaiting();
        reject(err);
      });
    });
  }

  private submit(op: Op, key: number, fds: WriteFds, pos: number, len: number, req: number, bytes: Buffer | undefined): Promise<number> {
    if (this.dead !== undefined) return Promise.reject(this.dead);
    const tail = this.loadTail();
    if (this.queue.length === 0 && this.free(tail) > 0) return Promise.resolve(this.publish(op, key, fds, pos, len, req, bytes));
    return new Promise((resolve, reject) => {
      this.queue.push({ op, key, fds, pos, len, req, bytes, resolve, reject });
      this.watchTail(tail);
      this.holdWhileWaiting();
    });
  }

  /** The write thread's TAIL counter. Read once per decision, and that value is what watchTail waits on. */
  protected loadTail(): number {
    return Atomics.load(this.counters, TAIL);
  }

  /** Ops the write thread had finished when TAIL was `tail` (unwrapped from the int32 counter). */
  private completedAt(tail: number): number {
    return this.head - (((this.head | 0) - tail) | 0);
  }

  private free(tail: number): number {
    return SLOTS - (this.head - this.completedAt(tail));
  }

  private publish(op: Op, key: number, fds: WriteFds, pos: number, len: number, req: number, bytes: Buffer | undefined): number {
    const slot = this.head % SLOTS;
    if (this.directShift !== undefined && this.slotShift !== this.directShift && this.completedAt(this.loadTail()) === this.head) this.slotShift = this.directShift;
    const offset = this.slotShift + slot * SLOT_BYTES;
    if (bytes !== undefined) bytes.copy(this.data, offset, 0, len);
    const row = slot * FIELDS;
    this.meta[row + F_OP] = op;
    this.meta[row + F_KEY] = key;
    this.meta[row + F_FD] = fds.fd;
    this.meta[row + F_DFD] = this.directShift !== undefined && this.slotShift === this.directShift ? fds.direct : -1;
    this.meta[row + F_OFF] = offset;
    this.meta[row + F_POS] = pos;
    this.meta[row + F_LEN] = len;
    this.meta[row + F_REQ] = req;
    const seq = this.head++;
    Atomics.store(this.counters, HEAD, this.head | 0);
    Atomics.notify(this.counters, HEAD);
    return seq;
  }

  /**
   * Wait (without blocking the event loop) for TAIL to move on from `seen`, the value the caller
   * decided to wait on, then pump. Waiting on a value read again here would miss an op the thread
   * finished in between, and nothing would wake the waiter: a read that never returns.
   */
  private watchTail(seen: number): void {
    if (this.watchingTail || this.dead !== undefined) return;
    this.watchingTail = true;
    const wait = Atomics.waitAsync(this.counters, TAIL, seen);
    const next = (): void => {
      this.watchingTail = false;
      this.pump();
    };
    if (wait.async) void wait.value.then(next);
    else queueMicrotask(next);
  }

  private pump(): void {
    const tail = this.loadTail();
    while (this.queue.length > 0 && this.free(tail) > 0) {
      const s = this.queue.shift() as Submission;
      if (s.bytes !== undefined && s.bytes.length < s.len) s.reject(abandoned());
      else s.resolve(this.publish(s.op, s.key, s.fds, s.pos, s.len, s.req, s.bytes));
    }
    const done = this.completedAt(tail);
    for (let i = this.tailWaiters.length - 1; i >= 0; i--) {
      const w = this.tailWaiters[i] as (typeof this.tailWaiters)[number];
      if (done > w.seq) {
        this.tailWaiters.splice(i, 1);
        w.resolve();
      }
    }
    if (this.queue.length > 0 || this.tailWaiters.length > 0) this.watchTail(tail);
    this.holdWhileWaiting();
  }

  /** Keep the process alive while a promise waits on the write thread, and only then. */
  private holdWhileWaiting(): void {
    const waiting = this.queue.length > 0 || this.tailWaiters.length > 0 || this.replies.size > 0;
    if (waiting === this.referenced) return;
    this.referenced = waiting;
    if (waiting) this.worker.ref();
    else this.worker.unref();
  }

  private onMessage(m: WriterMessage): void {
    if (m.t === 'error') {
      this.errorHandlers.get(m.key)?.(codeError(m.code, m.message));
      return;
    }
    const waiter = this.replies.get(m.req);
    if (waiter === undefined) return;
    this.replies.delete(m.req);
    this.holdWhileWaiting();
    waiter.resolve({ digest: m.digest, error: m.code === undefined ? undefined : codeError(m.code, m.message ?? m.code) });
  }

  /** The write thread is gone (a bug): every write waiting or to come fails with EIO. */
  private die(cause: unknown): void {
    if (this.dead !== undefined) return;
    this.dead = new FsError('EIO', 'the write thread stopped', { cause });
    for (const s of this.queue.splice(0)) s.reject(this.dead);
    for (const w of this.tailWaiters.splice(0)) w.reject(this.dead);
    for (const r of this.replies.values()) r.reject(this.dead);
    this.replies.clear();
    this.holdWhileWaiting();
    for (const onError of this.errorHandlers.values()) onError(this.dead);
  }
}

function noop(): void {}

/**
 * The bytes of a queued write are the kernel's buffer, which fuse-native detaches once the write is
 * answered: a write given up on (answered EIO after its time bound) must not land as zeros.
 */
export function abandoned(): FsError {
  return new FsError('EIO', 'the write was given up on before its bytes reached the write thread');
}

const NO_FDS: WriteFds = { fd: -1, direct: -1 };

function codeError(code: string, message: string): FsError {
  return toFsError(Object.assign(new Error(message), { code }));
}

let shared: LocalWriter | undefined;

/** The process's write thread, started on first use. */
export function localWriter(): LocalWriter {
  shared ??= new LocalWriter();
  return shared;
}

/** The process's write thread, started now and running: the daemon starts it before it mounts (see workersStarted). */
export async function startLocalWriter(): Promise<LocalWriter> {
  const writer = localWriter();
  await workersStarted();
  return writer;
}
