// The write thread: bytes reach the file in order, the running SHA-512 matches, backpressure holds
// the main thread once the ring is full, and a failed pwrite is reported (soon, and at the barrier).
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm, statfs, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import t, { type Test } from 'tap';
import { promisify } from 'node:util';
import { openUncached } from '../../src/uncached-io.js';
import type { FsError } from '../../src/errors.js';
import { LocalWriter } from '../../src/vfs/local-writes/index.js';
import { HEAD, SLOT_BYTES, SLOTS, TAIL } from '../../src/vfs/local-writes/ring.js';

const sha512 = (b: Buffer): string => createHash('sha512').update(b).digest('hex');

/** A writer of its own and a temp dir whose files (opened w+ unless said) are closed and removed after the test. */
async function rig(t: Test): Promise<{ writer: LocalWriter; dir: string; file: (name: string, flags?: string) => Promise<FileHandle> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'local-writes-'));
  const handles: FileHandle[] = [];
  t.teardown(async () => {
    for (const fh of handles) await fh.close();
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (name: string, flags = 'w+'): Promise<FileHandle> => {
    const fh = await open(path.join(dir, name), flags);
    handles.push(fh);
    return fh;
  };
  return { writer: new LocalWriter(), dir, file };
}

t.test('front-to-back writes: exact bytes and hash, far more data than the ring holds', async (t) => {
  const { writer, dir, file } = await rig(t);
  const fh = await file('a');
  const key = writer.register(() => t.fail('no write fails'));
  const content = randomBytes(SLOTS * SLOT_BYTES * 3 + 12345);
  // pieces of odd sizes, some bigger than a slot, all submitted before any is awaited
  const sizes = [1, 4096, SLOT_BYTES, SLOT_BYTES * 2 + 7, 999_999];
  const pending: Array<Promise<number>> = [];
  for (let pos = 0, i = 0; pos < content.length; i++) {
    const len = Math.min(sizes[i % sizes.length] as number, content.length - pos);
    pending.push(writer.write(key, { fd: fh.fd, direct: -1 }, pos, content.subarray(pos, pos + len), true));
    pos += len;
  }
  const seqs = await Promise.all(pending);
  t.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)), 'ops are numbered in submission order');
  await writer.reached(seqs.at(-1) as number);
  t.ok((await readFile(path.join(dir, 'a'))).equals(content), 'the file holds exactly the bytes written');
  const { digest, error } = await writer.barrier(key, true);
  t.equal(error, undefined);
  t.equal(digest, sha512(content), 'the running hash is the SHA-512 of the file');
});

const TMPFS_MAGIC = 0x01021994;

/** Bytes of the file in the page cache (util-linux fincore). */
async function cachedBytes(file: string): Promise<number> {
  const { stdout } = await promisify(execFile)('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(stdout.trim());
}

t.test('direct writes: whole aligned runs go around the page cache, the rest through it; exact bytes and hash', async (t) => {
  const { writer, dir, file } = await rig(t);
  const name = path.join(dir, 'd');
  const fh = await file('d');
  const direct = await openUncached(name, constants.O_WRONLY);
  if (direct === undefined) return t.plan(0, `${tmpdir()} has no O_DIRECT`);
  t.teardown(() => direct.close());
  t.equal(await writer.canWriteDirect(direct.fd), true, 'the ring has an offset the kernel takes direct writes from');
  t.equal((await fh.stat()).size, 0, 'finding it leaves the file empty');
  const fds = { fd: fh.fd, direct: direct.fd };
  const key = writer.register(() => t.fail('no write fails'));
  const content = randomBytes(8 * 1024 * 1024 + 5000);
  const pending: Array<Promise<number>> = [];
  for (let pos = 0; pos < content.length; pos += SLOT_BYTES) pending.push(writer.write(key, fds, pos, content.subarray(pos, pos + SLOT_BYTES), true));
  await Promise.all(pending);
  const { digest, error } = await writer.barrier(key, true);
  t.equal(error, undefined);
  t.equal(digest, sha512(content), 'the hash covers direct and cached writes alike');
  const onTmpfs = (await statfs(dir)).type === TMPFS_MAGIC; // tmpfs takes O_DIRECT (Linux 6.6+) but is all page cache
  const cached = await cachedBytes(name);
  if (!onTmpfs) t.ok(cached <= 64 * 1024, `only the unaligned tail went through the page cache (${cached} bytes cached of ${content.length})`);
  t.ok((await readFile(name)).equals(content), 'the file holds exactly the bytes written');

  // a cached write, then a direct one over it, then a cached one inside that: the kernel keeps them coherent
  const mixed = await file('m');
  const mixedDirect = await openUncached(path.join(dir, 'm'), constants.O_WRONLY);
  if (mixedDirect === undefined) return t.fail('no O_DIRECT');
  t.teardown(() => mixedDirect.close());
  const k2 = writer.register(() => t.fail('no write fails'));
  const mfds = { fd: mixed.fd, direct: mixedDirect.fd };
  const block = randomBytes(SLOT_BYTES);
  await writer.write(k2, mfds, 0, Buffer.from('cached first'), true);
  await writer.write(k2, mfds, 0, block, false);
  await writer.write(k2, mfds, 10, Buffer.from('inside'), false);
  await writer.barrier(k2, false);
  const expected = Buffer.from(block);
  Buffer.from('inside').copy(expected, 10);
  t.ok((await readFile(path.join(dir, 'm'))).equals(expected), 'the last write wins everywhere');

  // small writes, even aligned and front to back, stay in the page cache: a direct write waits for the device
  const small = await file('s');
  const smallDirect = await openUncached(path.join(dir, 's'), constants.O_WRONLY);
  if (smallDirect === undefined) return t.fail('no O_DIRECT');
  t.teardown(() => smallDirect.close());
  const k3 = writer.register(() => t.fail('no write fails'));
  const pieces = randomBytes(64 * 4096);
  for (let pos = 0; pos < pieces.length; pos += 4096) await writer.write(k3, { fd: small.fd, direct: smallDirect.fd }, pos, pieces.subarray(pos, pos + 4096), true);
  t.equal((await writer.barrier(k3, true)).digest, sha512(pieces));
  if (!onTmpfs) t.equal(await cachedBytes(path.join(dir, 's')), pieces.length, '4 KiB writes went through the page cache');
  t.ok((await readFile(path.join(dir, 's'))).equals(pieces));
});

t.test('finding the direct offset while the writes of another file fill the ring moves no queued bytes', async (t) => {
  const { writer, dir, file } = await rig(t);
  const a = await file('a');
  const key = writer.register(() => t.fail('no write fails'));
  const content = randomBytes(SLOTS * SLOT_BYTES * 3);
  const pending: Array<Promise<number>> = [];
  for (let pos = 0; pos < content.length; pos += SLOT_BYTES) pending.push(writer.write(key, { fd: a.fd, direct: -1 }, pos, content.subarray(pos, pos + SLOT_BYTES), true));
  await file('b');
  const direct = await openUncached(path.join(dir, 'b'), constants.O_WRONLY);
  if (direct === undefined) return t.plan(0, `${tmpdir()} has no O_DIRECT`);
  t.teardown(() => direct.close());
  const found = writer.canWriteDirect(direct.fd); // while the ring is full of a's writes
  await Promise.all(pending);
  t.equal(await found, true);
  t.equal((await writer.barrier(key, true)).digest, sha512(content), 'every queued write kept its bytes');
  t.ok((await readFile(path.join(dir, 'a'))).equals(content));
});

t.test('two files written at once: a write bigger than a slot is never split by another file', async (t) => {
  const { writer, file } = await rig(t);
  const a = await file('a');
  const b = await file('b');
  const ka = writer.register(() => undefined);
  const kb = writer.register(() => undefined);
  const ca = randomBytes(5 * SLOT_BYTES + 3);
  const cb = randomBytes(3 * SLOT_BYTES + 1);
  const writes: Array<Promise<number>> = [];
  for (let i = 0; i < 40; i++) {
    writes.push(writer.write(ka, { fd: a.fd, direct: -1 }, i * ca.length, ca, true));
    writes.push(writer.write(kb, { fd: b.fd, direct: -1 }, i * cb.length, cb, true));
  }
  await Promise.all(writes);
  const [ra, rb] = await Promise.all([writer.barrier(ka, true), writer.barrier(kb, true)]);
  t.equal(ra.digest, sha512(Buffer.concat(Array(40).fill(ca) as Buffer[])));
  t.equal(rb.digest, sha512(Buffer.concat(Array(40).fill(cb) as Buffer[])));
});

t.test('an out-of-order write drops the hash; reset starts a new one', async (t) => {
  const { writer, file } = await rig(t);
  const fh = await file('a');
  const key = writer.register(() => undefined);
  await writer.write(key, { fd: fh.fd, direct: -1 }, 0, Buffer.from('hello '), true);
  await writer.write(key, { fd: fh.fd, direct: -1 }, 100, Buffer.from('far'), false);
  t.equal((await writer.barrier(key, true)).digest, undefined, 'no hash after a write elsewhere');
  await writer.write(key, { fd: fh.fd, direct: -1 }, 6, Buffer.from('more'), true);
  t.equal((await writer.barrier(key, true)).digest, undefined, 'and it does not come back');
  await fh.truncate(0);
  await writer.reset(key);
  await writer.write(key, { fd: fh.fd, direct: -1 }, 0, Buffer.from('again'), true);
  t.equal((await writer.barrier(key, true)).digest, sha512(Buffer.from('again')), 'reset: a new hash from byte 0');
  t.equal((await writer.barrier(writer.register(() => undefined), true)).digest, sha512(Buffer.alloc(0)), 'a file never written hashes as empty');
});

t.test('a failed pwrite: onError hears of it, the barrier reports it, later writes of the file are skipped, reset clears it', async (t) => {
  const { writer, file } = await rig(t);
  await (await file('ro')).close();
  const readOnly = await file('ro', 'r');
  const heard: FsError[] = [];
  const key = writer.register((err) => heard.push(err));
  await writer.write(key, { fd: readOnly.fd, direct: -1 }, 0, Buffer.from('x'), true);
  await writer.write(key, { fd: readOnly.fd, direct: -1 }, 1, Buffer.from('y'), true);
  const { error } = await writer.barrier(key, false);
  t.equal(error?.errno, 'EBADF', 'the barrier gives the errno of the failed write');
  t.equal(heard.length, 1, 'onError heard once, for the first failure');
  t.equal(heard[0]?.errno, 'EBADF');
  await writer.reset(key);
  t.equal((await writer.barrier(key, false)).error, undefined, 'reset: the failure no longer matters');
  const forgotten = await writer.forget(key);
  t.equal(forgotten.error, undefined);
});

/** A write thread that does nothing by itself: the test finishes ops by moving TAIL, as worker.js does. */
class SteppedThread extends EventEmitter {
  counters: Int32Array | undefined;
  ref(): void {}
  unref(): void {}
  /** The thread finished every op published so far, and (when `notify`) woke the waiters. */
  finishAll(notify: boolean): void {
    const c = this.counters as Int32Array;
    Atomics.store(c, TAIL, Atomics.load(c, HEAD));
    if (notify) Atomics.notify(c, TAIL);
  }
}

/** Finishes the thread's ops right after the writer's next read of TAIL: the interleaving of issue 11's hang. */
class RacingWriter extends LocalWriter {
  raceOnNextLoad: SteppedThread | undefined;
  protected override loadTail(): number {
    const seen = super.loadTail();
    const thread = this.raceOnNextLoad;
    this.raceOnNextLoad = undefined;
    // The thread finishes between the writer's check and its wait, and its notify finds no waiter yet.
    thread?.finishAll(true);
    return seen;
  }
}

function steppedWriter(): { writer: RacingWriter; thread: SteppedThread } {
  const thread = new SteppedThread();
  const writer = new RacingWriter((ring) => {
    thread.counters = new Int32Array(ring.counters);
    return thread;
  });
  return { writer, thread };
}

/** Resolves with whether `p` settled within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('reached(): an op the thread finishes between the check and the wait still wakes the reader (issue 11 hang)', async (t) => {
  const { writer, thread } = steppedWriter();
  const key = writer.register(() => t.fail('no write fails'));
  const seq = await writer.write(key, { fd: -1, direct: -1 }, 0, Buffer.from('x'), true);
  writer.raceOnNextLoad = thread;
  t.ok(await settlesWithin(writer.reached(seq), 2000), 'the read waiting on the write is answered');
});

t.test('a full ring: a slot freed between the check and the wait still lets the queued write in', async (t) => {
  const { writer, thread } = steppedWriter();
  const key = writer.register(() => t.fail('no write fails'));
  for (let i = 0; i < SLOTS; i++) await writer.write(key, { fd: -1, direct: -1 }, i, Buffer.from('x'), true);
  writer.raceOnNextLoad = thread;
  t.ok(await settlesWithin(writer.write(key, { fd: -1, direct: -1 }, SLOTS, Buffer.from('y'), true), 2000), 'the write past the full ring is taken');
});

t.test('a write queued behind a full ring whose buffer was taken back (answered EIO) is refused, not written as zeros', async (t) => {
  const { writer, file, dir } = await rig(t);
  const fh = await file('q');
  const key = writer.register(() => t.fail('no write fails'));
  const fill = randomBytes(SLOTS * SLOT_BYTES);
  const pending: Array<Promise<number>> = [];
  for (let pos = 0; pos < fill.length; pos += SLOT_BYTES) pending.push(writer.write(key, { fd: fh.fd, direct: -1 }, pos, fill.subarray(pos, pos + SLOT_BYTES), true));
  const kernelMemory = new ArrayBuffer(12);
  const kernelBuffer = Buffer.from(kernelMemory);
  kernelBuffer.write('queued bytes');
  const queued = writer.write(key, { fd: fh.fd, direct: -1 }, fill.length, kernelBuffer, true);
  structuredClone(kernelMemory, { transfer: [kernelMemory] }); // detached, as fuse-native does once a write is answered
  await Promise.all(pending);
  const refused = await queued.then(() => undefined, (err: unknown) => err);
  t.equal((refused as FsError | undefined)?.errno, 'EIO', 'the queued write fails');
  await writer.barrier(key, false);
  t.equal((await readFile(path.join(dir, 'q'))).length, fill.length, 'nothing of it reached the file');
});

t.test('startLocalWriter resolves with the write thread running, in a process with nothing else to do', async (t) => {
  // The thread is unref'd: awaiting its start must keep the process alive (the daemon awaits it
  // before it mounts; it once ended there, exit code 0, without a word).
  const module = new URL('../../src/vfs/local-writes/index.js', import.meta.url).href;
  const script = `const { startLocalWriter } = await import(${JSON.stringify(module)}); await startLocalWriter(); process.stdout.write('running');`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  t.equal(stdout, 'running');
});
