// The fuse layer end to end: a child process (test/helpers/fuse-runner.ts) mounts a MemoryFs with
// mountFuse; ordinary tools work on the mount. Also prepareMountpoint's cases, dead mounts included.
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../src/errors.js';
import { prepareMountpoint } from '../../src/fuse/mountpoint.js';
import { isMounted, mountsAt, readProcMounts } from '../../src/fuse/proc-mounts.js';
import { silentLogger } from '../../src/log.js';
import type { MountOptions } from '../../src/fuse/mount.js';
import type { Faults, WriteStats } from '../helpers/memory-fs.js';
import { sleep, waitFor } from '../helpers/wait.js';

const RUNNER = fileURLToPath(new URL('../helpers/fuse-runner.js', import.meta.url));
const ENV = { ...process.env, LC_ALL: 'C', TZ: 'UTC' };

interface Result { code: number; stdout: string; stderr: string }

/** Runs a command (never throws); the mount is served by another process, so waiting is safe. */
function run(cmd: string, args: string[], cwd?: string): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: ENV, cwd, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
const sh = (script: string, cwd?: string): Promise<Result> => run('sh', ['-c', script], cwd);

interface Runner {
  mountpoint: string;
  statsFile: string;
  proc: ChildProcess;
  utimensFixed: boolean;
  stderr(): string;
  exited(): boolean;
  stats(): Promise<WriteStats & { utimensCalls: Array<{ path: string; atime: number; mtime: number }>; openHandles: number; asyncHandles: number }>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

const base = await mkdtemp(path.join(tmpdir(), 'girder-fuse-layer-'));
const runners: Runner[] = [];

async function startRunner(name: string, opts: { faults?: Faults; options?: Partial<MountOptions>; readDelayMs?: number } = {}): Promise<Runner> {
  const mountpoint = path.join(base, name);
  await mkdir(mountpoint, { recursive: true });
  const statsFile = path.join(base, `${name}.stats.json`);
  const config = { mountpoint, statsFile, logLevel: 'warn', ...opts };
  const proc = spawn(process.execPath, [RUNNER, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let exited = false;
  proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = once(proc, 'exit').then(() => (exited = true));
  const readyLine = await waitFor(() => {
    if (exited) throw new Error(`runner exited: ${stderr}`);
    return stdout.split('\n').find((l) => l.includes('"ready"'));
  }, { what: `runner ${name} ready`, timeoutMs: 60_000 });
  const ready = JSON.parse(readyLine) as { utimensFixed: boolean };
  const runner: Runner = {
    mountpoint,
    statsFile,
    proc,
    utimensFixed: ready.utimensFixed,
    stderr: () => stderr,
    exited: () => exited,
    async stats() {
      await unlink(statsFile).catch(() => undefined);
      proc.kill('SIGUSR1');
      const text = await waitFor(() => readFile(statsFile, 'utf8'), { what: 'stats file' });
      return JSON.parse(text) as Awaited<ReturnType<Runner['stats']>>;
    },
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
        await exit;
        clearTimeout(timer);
      }
    },
  };
  runners.push(runner);
  return runner;
}

t.teardown(async () => {
  for (const r of runners) await r.stop();
  for (const m of await readProcMounts()) {
    if (m.mountPoint.startsWith(base + path.sep)) await run('fusermount', ['-uz', m.mountPoint]);
  }
  await rm(base, { recursive: true, force: true });
});

const main = await startRunner('main', { faults: { '/denied': 'EACCES', '/crash': 'crash' } });
const mnt = main.mountpoint;
const at = (p: string): string => path.join(mnt, p);

t.test('/proc/mounts shows fuse.girder-mount with our fsname and options', async (t) => {
  const [entry] = await mountsAt(mnt);
  t.ok(entry, 'listed');
  t.equal(entry?.type, 'fuse.girder-mount');
  t.equal(entry?.source, 'memory-fs');
  t.ok(entry?.options.includes('default_permissions'));
  t.ok(entry?.options.includes('max_read=131072'));
  t.ok(await isMounted(mnt));
});

t.test('ls -la, stat, echo > file, cat', async (t) => {
  const ls = await run('ls', ['-la', mnt]);
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, /^d\S+\s+\d+\s+\S+\s+\S+\s+\d+.* \.$/m, '. listed');
  t.match(ls.stdout, / \.\.$/m, '.. listed');
  t.equal((await sh(`echo hello > ${at('hello.txt')}`)).code, 0);
  const cat = await run('cat', [at('hello.txt')]);
  t.equal(cat.stdout, 'hello\n');
  const st = await run('stat', ['-c', '%s %F %a', at('hello.txt')]);
  t.equal(st.stdout.trim(), '6 regular file 644');
  t.match((await run('ls', ['-la', mnt])).stdout, /hello\.txt/);
});

t.test('dd bs=1M arrives in big write calls (big_writes) and reads back the same', async (t) => {
  const src = path.join(base, 'random.bin');
  t.equal((await run('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=8'])).code, 0);
  const before = await main.stats();
  const dd = await run('dd', [`if=${src}`, `of=${at('big.bin')}`, 'bs=1M']);
  t.equal(dd.code, 0, dd.stderr);
  const after = await main.stats();
  const calls = after.writeCalls - before.writeCalls;
  t.equal(after.writeBytes - before.writeBytes, 8 << 20);
  t.ok(calls <= (8 << 20) / (64 << 10), `8 MiB in ${calls} write calls (>= 64 KiB each on average)`);
  t.ok(after.maxWrite >= 64 << 10, `largest write ${after.maxWrite}`);
  t.equal((await run('cmp', [src, at('big.bin')])).code, 0, 'same bytes back');
  t.equal(after.openHandles, 0, 'every handle released');
});

t.test('the security.capability lookup before each write(2) is answered without JavaScript', async (t) => {
  const src = path.join(base, 'random-128k.bin');
  t.equal((await run('dd', ['if=/dev/urandom', `of=${src}`, 'bs=128k', 'count=64'])).code, 0);
  const before = await main.stats();
  t.equal((await run('dd', [`if=${src}`, `of=${at('small-writes.bin')}`, 'bs=128k'])).code, 0);
  const after = await main.stats();
  t.equal(after.writeCalls - before.writeCalls, 64, '64 write(2) calls of 128 KiB');
  t.equal(after.getxattrCalls - before.getxattrCalls, 0, 'and no getxattr reached the FileSystem');
  const asked = await run('getfattr', ['-n', 'security.capability', at('small-writes.bin')]);
  t.match(asked.stderr, /Operation not supported/, 'asking for it gets EOPNOTSUPP');
});

t.test('close(2) of a file opened read-only is answered without JavaScript; of one written, it is not', async (t) => {
  const file = path.join(main.mountpoint, 'closes.txt');
  t.equal((await sh(`echo one > ${file}`)).code, 0);
  const before = await main.stats();
  const cat = await sh(`cat ${file} ${file} ${file}`);
  t.equal(cat.stdout, 'one\none\none\n');
  const afterReads = await main.stats();
  t.equal(afterReads.flushCalls, before.flushCalls, 'three read-only opens and closes: no flush reached the FileSystem');
  t.equal(afterReads.openHandles, before.openHandles, 'and each handle was released (the tagged handle found its own)');
  t.equal((await sh(`echo two >> ${file}`)).code, 0);
  t.ok((await main.stats()).flushCalls > afterReads.flushCalls, 'the close of a handle opened for writing still flushes');
  t.equal((await sh(`cat ${file}`)).stdout, 'one\ntwo\n');
});

t.test('ls -l learns from the first file that there are no SELinux labels or ACLs', async (t) => {
  // coreutils stops asking a device for them after an EOPNOTSUPP; ENODATA made it ask every file.
  for (const name of ['security.selinux', 'system.posix_acl_access', 'system.posix_acl_default', 'trusted.x']) {
    const asked = await run('getfattr', ['-n', name, at('hello.txt')]);
    t.match(asked.stderr, /Operation not supported/, `${name}: EOPNOTSUPP`);
  }
  t.match((await run('getfattr', ['-n', 'user.absent', at('hello.txt')])).stderr, /No such attribute/, 'user.*: ENODATA');
  const py = await run('python3', ['-c', 'import os,sys\ntry: os.getxattr(sys.argv[1], "security.selinux")\nexcept OSError as e: print(e.errno)', at('hello.txt')]);
  t.equal(py.stdout.trim(), '95', py.stderr);
});

t.test('O_TRUNC open of an existing file, truncate, fstat of an open file', async (t) => {
  t.equal((await sh(`printf 0123456789 > ${at('t.txt')} && printf ab > ${at('t.txt')}`)).code, 0);
  t.equal((await run('cat', [at('t.txt')])).stdout, 'ab');
  t.equal((await run('truncate', ['-s', '100000', at('t.txt')])).code, 0);
  t.equal((await run('stat', ['-c', '%s', at('t.txt')])).stdout.trim(), '100000');
  t.equal((await run('truncate', ['-s', '1', at('t.txt')])).code, 0);
  t.equal((await run('cat', [at('t.txt')])).stdout, 'a');
  const py = await run('python3', ['-c',
    'import os,sys; f=open(sys.argv[1],"wb"); f.write(b"x"*1000); f.flush(); print(os.fstat(f.fileno()).st_size)', at('t.txt')]);
  t.equal(py.stdout.trim(), '1000', py.stderr);
});

t.test('mv, rm, mkdir, rmdir', async (t) => {
  t.equal((await sh(`echo x > ${at('a')} && mv ${at('a')} ${at('b')}`)).code, 0);
  const ls = (await run('ls', [mnt])).stdout.split('\n');
  t.ok(ls.includes('b') && !ls.includes('a'), 'renamed');
  t.equal((await run('mkdir', [at('dir')])).code, 0);
  t.equal((await run('mv', [at('b'), at('dir/b')])).code, 0, 'move into a directory');
  t.equal((await run('cat', [at('dir/b')])).stdout, 'x\n');
  const rmdir = await run('rmdir', [at('dir')]);
  t.not(rmdir.code, 0);
  t.match(rmdir.stderr, /Directory not empty/, 'ENOTEMPTY');
  t.equal((await run('rm', [at('dir/b')])).code, 0);
  t.equal((await run('rmdir', [at('dir')])).code, 0);
  const cat = await run('cat', [at('dir/b')]);
  t.match(cat.stderr, /No such file or directory/, 'ENOENT');
});

t.test('symbolic links are made and followed; hard links and FIFOs are refused with EPERM, and nothing is left', async (t) => {
  await sh(`echo x > ${at('linked')}`);
  t.equal((await run('ln', ['-s', 'linked', at('sym')])).code, 0, 'ln -s');
  t.equal((await run('readlink', [at('sym')])).stdout, 'linked\n', 'readlink');
  t.equal((await run('cat', [at('sym')])).stdout, 'x\n', 'the kernel follows it');
  t.equal((await run('stat', ['-c', '%F %s', at('sym')])).stdout.trim(), 'symbolic link 6', 'lstat: a link of the target\'s length');
  for (const [cmd, args] of [['ln', [at('linked'), at('hard')]], ['mkfifo', [at('fifo')]]] as const) {
    const r = await run(cmd, [...args]);
    t.not(r.code, 0, `${cmd} ${args.join(' ')} fails`);
    t.match(r.stderr, /Operation not permitted/, 'with EPERM');
  }
  const ls = (await run('ls', [mnt])).stdout.split('\n');
  t.notOk(ls.includes('hard') || ls.includes('fifo'), 'no entry made');
  t.equal((await run('python3', ['-c', 'import os,sys; os.mknod(sys.argv[1]); print(os.stat(sys.argv[1]).st_size)', at('regular-by-mknod')])).stdout.trim(), '0',
    'mknod of a regular file still creates one');
});

t.test('touch -d sets mtime; -a and -m alone touch one time only', async (t) => {
  t.equal((await run('touch', [at('when')])).code, 0);
  t.equal((await run('touch', ['-d', '2001-02-03 04:05:06', at('when')])).code, 0);
  t.equal((await run('stat', ['-c', '%Y %X', at('when')])).stdout.trim(), '981173106 981173106');
  t.ok(main.utimensFixed, 'the patched fuse-native addon is loaded (run scripts/build-fuse-native.sh)');
  if (!main.utimensFixed) return;
  t.equal((await run('touch', ['-m', '-d', '2003-02-03 04:05:06', at('when')])).code, 0);
  t.equal((await run('touch', ['-a', '-d', '2002-02-03 04:05:06', at('when')])).code, 0);
  t.equal((await run('stat', ['-c', '%Y %X', at('when')])).stdout.trim(), '1044245106 1012709106', 'mtime 2003, atime 2002');
  const py = await run('python3', ['-c', 'import os,sys; os.utime(sys.argv[1], (1000000000, 1100000000))', at('when')]);
  t.equal(py.code, 0, py.stderr);
  t.equal((await run('stat', ['-c', '%Y %X', at('when')])).stdout.trim(), '1100000000 1000000000', 'distinct atime and mtime');
});

t.test('setfattr / getfattr round trip', async (t) => {
  await sh(`echo x > ${at('attrs')}`);
  t.equal((await run('setfattr', ['-n', 'user.color', '-v', 'blue', at('attrs')])).code, 0);
  t.equal((await run('setfattr', ['-n', 'user.big', '-v', 'x'.repeat(3000), at('attrs')])).code, 0);
  t.equal((await run('getfattr', ['-n', 'user.color', '--only-values', at('attrs')])).stdout, 'blue');
  t.equal((await run('getfattr', ['-n', 'user.big', '--only-values', at('attrs')])).stdout, 'x'.repeat(3000));
  const dump = await run('getfattr', ['-d', at('attrs')]);
  t.match(dump.stdout, /user\.color="blue"/);
  t.match(dump.stdout, /user\.big=/);
  t.equal((await run('setfattr', ['-x', 'user.color', at('attrs')])).code, 0);
  const gone = await run('getfattr', ['-n', 'user.color', at('attrs')]);
  t.match(gone.stderr, /No such attribute/, 'ENODATA');
});

t.test('errno mapping: EACCES from the FileSystem; a plain Error is EIO, logged, and survived', async (t) => {
  await run('touch', [at('denied'), at('crash')]);
  t.match((await run('cat', [at('denied')])).stderr, /Permission denied/);
  t.match((await run('cat', [at('crash')])).stderr, /Input\/output error/);
  t.notOk(main.exited(), 'runner still alive');
  t.equal((await run('ls', [mnt])).code, 0, 'mount still answers');
  await waitFor(() => main.stderr().includes('unexpected error in filesystem operation'), { what: 'error log line' });
  t.match(main.stderr(), /simulated bug at \/crash/);
});

t.test('prepareMountpoint: missing, file, non-empty, live mount', async (t) => {
  const logger = silentLogger();
  await t.rejects(prepareMountpoint(path.join(base, 'nope'), logger), new UsageError(`mountpoint ${path.join(base, 'nope')} does not exist`));
  const file = path.join(base, 'afile');
  await writeFile(file, 'x');
  await t.rejects(prepareMountpoint(file, logger), { name: 'UsageError', message: /is not a directory$/ });
  const full = path.join(base, 'full');
  await mkdir(full);
  await writeFile(path.join(full, 'x'), 'x');
  await t.rejects(prepareMountpoint(full, logger), { name: 'UsageError', message: /is not empty$/ });
  await t.rejects(prepareMountpoint(mnt, logger), { name: 'UsageError', message: /is already mounted \(fuse\.girder-mount from memory-fs\)/ });
  const empty = path.join(base, 'empty');
  await mkdir(empty);
  t.equal(await prepareMountpoint(path.relative(process.cwd(), empty)), empty, 'relative path resolved');
});

t.test('FUSE threads that come and go reuse their state: the event loop does not gain a handle per thread', async (t) => {
  // libfuse starts a thread whenever none is idle and ends it once more than 10 are: each burst of
  // slow reads starts about 30. Each new thread used to get a new async handle, kept for good.
  const r = await startRunner('threads', { readDelayMs: 300 });
  const bursts = 4;
  const width = 40;
  const made = await sh(`for i in $(seq 1 ${bursts * width}); do echo "$i" > f$i; done`, r.mountpoint);
  t.equal(made.code, 0, made.stderr);
  const burst = async (k: number): Promise<void> => {
    const files = Array.from({ length: width }, (_, i) => `f${k * width + i + 1}`);
    const read = await sh(`for f in ${files.join(' ')}; do cat "$f" > /dev/null & done; wait`, r.mountpoint);
    t.equal(read.code, 0, read.stderr);
    await sleep(300); // the threads beyond 10 idle end
  };
  const before = (await r.stats()).asyncHandles;
  await burst(0);
  const afterFirst = (await r.stats()).asyncHandles;
  t.ok(afterFirst - before >= 20, `the first burst ran on many threads at once (${before} async handles, then ${afterFirst})`);
  for (let k = 1; k < bursts; k++) await burst(k);
  const afterAll = (await r.stats()).asyncHandles;
  // A later burst may run a few more threads at once than the first (CI: 49, then 52); without the
  // reuse each burst added about 30.
  t.ok(afterAll - afterFirst <= 10, `${bursts - 1} more bursts added at most the few threads they ran beyond the first's (${afterFirst} async handles, then ${afterAll})`);
  await r.stop();
});

t.test('a dead mount (runner killed with SIGKILL) is cleared and reused', async (t) => {
  // A long attribute timeout: stat keeps answering from the kernel's cache after the kill.
  const doomed = await startRunner('doomed', { options: { attrTimeoutS: 600 } });
  t.equal((await run('stat', [doomed.mountpoint])).code, 0);
  doomed.proc.kill('SIGKILL');
  await waitFor(() => doomed.exited(), { what: 'runner killed' });
  t.ok(await isMounted(doomed.mountpoint), '/proc/mounts still lists the dead mount');
  t.match((await run('stat', ['-f', doomed.mountpoint])).stderr, /Transport endpoint is not connected/);
  t.equal(await prepareMountpoint(doomed.mountpoint), doomed.mountpoint);
  t.notOk(await isMounted(doomed.mountpoint), 'cleared');
  const again = await startRunner('doomed');
  t.equal((await sh(`echo again > ${path.join(again.mountpoint, 'f')}`)).code, 0, 'mountpoint reused');
  await again.stop();
  t.notOk(await isMounted(again.mountpoint), 'SIGTERM unmounts');
});

t.test('unmount reports EBUSY while in use, then succeeds', async (t) => {
  const busy = await startRunner('busy');
  const holder = spawn('sleep', ['300'], { cwd: busy.mountpoint, stdio: 'ignore' });
  t.teardown(() => void holder.kill('SIGKILL'));
  const outcome = async (): Promise<{ ok: boolean; errno?: string; message?: string }> => {
    await unlink(`${busy.statsFile}.unmount`).catch(() => undefined);
    busy.proc.kill('SIGUSR2');
    return JSON.parse(await waitFor(() => readFile(`${busy.statsFile}.unmount`, 'utf8'), { what: 'unmount outcome' })) as { ok: boolean; errno?: string; message?: string };
  };
  const first = await outcome();
  t.match(first, { ok: false, errno: 'EBUSY', message: /is busy/ });
  t.ok(await isMounted(busy.mountpoint), 'still mounted');
  holder.kill('SIGKILL');
  await once(holder, 'exit');
  const second = await outcome();
  t.match(second, { ok: true });
  await waitFor(() => busy.exited(), { what: 'runner exit after unmount' });
  t.notOk(await isMounted(busy.mountpoint));
});

t.test('readOnly mount refuses writes with EROFS; 0 s attribute timeout works', async (t) => {
  const ro = await startRunner('ro', { options: { readOnly: true, attrTimeoutS: 0 } });
  const [entry] = await mountsAt(ro.mountpoint);
  t.ok(entry?.options.includes('ro'), 'mounted ro');
  t.match((await sh(`echo x > ${path.join(ro.mountpoint, 'f')}`)).stderr, /Read-only file system/);
  t.equal((await run('ls', ['-la', ro.mountpoint])).code, 0);
  await ro.stop();
});
