/**
 * The write thread: takes ops off the ring in order, writes their bytes into the files' temp files
 * and keeps each file's running SHA-512, so the main thread only copies bytes and answers FUSE.
 */
import { createHash, type Hash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { F_FD, F_KEY, F_LEN, F_OP, F_POS, F_REQ, FIELDS, HEAD, Op, SLOT_BYTES, SLOTS, TAIL, type RingBuffers, type WriterMessage } from './ring.js';

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

function write(state: FileState, key: number, fd: number, pos: number, bytes: Buffer, hashed: boolean): void {
  if (hashed) state.hash?.update(bytes);
  else state.hash = undefined;
  if (state.error !== undefined) return; // the file is already broken: its bytes are never uploaded
  try {
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, pos + done);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    state.error = { code: e.code ?? 'EIO', message: e.message };
    post({ t: 'error', key, ...state.error });
  }
}

function reply(state: FileState | undefined, req: number, wantDigest: boolean): void {
  const digest = wantDigest && state?.hash !== undefined ? state.hash.copy().digest('hex') : undefined;
  post({ t: 'reply', req, ...(digest !== undefined ? { digest } : {}), ...(state?.error ?? {}) });
}

function run(slot: number): void {
  const row = slot * FIELDS;
  const op = meta[row + F_OP] as Op;
  const key = meta[row + F_KEY] as number;
  const len = meta[row + F_LEN] as number;
  switch (op) {
    case Op.WriteHashed:
    case Op.Write: {
      const start = slot * SLOT_BYTES;
      write(stateOf(key), key, meta[row + F_FD] as number, meta[row + F_POS] as number, data.subarray(start, start + len), op === Op.WriteHashed);
      return;
    }
    case Op.Reset:
      files.set(key, { hash: createHash('sha512'), error: undefined });
      return;
    case Op.Unhash:
      stateOf(key).hash = undefined;
      return;
    case Op.Barrier:
      reply(stateOf(key), meta[row + F_REQ] as number, len === 1);
      return;
    case Op.Forget:
      reply(files.get(key), meta[row + F_REQ] as number, false);
      files.delete(key);
      return;
  }
}

// Counters are int32 and wrap; slots follow the unwrapped count (SLOTS divides 2^32).
let tail = 0;
for (;;) {
  const head = Atomics.load(counters, HEAD);
  if (head === (tail | 0)) {
    Atomics.wait(counters, HEAD, head);
    continue;
  }
  run(tail % SLOTS);
  tail++;
  Atomics.store(counters, TAIL, tail | 0);
  Atomics.notify(counters, TAIL);
}
