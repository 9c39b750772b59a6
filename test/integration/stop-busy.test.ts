// Issue 12, "Stopping never leaves a zombie": SIGTERM, `girder-mount unmount` and systemd's stop
// (ExecStop, then SIGTERM) while a shell has its working directory in the mount and a reader holds a
// file open. The mount leaves the file system tree at once, the holders keep being served correctly,
// and once they leave the daemon exits and nothing is mounted.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { rest } from '../helpers/girder-rest.js';
import { startGirder, type GirderServer } from '../helpers/girder-server.js';
import { cliPath, isMounted, run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { sleep, waitFor } from '../helpers/wait.js';

const CONTENT = randomBytes(3 * 1024 * 1024 + 17);
const SHA = createHash('sha512').update(CONTENT).digest('hex');

/** Re-reads a file of the mount through one descriptor every 200 ms; prints "ok" or "bad <why>" per read. */
const READER = `
import hashlib, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
while True:
    try:
        data = os.pread(fd, 1 << 23, 0)
        print("ok" if hashlib.sha512(data).hexdigest() == sys.argv[2] else "bad content", flush=True)
    except OSError as e:
        print("bad " + str(e), flush=True)
    time.sleep(0.2)
`;

interface Holders {
  /** Reads that came back right, and wrong, so far. */
  reads(): { ok: number; bad: string[] };
  leave(): Promise<void>;
}

/** A shell whose cwd is the mount, and a reader holding `file` open. */
async function hold(t: Test, mount: Mount, file: string): Promise<Holders> {
  const shell = spawn('sleep', ['600'], { cwd: mount.mountpoint, stdio: 'ignore' });
  const reader = spawn('python3', ['-c', READER, file, SHA], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  reader.stdout.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
  const all: ChildProcess[] = [shell, reader];
  t.teardown(() => all.forEach((p) => p.kill('SIGKILL')));
  await waitFor(() => lines.includes('ok'), { what: 'the reader\'s first read', timeoutMs: 30_000 });
  return {
    reads: () => ({ ok: lines.filter((l) => l === 'ok').length, bad: lines.filter((l) => l.startsWith('bad')) }),
    leave: async () => {
      for (const p of all) {
        p.kill('SIGTERM');
        if (p.exitCode === null && p.signalCode === null) await once(p, 'exit');
      }
    },
  };
}

async function mountWithFile(t: Test, server: GirderServer, name: string): Promise<Mount> {
  const admin = rest(server, 'admin');
  const folder = await admin.createFolder(server.info.folders.adminPrivate, `${name}-${process.pid}`);
  const mount = await startMount({ server, folderId: folder._id });
  t.teardown(() => mount.cleanup());
  t.teardown(() => {
    if (!t.passing()) t.comment(`--- daemon log (tail) ---\n${mount.logs().slice(-6000)}`);
  });
  const local = `${mount.cacheDir}-src.bin`;
  await import('node:fs/promises').then((fs) => fs.writeFile(local, CONTENT));
  const cp = await run(`cp ${q(local)} ${q(`${mount.mountpoint}/data.bin`)}`, { timeoutMs: 60_000 });
  t.equal(cp.code, 0, 'file written');
  await waitUploadsDone(mount.mountpoint);
  return mount;
}

/** The mount left the tree, the daemon still runs and serves the holders; then they leave and it ends cleanly. */
async function servedUntilTheyLeave(t: Test, mount: Mount, holders: Holders): Promise<void> {
  await waitFor(async () => !(await isMounted(mount.mountpoint)), { what: 'the mount to leave /proc/mounts', timeoutMs: 30_000 });
  t.pass('the mount is gone from /proc/mounts at once');
  const before = holders.reads().ok;
  await sleep(3000);
  t.equal(mount.process.exitCode, null, 'the daemon still runs while they are inside');
  t.ok(holders.reads().ok > before, 'the reader kept reading after the detach');
  t.same(holders.reads().bad, [], 'every read was right');
  const status = await mountStatus(mount.mountpoint);
  t.equal(status.detached, true, 'status says it is detached and still serving');
  await holders.leave();
  const code = await Promise.race([mount.waitExit(), sleep(30_000).then(() => 'still running')]);
  t.equal(code, 0, 'the daemon exits 0 once the last one left');
  t.notOk(await isMounted(mount.mountpoint), 'nothing is mounted');
}

t.test('stopping a busy mount', async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());

  t.test('SIGTERM', async (t) => {
    const mount = await mountWithFile(t, server, 'sigterm');
    const holders = await hold(t, mount, `${mount.mountpoint}/data.bin`);
    mount.process.kill('SIGTERM');
    await servedUntilTheyLeave(t, mount, holders);
  });

  t.test('girder-mount unmount --force: says it detached, exits non-zero', async (t) => {
    const mount = await mountWithFile(t, server, 'unmount');
    const holders = await hold(t, mount, `${mount.mountpoint}/data.bin`);
    const r = await run(`${q(process.execPath)} ${q(cliPath())} unmount ${q(mount.mountpoint)} --timeout 5 --force`, { timeoutMs: 60_000 });
    t.equal(r.code, 1, 'exit 1: something is left (a detached mount still serving)');
    t.match(r.stderr, /is busy .*detached it; the daemon \(pid \d+\) serves those processes until they leave/);
    await servedUntilTheyLeave(t, mount, holders);
  });

  t.test('systemctl stop: ExecStop (unmount --timeout 300 --force), then SIGTERM to the daemon', async (t) => {
    const mount = await mountWithFile(t, server, 'systemd');
    const holders = await hold(t, mount, `${mount.mountpoint}/data.bin`);
    const r = await run(`${q(process.execPath)} ${q(cliPath())} unmount ${q(mount.mountpoint)} --timeout 300 --force`, { timeoutMs: 60_000 });
    t.equal(r.code, 1);
    mount.process.kill('SIGTERM'); // what systemd sends the main process once ExecStop returned
    await servedUntilTheyLeave(t, mount, holders);
  });

  t.test('not busy: unmount exits 0 and the daemon ends', async (t) => {
    const mount = await mountWithFile(t, server, 'idle');
    const r = await run(`${q(process.execPath)} ${q(cliPath())} unmount ${q(mount.mountpoint)}`, { timeoutMs: 60_000 });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stderr, /unmounted .*every upload is on the server/);
    t.equal(await Promise.race([mount.waitExit(), sleep(30_000).then(() => 'still running')]), 0);
    t.notOk(await isMounted(mount.mountpoint));
  });
});
