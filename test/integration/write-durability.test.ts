// What a program wrote and closed reaches Girder, and when: a daemon killed with kill -9 mid-upload
// finishes after a restart; fsync and --sync-uploads wait for the server; plain close does not
// (write-back) but the mount reads the new bytes meanwhile; writes the server refuses give EACCES;
// a full cache disk gives ENOSPC with nothing partial on the server; a file changed on the server
// while open here is replaced by the local close, with a log line. Each checked through REST.
import { mkdir, mkdtemp, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest } from '../helpers/girder-rest.js';
import { startGirder, type GirderServerInfo } from '../helpers/girder-server.js';
import { forceUnmount, isMounted, run, startMount, type Mount, type RunResult, type StartMountOptions } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { writeRandomFile } from '../helpers/random-file.js';
import { remoteFile, remoteLookup, replaceContents } from '../helpers/remote-tree.js';
import { shell, type Shell } from '../helpers/shell.js';
import { startUploadProxy } from '../helpers/upload-proxy.js';
import { sleep, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

/** A command started in the background, and whether it has ended yet. */
function background(sh: Shell, cmd: string): { result: Promise<RunResult>; done: () => boolean } {
  let ended = false;
  const result = sh(cmd).finally(() => {
    ended = true;
  });
  return { result, done: () => ended };
}

t.test('durability of writes, checked through REST', async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin = rest(server, 'admin');
  const root = await admin.createFolder(server.info.folders.adminPrivate, `write-durability-${process.pid}`);
  const proxy = await startUploadProxy(server.info.apiUrl);
  t.teardown(() => proxy.stop());
  const viaProxy: GirderServerInfo = { ...server.info, apiUrl: proxy.apiUrl };
  const W = await mkdtemp(path.join(tmpdir(), 'write-durability-work-'));
  t.teardown(() => rm(W, { recursive: true, force: true }));
  const bigSha = await writeRandomFile(path.join(W, 'big.bin'), 300 * MiB);
  /** A new random file in $W (new bytes each time, so no server-side copy can stand in for an upload). */
  const fresh = (name: string, size = 6 * MiB + 11): Promise<string> => writeRandomFile(path.join(W, name), size);

  /** A mount of folder `name` (made under the test root), torn down with the subtest. */
  const mountFolder = async (tt: typeof t, name: string, opts: Partial<StartMountOptions> = {}): Promise<{ mount: Mount; folderId: string; sh: Shell }> => {
    const folder = await admin.createFolder(root._id, name);
    const mount = await startMount({ server: viaProxy, folderId: folder._id, ...opts });
    tt.teardown(() => mount.cleanup());
    tt.teardown(() => {
      if (!tt.passing()) tt.comment(`--- daemon log (tail) ---\n${mount.logs().slice(-8000)}`);
    });
    return { mount, folderId: folder._id, sh: shell({ M: mount.mountpoint, W }) };
  };

  t.test('kill -9 while a 300 MiB upload is in flight: a restart with the same cache dir finishes it', async (t) => {
    const folder = await admin.createFolder(root._id, 'kill9');
    const mountpoint = await mkdtemp(path.join(tmpdir(), 'girder-mnt-k9-'));
    const cacheDir = await mkdtemp(path.join(tmpdir(), 'girder-cache-k9-'));
    const mounts: Mount[] = [];
    t.teardown(async () => {
      proxy.setRate(undefined);
      for (const m of mounts) await m.kill9();
      if (!t.passing()) for (const m of mounts) t.comment(`--- daemon log (tail) ---\n${m.logs().slice(-6000)}`);
      await forceUnmount(mountpoint);
      if (!(await isMounted(mountpoint))) {
        await rmdir(mountpoint).catch(() => undefined);
        await rm(cacheDir, { recursive: true, force: true });
      }
    });
    const opts: StartMountOptions = { server: viaProxy, folderId: folder._id, mountpoint, cacheDir };
    const first = await startMount(opts);
    mounts.push(first);
    const sh = shell({ M: mountpoint, W });

    proxy.setRate(40 * MiB); // slow enough to catch the upload in the middle, after its first 64 MiB chunk
    await sh.ok('cp "$W/big.bin" "$M/big.bin"');
    const caught = await waitFor(async () => {
      const up = (await mountStatus(mountpoint)).uploads.find((u) => u.path === '/big.bin');
      return up !== undefined && up.state === 'uploading' && up.sent > 80 * MiB ? up : undefined;
    }, { timeoutMs: 240_000, intervalMs: 100, what: 'the upload of big.bin to be past 80 MiB' });
    t.ok(caught.sent < 300 * MiB, `killed in flight, at ${caught.sent} bytes sent`);
    await first.kill9();
    proxy.setRate(undefined);
    const early = await remoteLookup(admin, folder._id, 'big.bin');
    t.not(early?.kind === 'item' ? early.files[0]?.sha512 : undefined, bigSha, 'precondition: the server does not have the file yet');

    proxy.resetCount();
    const second = await startMount(opts);
    mounts.push(second);
    await waitUploadsDone(mountpoint);
    const { file } = await waitFor(() => remoteFile(admin, folder._id, 'big.bin'), { what: 'big.bin on the server' });
    t.equal(file.size, 300 * MiB, 'the server has the whole size');
    t.equal(file.sha512, await sh.sha512sum('"$W/big.bin"'), 'and the right bytes (sha512 equals sha512sum)');
    const items = await admin.listItems(folder._id);
    t.same(items.map((i) => i.name), ['big.bin'], 'exactly one item, no duplicate');
    t.same((await admin.listFiles(file.itemId)).map((f) => f.name), ['big.bin'], 'holding one file');
    t.ok(proxy.bytes() < 300 * MiB, `the restart resumed instead of starting over (${proxy.bytes()} bytes sent after it)`);
    t.match(second.logs(), /resum/i, 'the restarted daemon says it resumes');
    t.equal(await sh.sha512sum('"$M/big.bin"'), bigSha, 'the restarted mount reads the file back');
    await second.stop();
  });

  t.test('write-back: close returns before the upload, fsync only after it', async (t) => {
    const { mount, folderId, sh } = await mountFolder(t, 'fsync');
    t.teardown(() => proxy.open());
    const M = mount.mountpoint;

    const sixSha = await fresh('six.bin');
    // close without fsync: returns at once, the mount serves the new bytes, the server gets them later
    proxy.close();
    const cp = background(sh, 'cp "$W/six.bin" "$M/written.bin"');
    await waitFor(cp.done, { timeoutMs: 60_000, what: 'cp to return while the upload is held' });
    t.equal((await cp.result).code, 0, 'cp succeeds while the upload is held');
    await waitFor(() => proxy.held() > 0, { timeoutMs: 60_000, what: 'the upload to reach the proxy' });
    t.equal(await sh.sha512sum('"$M/written.bin"'), sixSha, 'the mount reads the new bytes before the upload is done');
    const pending = (await mountStatus(M)).uploads.map((u) => u.path);
    t.same(pending, ['/written.bin'], 'status shows the pending upload');
    const early = await remoteLookup(admin, folderId, 'written.bin');
    t.ok(early === undefined || early.kind !== 'item' || early.files.every((f) => f.sha512 !== sixSha), 'the server does not have it yet');
    proxy.open();
    await waitUploadsDone(M);
    t.equal((await remoteFile(admin, folderId, 'written.bin')).file.sha512, sixSha, 'the server has it once the upload went through');

    // dd conv=fsync: returns only once the server has the bytes
    const ddSha = await fresh('dd.bin');
    proxy.close();
    const dd = background(sh, 'dd if="$W/dd.bin" of="$M/synced.bin" bs=1M conv=fsync status=none');
    await waitFor(() => proxy.held() > 0 || dd.done(), { timeoutMs: 60_000, what: 'the upload to reach the proxy' });
    t.notOk(dd.done(), 'dd has not returned while its upload is held');
    await sleep(1000); // a little time in which a wrong fsync would return
    t.notOk(dd.done(), 'dd still waits');
    proxy.open();
    const r = await dd.result;
    t.equal(r.code, 0, `dd conv=fsync succeeds ${r.stderr}`);
    const { file } = await remoteFile(admin, folderId, 'synced.bin');
    t.equal(file.sha512, ddSha, 'right after dd returns the server has the whole file');

    // the same with a small node program: write, fsync, then ask the server before closing
    proxy.close();
    await writeFile(path.join(W, 'fsync.cjs'), [
      "const fs = require('node:fs');",
      "const fd = fs.openSync(process.env.M + '/node.txt', 'w');",
      "fs.writeSync(fd, 'written by node\\n');",
      'fs.fsyncSync(fd);',
      "process.stdout.write('fsynced\\n');",
      'fs.closeSync(fd);',
    ].join('\n'));
    const node = background(sh, `${JSON.stringify(process.execPath)} "$W/fsync.cjs"`);
    await waitFor(() => proxy.held() > 0 || node.done(), { timeoutMs: 60_000, what: 'the upload to reach the proxy' });
    t.notOk(node.done(), 'fsync has not returned while the upload is held');
    proxy.open();
    t.equal((await node.result).stdout, 'fsynced\n', 'fsync returns once the upload goes through');
    t.equal((await admin.download((await remoteFile(admin, folderId, 'node.txt')).file._id)).toString(), 'written by node\n', 'and the server has the text');
    await waitUploadsDone(M);
  });

  t.test('--sync-uploads: cp returns only once the server has the file', async (t) => {
    const { folderId, sh } = await mountFolder(t, 'sync', { args: ['--sync-uploads'] });
    t.teardown(() => proxy.open());
    const sha = await fresh('sync.bin');
    proxy.close();
    const cp = background(sh, 'cp "$W/sync.bin" "$M/f.bin"');
    await waitFor(() => proxy.held() > 0 || cp.done(), { timeoutMs: 60_000, what: 'the upload to reach the proxy' });
    t.notOk(cp.done(), 'cp has not returned while the upload is held');
    proxy.open();
    const r = await cp.result;
    t.equal(r.code, 0, `cp succeeds ${r.stderr}`);
    const { file } = await remoteFile(admin, folderId, 'f.bin');
    t.equal(file.sha512, sha, 'right after cp returns the server has the file');
  });

  t.test('a folder the user may only read, mounted read-write by that user: EACCES', async (t) => {
    const user = rest(server, 'user');
    const folder = await admin.createFolder(server.info.folders.adminPublic, `read-only-for-user-${process.pid}`);
    await admin.uploadBytes({ type: 'folder', id: folder._id }, 'existing.txt', Buffer.from('admin data\n'));
    const access = { users: [{ id: server.info.admin.id, level: 2, flags: [] }, { id: server.info.user.id, level: 0, flags: [] }], groups: [] };
    await admin.put(`/folder/${folder._id}/access`, { access: JSON.stringify(access), public: false });
    await fresh('six.bin');
    const seen = await user.get<{ _accessLevel: number }>(`/folder/${folder._id}`);
    t.equal(seen._accessLevel, 0, 'precondition: the user has READ only');
    const mount = await startMount({ server: viaProxy, folderId: folder._id, user: 'user' });
    t.teardown(() => mount.cleanup());
    const sh = shell({ M: mount.mountpoint, W });
    for (const cmd of ['touch "$M/new.txt"', 'mkdir "$M/dir"', 'printf more >> "$M/existing.txt"', 'rm "$M/existing.txt"', 'cp "$W/six.bin" "$M/six.bin"']) {
      const r = await sh(cmd);
      t.not(r.code, 0, `${cmd} fails`);
      t.match(r.stderr, /Permission denied/, `${cmd}: Permission denied`);
    }
    t.equal(await sh.ok('cat "$M/existing.txt"'), 'admin data\n', 'reading still works');
    const s = await waitUploadsDone(mount.mountpoint);
    t.same(s.uploads, [], 'nothing is queued');
    t.same((await admin.listItems(folder._id)).map((i) => i.name), ['existing.txt'], 'nothing was created on the server');
    t.same((await admin.listFolders(folder._id)).map((f) => f.name), [], 'no folder was created');
    const { file } = await remoteFile(admin, folder._id, 'existing.txt');
    t.equal((await admin.download(file._id)).toString(), 'admin data\n', 'the existing file is unchanged');
  });

  t.test('cache dir on a full small tmpfs: ENOSPC for a big write, reads still work, nothing partial on the server', { skip: isRoot ? false : 'needs root (mount -t tmpfs)' }, async (t) => {
    const tmpfs = await mkdtemp(path.join(tmpdir(), 'girder-cache-tmpfs-'));
    const mounted = await run(`mount -t tmpfs -o size=8m tmpfs ${JSON.stringify(tmpfs)}`);
    t.equal(mounted.code, 0, `mount -t tmpfs ${mounted.stderr}`);
    t.teardown(async () => {
      await run(`umount ${JSON.stringify(tmpfs)} || umount -l ${JSON.stringify(tmpfs)}`);
      await rmdir(tmpfs).catch(() => undefined);
    });
    const folder = await admin.createFolder(root._id, 'nospc');
    const readMe = Buffer.alloc(2 * MiB, 'girder ');
    await admin.uploadBytes({ type: 'folder', id: folder._id }, 'read-me.txt', readMe);
    const mount = await startMount({ server: viaProxy, folderId: folder._id, cacheDir: path.join(tmpfs, 'cache') });
    t.teardown(() => mount.cleanup());
    t.teardown(() => {
      if (!t.passing()) t.comment(`--- daemon log (tail) ---\n${mount.logs().slice(-8000)}`);
    });
    const sh = shell({ M: mount.mountpoint, W });
    await writeRandomFile(path.join(W, 'twenty.bin'), 20 * MiB);
    await writeFile(path.join(W, 'small.txt'), 'small after the full disk\n');
    const readSha = await sh.sha512sum('"$M/read-me.txt"');
    t.equal(readSha, (await remoteFile(admin, folder._id, 'read-me.txt')).file.sha512, 'reading works before');

    const r = await sh('cp "$W/twenty.bin" "$M/big.bin"');
    t.not(r.code, 0, 'cp of 20 MiB into an 8 MiB cache fails');
    t.match(r.stderr, /No space left on device/, 'with ENOSPC');
    await waitUploadsDone(mount.mountpoint);
    await sh('rm -f "$M/big.bin"'); // what a user does next; must not matter for the checks below
    await waitUploadsDone(mount.mountpoint);
    const big = await remoteLookup(admin, folder._id, 'big.bin');
    t.equal(big, undefined, 'nothing of big.bin reached the server');
    t.equal(await sh.sha512sum('"$M/read-me.txt"'), readSha, 'reads still work');
    await sh.ok('cp "$W/small.txt" "$M/small.txt"');
    await waitUploadsDone(mount.mountpoint);
    t.equal((await remoteFile(admin, folder._id, 'small.txt')).file.sha512, await sh.sha512sum('"$W/small.txt"'), 'a small write afterwards reaches the server');
    t.same((await admin.listItems(folder._id)).map((i) => i.name).sort(), ['read-me.txt', 'small.txt'], 'no partial or stray item');
  });

  t.test('a file changed on the server while open here: the local close wins, and the log says so', async (t) => {
    const { mount, folderId, sh } = await mountFolder(t, 'race');
    const original = await admin.uploadBytes({ type: 'folder', id: folderId }, 'doc.txt', Buffer.from('original\n'));
    await mkdir(path.join(W, 'race'));
    // open for append, write, then hold the file open until told to close it (one process: a
    // child inheriting the descriptor would flush it early when it exits)
    await writeFile(path.join(W, 'race', 'writer.cjs'), [
      "const fs = require('node:fs');",
      "const fd = fs.openSync(process.env.M + '/doc.txt', 'a');",
      "fs.writeSync(fd, 'local line\\n');",
      "fs.writeFileSync(process.env.W + '/race/opened', '');",
      'const wait = () => {',
      "  if (!fs.existsSync(process.env.W + '/race/go')) return setTimeout(wait, 50);",
      '  fs.closeSync(fd);',
      '};',
      'wait();',
    ].join('\n'));
    const writer = background(sh, `${JSON.stringify(process.execPath)} "$W/race/writer.cjs"`);
    const opened = path.join(W, 'race', 'opened');
    await waitFor(async () => writer.done() || (await stat(opened).then(() => true, () => false)), {
      timeoutMs: 60_000,
      what: 'the writer to open the file',
    });
    t.notOk(writer.done(), 'the writer holds the file open');
    const changed = await replaceContents(admin, original._id, Buffer.from('changed on the server meanwhile\n'));
    t.equal(changed._id, original._id, 'precondition: the server copy changed');
    await writeFile(path.join(W, 'race', 'go'), '');
    t.equal((await writer.result).code, 0, 'the writer closes the file');
    await waitUploadsDone(mount.mountpoint);
    const { file } = await remoteFile(admin, folderId, 'doc.txt');
    t.equal((await admin.download(file._id)).toString(), 'original\nlocal line\n', 'the server has what the local program wrote');
    t.equal(file._id, original._id, 'in the same file');
    t.same((await admin.listItems(folderId)).map((i) => i.name), ['doc.txt'], 'no duplicate item');
    await waitFor(() => /changed on the server while open here/.test(mount.logs()), { timeoutMs: 30_000, what: 'the log line' });
    t.pass('the daemon log says the local version replaced a change made on the server');
  });
});
