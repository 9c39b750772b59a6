import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { toFsError } from '../../src/vfs/fs-error.js';
import { GirderError } from '../../src/girder/girder-error.js';
import type { FileRef, RangeStream } from '../../src/girder/store.js';
import { silentLogger } from '../../src/log.js';
import { BlockCache, CachedReader, remoteFileOf, type ReadSession, type RemoteFile } from '../../src/vfs/cache/index.js';
import { MemoryStore } from '../helpers/memory-store.js';
import { sleep, waitFor } from '../helpers/wait.js';

t.test('a block is served as soon as its bytes land, before the whole range request ends', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gm-stream-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logger = silentLogger();
  const cache = await BlockCache.open({ dir, maxBytes: 64 << 20, logger });
  t.teardown(() => cache.close());
  const store = new MemoryStore();
  const data = Buffer.alloc(4 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const { file } = store.seedFile(store.rootId, 'f.bin', data);

  // A range request of several blocks delivers all but its last block, then stalls until told to go on.
  let finish!: () => void;
  const stalled = new Promise<void>((resolve) => (finish = resolve));
  let stalledRequests = 0;
  store.readRange = async (f: FileRef, offset: number, length: number, into: Buffer, intoOffset = 0, onProgress?: (filled: number) => void) => {
    const block = cache.blockSize;
    const half = length > block ? length - block : length;
    data.copy(into, intoOffset, offset, offset + half);
    onProgress?.(half);
    if (half < length) {
      stalledRequests++;
      await stalled;
    }
    data.copy(into, intoOffset + half, offset + half, offset + length);
    onProgress?.(length);
    return Math.min(length, f.size - offset);
  };

  // range requests only: this is about them (streams have their own tests below)
  const reader = new CachedReader(store, cache, { logger, maxRequestBytes: 4 << 20, readAheadBlocks: 16, maxStreams: 0 });
  const session = reader.open({ id: file.id, size: file.size, versionKey: 'v1' });
  const buf = Buffer.alloc(128 << 10);
  // Sequential reads through the first block grow the read-ahead into multi-block requests.
  let pos = 0;
  for (; pos < 2 * cache.blockSize; pos += buf.length) t.equal(await session.read(buf, buf.length, pos), buf.length);
  const next = session.read(buf, buf.length, pos);
  const outcome = await Promise.race([next.then(() => 'served'), new Promise((r) => setTimeout(() => r('waited for the whole request'), 2000))]);
  t.equal(outcome, 'served');
  t.ok(stalledRequests >= 1, "the requests serving it had not ended");
  t.same(buf, data.subarray(pos, pos + buf.length));
  finish();
  const tail = Buffer.alloc(4096);
  t.equal(await session.read(tail, 4096, data.length - 4096), 4096);
  t.same(tail, data.subarray(data.length - 4096));
  session.close();
});

// ---- streamed read-ahead: one pulled stream per sequential reader ----

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;
/** The read-ahead window of these tests, in blocks. */
const WINDOW = 16;

/** A MemoryStore that remembers the ranges asked for, by readRange and by streamRange. */
class RecordingStore extends MemoryStore {
  readonly reads: Array<{ offset: number; length: number }> = [];
  readonly streams: Array<{ offset: number; length: number }> = [];
  override async readRange(file: FileRef, offset: number, length: number, into: Buffer, intoOffset = 0, onProgress?: (filled: number) => void): Promise<number> {
    this.reads.push({ offset, length });
    return super.readRange(file, offset, length, into, intoOffset, onProgress);
  }
  override streamRange(file: FileRef, offset: number, length: number): RangeStream {
    this.streams.push({ offset, length });
    return super.streamRange(file, offset, length);
  }
}

interface Rig {
  store: RecordingStore;
  cache: BlockCache;
  reader: CachedReader;
  seed(name: string, size: number): { file: RemoteFile; data: Buffer };
}

async function rig(t: Test, opts: { maxStreams?: number; streamIdleMs?: number; streamStallMs?: number; noAnswerMs?: number; memoryBytes?: number } = {}): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'gm-stream-'));
  const logger = silentLogger();
  const { memoryBytes, ...readerOpts } = opts;
  const cache = await BlockCache.open({ dir, maxBytes: 256 * MiB, blockSize: BLOCK, logger, ...(memoryBytes !== undefined ? { memoryBytes } : {}) });
  t.teardown(async () => {
    await cache.close();
    await rm(dir, { recursive: true, force: true });
  });
  const store = new RecordingStore({ staleCheck: true });
  const reader = new CachedReader(store, cache, { logger, readAheadBlocks: WINDOW, maxRequestBytes: 4 * BLOCK, ...readerOpts });
  return {
    store, cache, reader,
    seed: (name, size) => {
      const data = randomBytes(size);
      return { file: remoteFileOf(store.seedFile(store.rootId, name, data).file), data };
    },
  };
}

/** A new file read from its start to `upTo`, by then with one stream open, and its session. */
async function streaming(t: Test, r: Rig, name: string, size: number, upTo: number): Promise<{ file: RemoteFile; data: Buffer; s: ReadSession }> {
  const { file, data } = r.seed(name, size);
  const s = r.reader.open(file);
  await readSeq(t, s, data, 0, upTo);
  t.equal(r.store.openStreams.size, 1);
  return { file, data, s };
}

/** Read [from, to) in `step`-byte reads, checking every byte; resolves with the bytes read. */
async function readSeq(t: Test, s: ReadSession, data: Buffer, from: number, to: number, step = 16 * KiB): Promise<number> {
  let n = 0;
  for (let pos = from; pos < to; pos += step) {
    const len = Math.min(step, to - pos);
    const buf = Buffer.alloc(len);
    const got = await s.read(buf, len, pos);
    if (got !== len || !buf.equals(data.subarray(pos, pos + len))) {
      t.fail(`bytes differ at ${pos}`);
      return n;
    }
    n += got;
  }
  return n;
}

t.test('a sequential read streams: one stream for the file, few range requests, every block cached', async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('big.bin', 8 * MiB + 777);
  const s = r.reader.open(file);
  t.equal(await readSeq(t, s, data, 0, data.length), data.length, 'exact bytes');
  s.close();
  t.equal(r.store.streams.length, 1, 'one stream');
  t.ok(r.store.reads.length <= 4, `range requests only while the window grows (${r.store.reads.length})`);
  const fetched = [...r.store.reads, ...r.store.streams].reduce((sum, x) => sum + Math.min(x.length, data.length - x.offset), 0);
  t.equal(fetched, data.length, 'every byte fetched once');
  t.equal(r.store.openStreams.size, 0, 'the stream is closed');
  t.equal(r.reader.openStreams, 0);
  await waitFor(() => r.cache.stats().bytesCached === data.length, { timeoutMs: 10_000, what: 'every block on disk' });

  // again: from the cache, no request
  const before = r.store.calls.length;
  const again = r.reader.open(file);
  t.equal(await readSeq(t, again, data, 0, data.length, 128 * KiB), data.length);
  again.close();
  t.equal(r.store.calls.length, before, 'a cached file costs no request');
});

t.test('the stream runs at most a window ahead of its reader', async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('paced.bin', 16 * MiB);
  const s = r.reader.open(file);
  await readSeq(t, s, data, 0, 2 * MiB);
  await sleep(100);
  const ahead = r.store.bytesRead - 2 * MiB;
  t.ok(ahead <= (WINDOW + 1) * BLOCK, `fetched ${ahead} bytes ahead of the reader (window ${WINDOW * BLOCK})`);
  t.ok(ahead >= (WINDOW / 2) * BLOCK, `but it does read ahead (${ahead} bytes)`);
  t.equal(r.store.openStreams.size, 1, 'the stream waits, open');
  await readSeq(t, s, data, 2 * MiB, data.length);
  s.close();
  t.equal(r.store.openStreams.size, 0);
});

t.test('a seek closes the stream; the read after it fetches only its own block', async (t) => {
  const r = await rig(t);
  const { data, s } = await streaming(t, r, 'seek.bin', 16 * MiB, 2 * MiB);
  const reads = r.store.reads.length;
  await readSeq(t, s, data, 12 * MiB + 5, 12 * MiB + 5 + 4 * KiB);
  t.equal(r.store.openStreams.size, 0, 'closed by the seek');
  t.equal(r.reader.openStreams, 0);
  t.same(r.store.reads.slice(reads), [{ offset: 12 * MiB, length: BLOCK }], 'one block for the random read');
  // what the closed stream had claimed but not delivered is fetched again when read
  await readSeq(t, s, data, 2 * MiB, 3 * MiB, 4 * KiB);
  await readSeq(t, s, data, 3 * MiB + 100, 3 * MiB + 200);
  s.close();
});

t.test('closing the file closes its stream', async (t) => {
  const r = await rig(t);
  const { file, data, s } = await streaming(t, r, 'close.bin', 16 * MiB, 3 * MiB);
  s.close();
  t.equal(r.store.openStreams.size, 0);
  t.equal(r.reader.openStreams, 0);
  // a new reader of the same file streams again and gets the same bytes
  const again = r.reader.open(file);
  t.equal(await readSeq(t, again, data, 0, data.length, 64 * KiB), data.length);
  again.close();
  t.equal(r.store.openStreams.size, 0);
});

t.test('an idle stream is closed; reading on works', async (t) => {
  const r = await rig(t, { streamIdleMs: 40 });
  const { data, s } = await streaming(t, r, 'idle.bin', 8 * MiB, MiB);
  await waitFor(() => r.store.openStreams.size === 0, { timeoutMs: 5_000, intervalMs: 10, what: 'the idle stream to close' });
  t.equal(r.reader.openStreams, 0);
  t.equal(await readSeq(t, s, data, MiB, data.length), data.length - MiB, 'the rest, exact');
  s.close();
  t.equal(r.store.openStreams.size, 0);
});

t.test('beyond maxStreams, sequential readers use range requests', async (t) => {
  const r = await rig(t, { maxStreams: 1 });
  const a = r.seed('a.bin', 16 * MiB);
  const b = r.seed('b.bin', 6 * MiB);
  const sa = r.reader.open(a.file);
  await readSeq(t, sa, a.data, 0, 2 * MiB);
  t.equal(r.reader.openStreams, 1, "a's stream is open (waiting for its reader)");
  const reads = r.store.reads.length;
  const sb = r.reader.open(b.file);
  t.equal(await readSeq(t, sb, b.data, 0, b.data.length), b.data.length);
  sb.close();
  t.equal(r.store.streams.length, 1, 'no second stream');
  t.ok(r.store.reads.length - reads > 6, `b was read with range requests (${r.store.reads.length - reads})`);
  await readSeq(t, sa, a.data, 2 * MiB, a.data.length);
  sa.close();
  t.equal(r.store.openStreams.size, 0);
});

t.test("another reader of a block the stream has claimed waits for it: no request of its own", async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('shared.bin', 8 * MiB);
  const s = r.reader.open(file);
  // the first reads grow the window with range requests; the stream then starts, held at the gate
  const gate = r.store.gate('streamRange');
  let pos = 0;
  while (r.store.streams.length === 0) {
    await readSeq(t, s, data, pos, pos + 16 * KiB);
    pos += 16 * KiB;
  }
  const claimed = r.store.streams[0] as { offset: number };
  const reads = r.store.reads.length;
  const other = r.reader.open(file);
  const want = claimed.offset + BLOCK + 100;
  const pending = readSeq(t, other, data, want, want + 1000);
  await gate.reached;
  await sleep(20);
  t.equal(r.store.reads.length, reads, 'the other reader made no request');
  gate.release();
  t.equal(await pending, 1000, 'and got its bytes from the stream');
  t.equal(await readSeq(t, s, data, pos, data.length), data.length - pos);
  other.close();
  s.close();
  t.equal(r.store.reads.length, reads, 'still no other request');
});

t.test('a stream stops before blocks already cached, and a new one starts after them', async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('holes.bin', 8 * MiB);
  // cache blocks [48, 64) = [3 MiB, 4 MiB), each by a lone read (no read-ahead)
  for (let b = 48; b < 64; b++) {
    const one = r.reader.open(file);
    await readSeq(t, one, data, b * BLOCK + 10, b * BLOCK + 20);
    one.close();
  }
  await waitFor(() => r.cache.stats().bytesCached === MiB, { timeoutMs: 10_000, intervalMs: 10, what: 'the MiB cached' });
  const fetchedBefore = r.store.bytesRead;
  r.store.streams.length = 0;
  const s = r.reader.open(file);
  t.equal(await readSeq(t, s, data, 0, data.length), data.length);
  s.close();
  t.equal(r.store.bytesRead - fetchedBefore, 7 * MiB, 'the cached MiB was not fetched again');
  t.equal(r.store.streams.length, 2, 'a stream before the cached run and one after it');
  t.ok(r.store.streams.every((x) => x.offset + x.length <= 3 * MiB || x.offset >= 4 * MiB), 'no stream covers cached blocks');
});

t.test('a store error ends the stream: the readers waiting on it get the error, the next read works', async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('fail.bin', 8 * MiB);
  const boom = new GirderError('Internal error', 500, 'internal');
  // the stream starts, held at the gate, then fails
  const gate = r.store.gate('streamRange');
  r.store.failNext('streamRange', boom);
  const s = r.reader.open(file);
  let pos = 0;
  while (r.store.streams.length === 0) {
    await readSeq(t, s, data, pos, pos + 16 * KiB);
    pos += 16 * KiB;
  }
  const claimed = r.store.streams[0] as { offset: number };
  // a read of a block the stream has claimed waits for the stream
  const waiting = readSeq(t, s, data, claimed.offset, claimed.offset + 16 * KiB).then(() => 'no error', (err: unknown) => err);
  await gate.reached;
  gate.release();
  t.equal(await waiting, boom, 'the error of the stream');
  t.equal(r.store.openStreams.size, 0, 'the failed stream is closed');
  t.equal(r.reader.openStreams, 0);
  t.equal(await readSeq(t, s, data, claimed.offset, data.length), data.length - claimed.offset, 'reading on works');
  s.close();
});

t.test('a file that changed under a stream: ESTALE, never other bytes', async (t) => {
  const r = await rig(t);
  const { file, data, s } = await streaming(t, r, 'changing.bin', 16 * MiB, 2 * MiB);
  const dir = await mkdtemp(join(tmpdir(), 'gm-stream-new-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const next = join(dir, 'next');
  await writeFile(next, randomBytes(5 * MiB));
  await r.store.replaceFile(file.id, { path: next, size: 5 * MiB });
  let outcome: unknown = 'no error';
  for (let pos = 2 * MiB; pos < data.length; pos += 16 * KiB) {
    const buf = Buffer.alloc(16 * KiB);
    const err = await s.read(buf, buf.length, pos).then(
      (n) => (n === buf.length && buf.equals(data.subarray(pos, pos + n)) ? undefined : new Error(`other bytes at ${pos}`)),
      (e: unknown) => e,
    );
    if (err !== undefined) {
      outcome = err;
      break;
    }
  }
  t.ok(outcome instanceof GirderError && outcome.type === 'stale', `a stale error (${String(outcome)})`);
  t.equal(toFsError(outcome).errno, 'ESTALE');
  s.close();
  t.equal(r.store.openStreams.size, 0);
});

t.test('a sequential reader does not push the blocks fetched ahead of it out of memory', async (t) => {
  // memory for the window and one request's worth of blocks, as the reader sizes it
  const r = await rig(t, { memoryBytes: (WINDOW + 4) * BLOCK });
  const { file, data } = r.seed('memory.bin', 24 * MiB);
  let diskReads = 0;
  const readFromDisk = r.cache.readFromDisk.bind(r.cache);
  r.cache.readFromDisk = (...args: Parameters<BlockCache['readFromDisk']>) => {
    diskReads++;
    return readFromDisk(...args);
  };
  const s = r.reader.open(file);
  // reads that let the stream run a window ahead now and then, as a reader slower than the network does
  for (let pos = 0; pos < data.length; pos += 256 * KiB) {
    await readSeq(t, s, data, pos, pos + 256 * KiB, 32 * KiB);
    if (pos % MiB === 0) await sleep(5);
  }
  s.close();
  t.equal(diskReads, 0, 'no block was read back from disk');
});

t.test('a stream that stops sending while its last blocks are awaited: EIO after the stall time, never a hang', async (t) => {
  // no idle close to come to the rescue; a stall is 300 ms
  const r = await rig(t, { streamIdleMs: 600_000, streamStallMs: 300, noAnswerMs: 200 });
  const { file, data } = r.seed('stalls.bin', 2 * MiB);
  // the first stream serves 1.5 MiB, then its reads never settle (a connection that died unnoticed)
  const streamRange = r.store.streamRange.bind(r.store);
  let served = 0;
  let first = true;
  r.store.streamRange = (f: FileRef, offset: number, length: number): RangeStream => {
    const inner = streamRange(f, offset, length);
    if (!first) return inner;
    first = false;
    let closed!: (err: unknown) => void;
    const gone = new Promise<number>((_resolve, reject) => (closed = reject));
    gone.catch(() => undefined);
    return {
      read: (into: Buffer) => {
        if (offset + served >= 1.5 * MiB) return gone;
        served += into.length;
        return inner.read(into);
      },
      close: () => {
        closed(new GirderError('the range stream was closed', 0, 'aborted'));
        inner.close();
      },
    };
  };
  const s = r.reader.open(file);
  let outcome: unknown = 'no error';
  for (let pos = 0; pos < data.length; pos += 16 * KiB) {
    const buf = Buffer.alloc(16 * KiB);
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('stuck'), 5_000)));
    const got = await Promise.race([s.read(buf, buf.length, pos).then((n) => n, (e: unknown) => e), stuck]);
    clearTimeout(timer);
    if (got !== buf.length) {
      outcome = got;
      break;
    }
    if (!buf.equals(data.subarray(pos, pos + buf.length))) {
      outcome = `other bytes at ${pos}`;
      break;
    }
  }
  t.ok(outcome instanceof Error && toFsError(outcome).errno === 'EIO', `the reader gets EIO (${String(outcome)})`);
  t.equal(r.reader.openStreams, 0, 'the stalled stream is closed');
  t.equal(r.store.openStreams.size, 0);
  const streams = r.store.calls.filter((c) => c === 'streamRange').length;
  const again = await s.read(Buffer.alloc(KiB), KiB, 1.5 * MiB).then(() => 'read', (e: unknown) => e);
  t.ok(again instanceof Error && toFsError(again).errno === 'EIO', 'the read right after (the kernel\'s) fails at once');
  t.equal(r.store.calls.filter((c) => c === 'streamRange').length, streams, 'without asking the server again');
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.equal(await readSeq(t, s, data, 1.5 * MiB, data.length), data.length - 1.5 * MiB, 'a while later reading on works');
  s.close();
});

t.test('two sequential readers of one file, the second catching up with the first: each byte fetched about once', async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('twice.bin', 16 * MiB);
  const a = r.reader.open(file);
  const b = r.reader.open(file);
  const step = 64 * KiB;
  const readAt = async (s: ReadSession, pos: number): Promise<void> => {
    const buf = Buffer.alloc(Math.min(step, data.length - pos));
    const n = await s.read(buf, buf.length, pos);
    if (n !== buf.length || !buf.equals(data.subarray(pos, pos + n))) t.fail(`bytes differ at ${pos}`);
  };
  // a starts alone; b starts later, reads what a fetched at twice a's pace, then goes on a block
  // ahead of it: from then on each stream meets blocks the other one claimed
  let pa = 0;
  let pb = 0;
  for (; pa < 2 * MiB; pa += step) await readAt(a, pa);
  while (pa < data.length || pb < data.length) {
    if (pb < data.length) {
      await readAt(b, pb);
      pb += step;
    }
    if (pb <= pa && pb < data.length) {
      await readAt(b, pb);
      pb += step;
    }
    if (pa < data.length) {
      await readAt(a, pa);
      pa += step;
    }
  }
  a.close();
  b.close();
  const fetched = r.store.bytesRead;
  t.ok(fetched <= data.length * 1.05, `fetched ${(fetched / data.length).toFixed(2)} times the file (${r.store.streams.length} streams, ${r.store.reads.length} range requests)`);
  t.ok(r.store.streams.length >= 2, 'both readers streamed');
  t.equal(r.store.openStreams.size, 0);
  t.equal(r.reader.openStreams, 0);
});

t.test('a block fetched by a range request ahead of a stream ends the stream there; a new one starts after it', async (t) => {
  const r = await rig(t);
  const { file, data } = r.seed('hole-ahead.bin', 8 * MiB);
  const s = r.reader.open(file);
  await readSeq(t, s, data, 0, MiB);
  t.equal(r.store.streams.length, 1, 'streaming');
  // another reader reads one block at 4 MiB: a range request, inside the range of the stream
  const other = r.reader.open(file);
  await readSeq(t, other, data, 4 * MiB + 10, 4 * MiB + 20);
  other.close();
  t.equal(await readSeq(t, s, data, MiB, data.length), data.length - MiB, 'exact bytes');
  s.close();
  t.equal(r.store.bytesRead, data.length, 'no byte fetched twice');
  t.equal(r.store.streams.length, 2, 'the stream stopped before the block; another started after it');
  t.equal(r.store.openStreams.size, 0);
});
