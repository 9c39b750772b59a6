/**
 * The write thread: takes ops off the ring in order, writes their bytes into the files' temp files
 * and keeps each file's running SHA-512, so the main thread only copies bytes and answers FUSE.
 * Writes that continue each other are taken together; their aligned part is written with direct
 * I/O (uncached-io.ts) by the thread pool while this thread hashes it.
 */
import { createHash, type Hash } from 'node:crypto';
import { write as writeCb, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { parentPort, workerData } from 'node:worker_threads';
import { alignedLength } from '../../uncached-io.js';
import { F_DFD, F_FD, F_KEY, F_LEN, F_OFF, F_OP, F_POS, F_REQ, FIELDS, HEAD, Op, SLOTS, TAIL, type RingBuffers, type WriterMessage } from './ring.js';

const writeAt = promisify(writeCb);

interface FileState {
  hash: Hash | undefined;
  error: { code: string; message: string } | undefined;
}

const port = parentPort;
if (port === null) throw new Error('local-writes/worker.js runs as a worker thread');
const ring = workerData as RingBuffers;
const data = Buffer.from(ring.data);
const counters = new Int32Array(ring.counters);
const meta = new Float64Array(ring.meta);
const files = new Map<number, FileState>();

function post(message: WriterMessage): void {
  port?.postMessage(message);
}

function stateOf(key: number): FileState {
  let state = files.get(key);
  if (state === undefined) {
    state = { hash: createHash('sha512'), error: undefined };
    files.set(key, state);
  }
  return state;
}

/** Most slots one write takes at once (2 MiB): direct I/O pays per call. */
const MAX_BATCH = 16;
/**
 * Fewer aligned bytes than this go through the page cache: a direct write waits for the device, so
 * it only pays for long runs (a copy), not for small or scattered writes (a database, `dd bs=4k`).
 */
const DIRECT_MIN = 64 * 1024;

/** A run of write ops of one file, back to back in the file and in the ring. */
interface Batch {
  readonly key: number;
  readonly op: Op;
  readonly fd: number;
  readonly direct: number;
  readonly pos: number;
  readonly bytes: Buffer;
  readonly slots: number;
}

/** The write op at unwrapped index `first` and the ops after it that continue it (of `available`). */
function batchAt(first: number, available: number): Batch {
  const row = (first % SLOTS) * FIELDS;
  const key = meta[row + F_KEY] as number;
  const op = meta[row + F_OP] as Op;
  const fd = meta[row + F_FD] as number;
  const direct = meta[row + F_DFD] as number;
  const pos = meta[row + F_POS] as number;
  const start = meta[row + F_OFF] as number;
  let len = meta[row + F_LEN] as number;
  let slots = 1;
  while (slots < Math.min(available, MAX_BATCH)) {
    const next = ((first + slots) % SLOTS) * FIELDS;
    const continues = meta[next + F_OP] === op && meta[next + F_KEY] === key && meta[next + F_FD] === fd && meta[next + F_DFD] === direct
      && meta[next + F_POS] === pos + len && meta[next + F_OFF] === start + len;
    if (!continues) break;
    len += meta[next + F_LEN] as number;
    slots++;
  }
  return { key, op, fd, direct, pos, bytes: data.subarray(start, start + len), slots };
}

async function write(b: Batch): Promise<void> {
  const state = stateOf(b.key);
  // A broken file writes nothing more: its bytes are never uploaded.
  const writing = state.error === undefined;
  // Whole aligned blocks skip the page cache, written by the thread pool while this thread hashes
  // them; the rest (a file's tail, small writes) goes through the page cache.
  const aligned = writing && b.direct >= 0 ? alignedLength(b.pos, b.bytes.length) : 0;
  const directLen = aligned >= DIRECT_MIN ? aligned : 0;
  const directDone = directLen > 0 ? writeDirect(b.direct, b.pos, b.bytes.subarray(0, directLen)) : Promise.resolve(true);
  if (b.op === Op.WriteHashed) state.hash?.update(b.bytes);
  else state.hash = undefined;
  if (!writing) return;
  try {
    if (!(await directDone)) writeAll(b.fd, b.pos, b.bytes.subarray(0, directLen));
    if (directLen < b.bytes.length) writeAll(b.fd, b.pos + directLen, b.bytes.subarray(directLen));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    state.error = { code: e.code ?? 'EIO', message: e.message };
    post({ t: 'error', key: b.key, ...state.error });
  }
}

function writeAll(fd: number, pos: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length; ) done += wrote(writeSync(fd, bytes, done, bytes.length - done, pos + done));
}

/** A write that took nothing would loop for ever: call it an I/O error. */
function wrote(n: number): number {
  if (n <= 0) throw Object.assign(new Error('EIO: a write to the temp file took no bytes'), { code: 'EIO' });
  return n;
}

/** Resolves false when the kernel refuses the direct write (EINVAL: an alignment it wants and we lack). */
async function writeDirect(fd: number, pos: number, bytes: Buffer): Promise<boolean> {
  try {
    for (let done = 0; done < bytes.length; ) done += wrote((await writeAt(fd, bytes, done, bytes.length - done, pos + done)).bytesWritten);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return false;
    throw err;
  }
}

function reply(state: FileState | undefined, req: number, wantDigest: boolean): void {
  const digest = wantDigest && state?.hash !== undefined ? state.hash.copy().digest('hex') : undefined;
  post({ t: 'reply', req, ...(digest !== undefined ? { digest } : {}), ...(state?.error ?? {}) });
}

/** Carries out the op at unwrapped index `first` (with the ops that continue it); returns how many it took. */
async function run(first: number, available: number): Promise<number> {
  const row = (first % SLOTS) * FIELDS;
  const op = meta[row + F_OP] as Op;
  const key = meta[row + F_KEY] as number;
  const len = meta[row + F_LEN] as number;
  switch (op) {
    case Op.WriteHashed:
    case Op.Write: {
      const batch = batchAt(first, available);
      await write(batch);
      return batch.slots;
    }
    case Op.Reset:
      files.set(key, { hash: createHash('sha512'), error: undefined });
      return 1;
    case Op.Unhash:
      stateOf(key).hash = undefined;
      return 1;
    case Op.Barrier:
      reply(stateOf(key), meta[row + F_REQ] as number, len === 1);
      return 1;
    case Op.Forget:
      reply(files.get(key), meta[row + F_REQ] as number, false);
      files.delete(key);
      return 1;
  }
  throw new Error(`unknown op ${String(op)} in the write ring`);
}

// Counters are int32 and wrap; slots follow the unwrapped count (SLOTS divides 2^32). The thread
// sleeps in Atomics.wait only when nothing is in flight, so awaiting a write still runs its callback.
let tail = 0;
for (;;) {
  const head = Atomics.load(counters, HEAD);
  if (head === (tail | 0)) {
    Atomics.wait(counters, HEAD, head);
    continue;
  }
  tail += await run(tail, (head - tail) | 0);
  Atomics.store(counters, TAIL, tail | 0);
  Atomics.notify(counters, TAIL);
}
