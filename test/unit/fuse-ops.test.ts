// fuse-native handlers (src/fuse/ops.ts) and the glue fixes (src/fuse/fuse-class.ts), called
// directly: no mount.
import t from 'tap';
import type Fuse from 'fuse-native';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { FsError } from '../../src/errors.js';
import { EIO, ENODATA, ENOENT, ERANGE, errnoOf, fuseErrno } from '../../src/fuse/errno.js';
import { GirderFuse } from '../../src/fuse/fuse-class.js';
import { CREATE_FLAGS, buildOperations, toStat } from '../../src/fuse/ops.js';
import { silentLogger, type Logger } from '../../src/log.js';
import type { FileSystem } from '../../src/vfs/api.js';
import { MemoryFs } from '../helpers/memory-fs.js';

type Ops = Required<Pick<Fuse.Operations,
  'getattr' | 'fgetattr' | 'readdir' | 'open' | 'create' | 'read' | 'write' | 'release' | 'unlink' | 'rmdir' |
  'mkdir' | 'utimens' | 'chown' | 'setxattr' | 'getxattr' | 'listxattr' | 'statfs'>>;

function opsFor(fs: FileSystem, logger: Logger = silentLogger()): Ops {
  return buildOperations(fs, logger) as Ops;
}

/** Calls a handler and resolves with every argument list its callback got (after a settle). */
async function answers(call: (cb: (...args: unknown[]) => void) => void): Promise<unknown[][]> {
  const got: unknown[][] = [];
  call((...args) => got.push(args));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return got;
}

function capturingLogger(): { logger: Logger; lines: () => Array<{ level: number } & Record<string, unknown>> } {
  const out: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, done) { out.push(chunk.toString()); done(); } });
  const logger = pino({ level: 'trace' }, stream);
  return { logger, lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number } & Record<string, unknown>) };
}

t.test('errno names map to negative numbers; anything else is EIO', async (t) => {
  t.equal(fuseErrno('ENOENT'), -2);
  t.equal(fuseErrno('ENOTEMPTY'), -39);
  t.equal(fuseErrno('EACCES'), -13);
  t.equal(fuseErrno('ENODATA'), -61);
  t.equal(fuseErrno('ETIMEDOUT'), -110);
  t.equal(errnoOf(new FsError('EROFS')), -30);
  t.equal(errnoOf(new Error('x')), EIO);
  t.equal(errnoOf('string'), EIO);
  t.equal(EIO, -5);
});

t.test('getattr, readdir with . and .., statfs', async (t) => {
  const fs = new MemoryFs();
  await fs.mkdir('/d', 0o755);
  const ops = opsFor(fs);
  const [[code, stat]] = (await answers((cb) => ops.getattr('/d', cb))) as [[number, Fuse.Stat]];
  t.equal(code, 0);
  t.equal(stat.mode, 0o040755);
  t.type(stat.mtime, 'number');
  t.same(await answers((cb) => ops.readdir('/', cb)), [[0, ['.', '..', 'd']]]);
  t.same(await answers((cb) => ops.getattr('/nope', cb)), [[ENOENT, undefined]]);
  const [[, statfs]] = (await answers((cb) => ops.statfs('/', cb))) as [[number, Fuse.Statfs]];
  t.equal(statfs.namemax, 255);
  t.equal(statfs.frsize, statfs.bsize);
});

t.test('toStat clamps what fuse-native cannot carry', async (t) => {
  const s = toStat({ mode: 0o100644, size: 1000.7, mtime: -5, atime: NaN, ctime: 1.5e12 + 0.4, nlink: 0, uid: 1, gid: 2 });
  t.equal(s.size, 1000);
  t.equal(s.mtime, 0);
  t.equal(s.atime, 0);
  t.equal(s.ctime, 1.5e12);
  t.equal(s.nlink, 1);
  t.equal(s.blocks, 2);
});

t.test('create passes O_CREAT|O_RDWR; read fills the given buffer; write reports bytes', async (t) => {
  const seen: number[] = [];
  const fs = new MemoryFs();
  const create = fs.create.bind(fs);
  fs.create = async (path, mode, flags) => {
    seen.push(flags);
    return create(path, mode, flags);
  };
  const ops = opsFor(fs);
  const [[code, fh]] = (await answers((cb) => ops.create('/f', 0o644, cb))) as [[number, number]];
  t.equal(code, 0);
  t.same(seen, [CREATE_FLAGS]);
  const data = Buffer.from('hello world');
  t.same(await answers((cb) => ops.write('/f', fh, data, data.length, 0, cb)), [[11, undefined]]);
  const into = Buffer.alloc(64, 0xff);
  t.same(await answers((cb) => ops.read('/f', fh, into, 64, 6, cb)), [[5, undefined]]);
  t.equal(into.subarray(0, 5).toString(), 'world');
  t.same(await answers((cb) => ops.release('/f', fh, cb)), [[0, undefined]]);
  t.equal(fs.openHandles(), 0);
});

t.test('a read the FileSystem serves at once from memory goes straight into the kernel buffer; one that must wait goes through read', async (t) => {
  const fs = new MemoryFs();
  let reads = 0;
  fs.read = async (_fh, into, length) => {
    reads++;
    into.fill(0x62, 0, length);
    return length;
  };
  fs.readNow = (_fh, into, length, position) => {
    if (position > 0) return undefined;
    into.fill(0x61, 0, length);
    return length;
  };
  const ops = opsFor(fs);
  const kernel = Buffer.alloc(4);
  const got: unknown[][] = [];
  ops.read('/f', 1, kernel, 4, 0, (...args) => got.push(args));
  t.same(got, [[4]], 'answered before the handler returned');
  t.equal(kernel.toString(), 'aaaa');
  t.equal(reads, 0);
  t.same(await answers((cb) => ops.read('/f', 1, kernel, 4, 8, cb)), [[4, undefined]]);
  t.equal(kernel.toString(), 'bbbb', 'the rest: read');
  fs.readNow = () => 9;
  t.same(await answers((cb) => ops.read('/f', 1, kernel, 4, 0, cb)), [[EIO]], 'a count beyond the read is EIO');
  fs.readNow = () => {
    throw new Error('a bug');
  };
  t.same(await answers((cb) => ops.read('/f', 1, kernel.fill(0), 4, 0, cb)), [[4, undefined]], 'a throw is no answer: read serves it');
  t.equal(kernel.toString(), 'bbbb');
});

t.test('a FileSystem that lies about byte counts or handles gets EIO, not a bad answer', async (t) => {
  const fs = new MemoryFs();
  fs.read = async () => 100;
  fs.open = async () => -1;
  const ops = opsFor(fs);
  t.same(await answers((cb) => ops.read('/f', 1, Buffer.alloc(10), 10, 0, cb)), [[EIO, undefined]]);
  t.same(await answers((cb) => ops.open('/f', 0, cb)), [[EIO, undefined]]);
});

t.test('errors: FsError maps, anything else is EIO and logged, synchronous throws included', async (t) => {
  const fs = new MemoryFs();
  await fs.mkdir('/d', 0o755);
  await fs.mkdir('/d/e', 0o755);
  const { logger, lines } = capturingLogger();
  const ops = opsFor(fs, logger);
  t.same(await answers((cb) => ops.rmdir('/d', cb)), [[fuseErrno('ENOTEMPTY'), undefined]]);
  fs.unlink = async () => { throw new TypeError('boom'); };
  t.same(await answers((cb) => ops.unlink('/x', cb)), [[EIO, undefined]]);
  fs.mkdir = () => { throw new Error('sync boom'); };
  t.same(await answers((cb) => ops.mkdir('/y', 0o755, cb)), [[EIO, undefined]]);
  const errors = lines().filter((l) => l.level === 50);
  t.equal(errors.length, 2, 'both unexpected errors logged');
  t.match(errors[0], { op: 'unlink', path: '/x' });
  t.ok(lines().some((l) => l.level === 10 && l.op === 'rmdir'), 'ops traced');
  t.notOk(lines().some((l) => l.level > 10 && l.level < 50), 'nothing between trace and error');
});

t.test('a callback is answered once even when the FileSystem settles twice', async (t) => {
  const fs = new MemoryFs();
  fs.unlink = () => ({
    then(ok: (v: void) => void, fail: (e: unknown) => void) { ok(); fail(new Error('again')); },
  }) as unknown as Promise<void>;
  const ops = opsFor(fs);
  t.equal((await answers((cb) => ops.unlink('/f', cb))).length, 1);
});

t.test('utimens: omitted times (UINT64_MAX from the patched addon) keep their value', async (t) => {
  const fs = new MemoryFs();
  const ops = opsFor(fs);
  const [[, fh]] = (await answers((cb) => ops.create('/f', 0o644, cb))) as [[number, number]];
  await answers((cb) => ops.release('/f', fh, cb));
  const omit = 2 ** 64;
  t.same(await answers((cb) => ops.utimens('/f', 1000, 2000, cb)), [[0, undefined]]);
  await answers((cb) => ops.utimens('/f', omit, 5000, cb));
  await answers((cb) => ops.utimens('/f', 7000, omit, cb));
  t.same(fs.utimensCalls.map((c) => [c.atime, c.mtime]), [[1000, 2000], [1000, 5000], [7000, 5000]]);
});

t.test('chown: -1 leaves that id unchanged', async (t) => {
  const fs = new MemoryFs();
  const ops = opsFor(fs);
  await answers((cb) => ops.mkdir('/d', 0o755, cb));
  await answers((cb) => ops.chown('/d', 10, 20, cb));
  await answers((cb) => ops.chown('/d', 0xffffffff, 30, cb));
  const attr = await fs.getattr('/d');
  t.same([attr.uid, attr.gid], [10, 30]);
});

t.test('setxattr copies the kernel buffer and honours XATTR_CREATE / XATTR_REPLACE', async (t) => {
  const fs = new MemoryFs();
  const ops = opsFor(fs);
  await answers((cb) => ops.mkdir('/d', 0o755, cb));
  const value = Buffer.from('blue');
  t.same(await answers((cb) => ops.setxattr('/d', 'user.c', value, 0, 0, cb)), [[0, undefined]]);
  value.fill(0);
  t.equal((await fs.getxattr('/d', 'user.c')).toString(), 'blue');
  t.same(await answers((cb) => ops.setxattr('/d', 'user.c', Buffer.from('x'), 0, 1, cb)), [[fuseErrno('EEXIST'), undefined]]);
  t.same(await answers((cb) => ops.setxattr('/d', 'user.n', Buffer.from('x'), 0, 2, cb)), [[ENODATA, undefined]]);
  t.same(await answers((cb) => ops.setxattr('/d', 'user.c', Buffer.from('red'), 0, 2, cb)), [[0, undefined]]);
  t.same(await answers((cb) => ops.getxattr('/d', 'user.nope', 0, cb)), [[ENODATA, undefined]]);
});

/** Exposes the protected glue of GirderFuse to call it without mounting. */
class OpenFuse extends GirderFuse {
  getxattr(signal: Fuse.Signal, name: string, buf: Buffer): void {
    this._op_getxattr(signal, '/d', name, buf, 0);
  }
  listxattr(signal: Fuse.Signal, buf: Buffer): void {
    this._op_listxattr(signal, '/d', buf);
  }
  fgetattr(signal: Fuse.Signal, fd: number): void {
    this._op_fgetattr(signal, '/f', fd);
  }
  options(): string {
    return this._fuseOptions();
  }
}

t.test('getxattr/listxattr: size 0 asks the length, too small is ERANGE, else copied', async (t) => {
  const fs = new MemoryFs();
  await fs.mkdir('/d', 0o755);
  await fs.setxattr('/d', 'user.a', Buffer.from('12345'));
  await fs.setxattr('/d', 'user.bb', Buffer.from(''));
  const fuse = new OpenFuse('/nonexistent', buildOperations(fs, silentLogger()), {}, '-ofsname=x');
  t.equal(fuse.options(), '-ofsname=x');
  const call = (f: (signal: Fuse.Signal) => void): Promise<unknown[][]> => answers((cb) => f(cb));
  t.same((await call((s) => fuse.getxattr(s, 'user.a', Buffer.alloc(0))))[0]?.[0], 5);
  t.same((await call((s) => fuse.getxattr(s, 'user.a', Buffer.alloc(3))))[0]?.[0], ERANGE);
  const buf = Buffer.alloc(10);
  const [[code, arrayBuffer]] = (await call((s) => fuse.getxattr(s, 'user.a', buf))) as [[number, ArrayBuffer]];
  t.equal(code, 5);
  t.equal(arrayBuffer, buf.buffer, 'answers with the kernel buffer (fuse-native detaches it)');
  t.equal(buf.subarray(0, 5).toString(), '12345');
  t.equal((await call((s) => fuse.getxattr(s, 'user.bb', Buffer.alloc(0))))[0]?.[0], 0);
  t.equal((await call((s) => fuse.getxattr(s, 'user.none', Buffer.alloc(0))))[0]?.[0], ENODATA);

  const list = 'user.a\0user.bb\0';
  t.equal((await call((s) => fuse.listxattr(s, Buffer.alloc(0))))[0]?.[0], list.length);
  t.equal((await call((s) => fuse.listxattr(s, Buffer.alloc(4))))[0]?.[0], ERANGE);
  const lbuf = Buffer.alloc(64);
  t.equal((await call((s) => fuse.listxattr(s, lbuf)))[0]?.[0], list.length);
  t.equal(lbuf.subarray(0, list.length).toString(), list);
});

t.test('fgetattr reaches FileSystem.fgetattr with the handle', async (t) => {
  const fs = new MemoryFs();
  const fh = await fs.create('/f', 0o644, CREATE_FLAGS);
  await fs.write(fh, Buffer.alloc(300), 300, 0);
  let handle = -1;
  const fgetattr = fs.fgetattr.bind(fs);
  fs.fgetattr = async (path, h) => {
    handle = h;
    return fgetattr(path, h);
  };
  const fuse = new OpenFuse('/nonexistent', buildOperations(fs, silentLogger()), {}, '');
  const [[code, ints]] = (await answers((cb) => fuse.fgetattr(cb, fh))) as [[number, Uint32Array]];
  t.equal(code, 0);
  t.equal(handle, fh);
  t.equal(ints[3], 300, 'size in the stat array');
  t.equal(ints[0], 0o100644);
  const [[bad]] = (await answers((cb) => fuse.fgetattr(cb, 999))) as [[number]];
  t.equal(bad, fuseErrno('EBADF'));
});


t.test('time bounds: an operation that never settles is answered EIO once, logged with what it waits for', async (t) => {
  const fs = new MemoryFs();
  fs.getattr = () => new Promise(() => undefined);
  const { logger, lines } = capturingLogger();
  const ops = buildOperations(fs, logger, { bounds: { boundMs: 50, sweepMs: 10, describe: (path) => ({ what: `the server, for ${path}` }) } });
  const got: unknown[][] = [];
  ops.getattr?.('/stuck', (...args: unknown[]) => got.push(args));
  t.equal(ops.watchdog?.list().length, 1, 'the operation is listed while it waits');
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [[EIO, undefined]], 'answered EIO, once');
  t.equal(ops.watchdog?.list().length, 0);
  t.match(lines().find((l) => l.level === 40), { op: 'getattr', path: '/stuck', waitingFor: { what: 'the server, for /stuck' } });
});

t.test('time bounds: a read given up on never touches the kernel buffer, and its late result is dropped', async (t) => {
  const fs = new MemoryFs();
  let finish: ((n: number) => void) | undefined;
  let filled: Buffer | undefined;
  fs.read = (_fh, into) => new Promise((resolve) => {
    filled = into;
    finish = (n) => { into.fill(0x61, 0, n); resolve(n); };
  });
  const ops = buildOperations(fs, silentLogger(), { bounds: { boundMs: 50, sweepMs: 10 } });
  const kernel = Buffer.alloc(16, 0x7a);
  const got: unknown[][] = [];
  ops.read?.('/f', 1, kernel, 16, 0, (...args: unknown[]) => got.push(args));
  t.not(filled, kernel, 'the FileSystem fills a buffer of the daemon, not the kernel\'s');
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [[EIO, undefined]]);
  finish?.(16);
  await new Promise((r) => setImmediate(r));
  t.same(got, [[EIO, undefined]], 'no second answer');
  t.equal(kernel.toString(), 'z'.repeat(16), 'the kernel buffer is untouched');
});

t.test('time bounds: a transfer that progresses keeps its operation alive; one that stalls is answered EIO', async (t) => {
  const fs = new MemoryFs();
  let progress = 0;
  fs.fsync = () => new Promise(() => undefined);
  const ops = buildOperations(fs, silentLogger(), { bounds: { boundMs: 60, sweepMs: 10, progressOf: () => progress } });
  const got: unknown[][] = [];
  ops.fsync?.('/big', 0, 3, (...args: unknown[]) => got.push(args));
  for (let i = 0; i < 10; i++) {
    progress += 1000;
    await new Promise((r) => setTimeout(r, 30));
  }
  t.same(got, [], 'still waiting after 5 bounds of progress');
  await new Promise((r) => setTimeout(r, 250));
  t.same(got, [[EIO, undefined]], 'answered once the upload stopped moving');
});

t.test('one warn line per failure: not again for the same failure of the path within a second, nor after the watchdog answered', async (t) => {
  const lines: Array<{ level: number; msg: string; path?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const fs = new MemoryFs();
  const silent = (): Promise<never> => Promise.reject(new FsError('EIO', 'no answer from girder:8080 within 5 s'));
  fs.read = silent;
  fs.getattr = silent;
  const ops = buildOperations(fs, logger, { bounds: { boundMs: 80, sweepMs: 10 } }) as Ops;
  const warns = (): Array<{ msg: string; path?: string }> => lines.filter((l) => l.level === 40);

  // the kernel's read and its immediate re-read of the page
  t.same(await answers((cb) => ops.read('/f', 1, Buffer.alloc(10), 10, 0, cb as never)), [[EIO, undefined]]);
  t.same(await answers((cb) => ops.read('/f', 1, Buffer.alloc(10), 10, 0, cb as never)), [[EIO, undefined]]);
  t.equal(warns().length, 1, 'one warn line for the two');
  t.equal(warns()[0]?.path, '/f');
  t.equal(lines.filter((l) => l.level === 20 && l.msg === 'operation failed (again)').length, 1, 'the repeat at debug');
  t.same(await answers((cb) => ops.getattr('/g', cb as never)), [[EIO, undefined]]);
  t.equal(warns().length, 2, 'another path: its own line');
  await new Promise((r) => setTimeout(r, 1_050));
  t.same(await answers((cb) => ops.read('/f', 1, Buffer.alloc(10), 10, 0, cb as never)), [[EIO, undefined]]);
  t.equal(warns().length, 3, 'the same failure a second later: a line again');

  // answered by the watchdog, then the work fails: the watchdog's line only
  let fail!: (err: unknown) => void;
  fs.getattr = () => new Promise((_resolve, reject) => (fail = reject));
  const got: unknown[][] = [];
  ops.getattr('/slow', (...args: unknown[]) => got.push(args));
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [[EIO, undefined]], 'answered EIO at the bound');
  fail(new FsError('EIO', 'no answer from girder:8080 within 5 s'));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const slow = warns().filter((l) => l.path === '/slow');
  t.equal(slow.length, 1, `one warn line for it: ${JSON.stringify(slow)}`);
  t.equal(slow[0]?.msg, 'operation passed its time bound; answered EIO');
  t.equal(got.length, 1, 'answered once');
});
