// Uploads wait, they do not give up (issue 12), and say where the data is (issue 11, item 4): a real
// Girder behind the fault proxy, the built CLI mounting it, ordinary shell tools on the mount,
// `girder-mount status` as a script would run it, and the server checked over REST.
import { mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { MountStatus } from '../../src/control/status.js';
import { faultRig } from '../helpers/fault-rig.js';
import type { RawFolder } from '../helpers/girder-rest.js';
import { forceUnmount, run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { runStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';
import { fileOf, itemsLike, sha512sumOf, waitForServerFile } from '../helpers/server-files.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** Short request timeouts, so each try ends fast; the queue's own backoff (1 s doubling to 60 s) is the daemon's. */
const ARGS = ['--timeout', '5', '--retries', '1', '--attr-ttl', '1', '--drain-timeout', '3'];

const { info, admin, proxy, viaProxy, work } = await faultRig(t, 'upload-waits');

let folderSeq = 0;
async function freshFolder(name: string): Promise<RawFolder> {
  return admin.createFolder(info.folders.adminPrivate, `${name}-${process.pid}-${folderSeq++}`);
}

interface MountOpts {
  user?: 'admin' | 'user';
  env?: NodeJS.ProcessEnv;
  cacheDir?: string;
  mountpoint?: string;
}

async function mountOn(tt: { teardown(fn: () => unknown): void; passing(): boolean; comment(s: string): void }, folderId: string, opts: MountOpts = {}): Promise<Mount> {
  const m = await startMount({ server: viaProxy, folderId, args: ARGS, ...opts });
  tt.teardown(async () => {
    if (!tt.passing()) tt.comment(`--- daemon log (tail) ---\n${m.logs().slice(-6000)}`);
    await m.cleanup();
  });
  return m;
}

/** Every request of an upload (new items, new files, new contents, chunks); listings and reads pass. */
function holdUploads(action: Parameters<typeof proxy.on>[2]): void {
  proxy.on('POST', /\/(item|file)(\?|$)/, action, Infinity);
  proxy.on('POST', /\/file\/chunk/, action, Infinity);
  proxy.on('PUT', /\/file\/[0-9a-f]{24}\/contents/, action, Infinity);
}

/** A writer in its own process: opens `file` for writing, waits for `<dir>/go`, writes `src`, optionally fsyncs, closes. */
const WRITER = `
const fs = require('fs');
const [file, src, dir, doFsync] = process.argv.slice(2);
const fd = fs.openSync(file, 'w');
fs.writeFileSync(dir + '/opened', '');
const pause = new Int32Array(new SharedArrayBuffer(4));
while (!fs.existsSync(dir + '/go')) Atomics.wait(pause, 0, 0, 50);
fs.writeSync(fd, fs.readFileSync(src));
let fsynced = 'not asked';
if (doFsync === 'fsync') { try { fs.fsyncSync(fd); fsynced = 'ok'; } catch (e) { fsynced = e.code; } }
fs.closeSync(fd);
process.stdout.write(JSON.stringify({ closed: 'ok', fsynced }));
`;

interface HeldWriter {
  go(): Promise<void>;
  /** What the writer reported: close always 'ok' (it throws otherwise), fsync 'ok', an errno, or 'not asked'. */
  done: Promise<{ code: number | null; closed?: string; fsynced?: string; stderr: string }>;
}

async function heldWriter(file: string, src: string, fsync = false): Promise<HeldWriter> {
  const dir = await mkdtemp(path.join(work, 'writer-'));
  await writeFile(path.join(dir, 'writer.cjs'), WRITER);
  const done = run(`${q(process.execPath)} ${q(path.join(dir, 'writer.cjs'))} ${q(file)} ${q(src)} ${q(dir)} ${fsync ? 'fsync' : ''}`, { timeoutMs: 120_000 })
    .then((r) => ({ code: r.code, stderr: r.stderr, ...(r.code === 0 ? (JSON.parse(r.stdout) as { closed: string; fsynced: string }) : {}) }));
  await waitFor(() => readFile(path.join(dir, 'opened')).then(() => true, () => false), { what: `the writer of ${file} to open it` });
  return { go: () => writeFile(path.join(dir, 'go'), ''), done };
}

/** `status --json` and `status` (text), with their exit codes, once `check` holds for the JSON. */
async function statusWhen(M: string, check: (s: MountStatus) => boolean, what: string, timeoutMs = 60_000): Promise<{ json: MountStatus; code: number | null; text: string; textCode: number | null }> {
  return waitFor(async () => {
    const r = await runStatus(M, true);
    const json = JSON.parse(r.stdout) as MountStatus;
    if (!check(json)) return undefined;
    const text = await runStatus(M, false);
    return { json, code: r.code, text: text.stdout, textCode: text.code };
  }, { timeoutMs, intervalMs: 250, what });
}

const uploadOf = (s: MountStatus, p: string): MountStatus['uploads'][number] | undefined => s.uploads.find((u) => u.path === p);

t.test('a close while the API key is deactivated reaches Girder after reactivation, without a restart; status says waiting meanwhile', async (tt) => {
  const folder = await freshFolder('revoked-key');
  const key = await admin.post<{ _id: string; key: string }>('/api_key', { name: `mount-${process.pid}-${folderSeq}`, active: true });
  const m = await mountOn(tt, folder._id, { env: { GIRDER_API_KEY: key.key } });
  const M = m.mountpoint;
  const src = path.join(work, 'w.bin');
  const sum = await writeRandomFile(src, 3 * MiB + 7);
  const src2 = path.join(work, 'synced.bin');
  const sum2 = await writeRandomFile(src2, MiB + 3);
  const w = await heldWriter(path.join(M, 'w.bin'), src);
  const w2 = await heldWriter(path.join(M, 'synced.bin'), src2, true);

  await admin.put(`/api_key/${key._id}`, { active: false });
  await w.go();
  await w2.go();
  const closed = await w.done;
  tt.equal(closed.code, 0, `close() returns 0 while the key is refused ${closed.stderr}`);
  const synced = await w2.done;
  tt.equal(synced.code, 0, `the fsync writer ends ${synced.stderr}`);
  tt.equal(synced.fsynced, 'EIO', 'fsync says the bytes are not on the server yet');

  const waiting = await statusWhen(M, (s) => uploadOf(s, '/w.bin')?.state === 'waiting' && uploadOf(s, '/synced.bin')?.state === 'waiting', 'both uploads to wait');
  tt.equal(waiting.code, 3, 'status --json exits 3 while an upload waits');
  tt.equal(waiting.textCode, 3, 'status exits 3 too');
  tt.match(uploadOf(waiting.json, '/w.bin'), { state: 'waiting', reason: 'Girder refused the credentials (400: Invalid API key.)', size: 3 * MiB + 7 });
  tt.match(waiting.text, /^ {2}\/w\.bin {2}waiting: Girder refused the credentials \(400: Invalid API key\.\); retry in \d+ s$/m, 'status shows it as waiting, and why');
  tt.equal((await sha512sumOf(path.join(M, 'w.bin'))).sha512, sum, 'the mount serves the new bytes meanwhile');
  tt.equal(await fileOf(admin, folder._id, 'w.bin'), undefined, 'Girder has nothing yet');

  // Let the backoff grow, so a prompt upload can only come from the re-login hook.
  const far = await statusWhen(M, (s) => (uploadOf(s, '/w.bin')?.retryInS ?? 0) >= 6, 'the next try to be 6 s or more away', 90_000);
  const retryInS = uploadOf(far.json, '/w.bin')?.retryInS ?? 0;
  await admin.put(`/api_key/${key._id}`, { active: true });
  const reactivated = Date.now();
  // Any request of the mount logs in again (the old token died with the deactivation).
  await run(`ls ${q(M)}`);
  await waitForServerFile(admin, folder._id, 'w.bin', sum, 60_000);
  await waitForServerFile(admin, folder._id, 'synced.bin', sum2, 60_000);
  const took = Date.now() - reactivated;
  tt.ok(took < retryInS * 1000, `both reached Girder ${took} ms after the reactivation, before the next scheduled try (${retryInS} s)`);
  tt.match(m.logs(), /"why":"a new login to Girder".*"msg":"trying the waiting uploads now"/, 'the new login woke them');
  const done = await statusWhen(M, (s) => s.uploads.length === 0, 'status to be clear');
  tt.equal(done.code, 0, 'status exits 0 once everything is on the server');
  tt.equal((await itemsLike(admin, folder._id, 'w.bin')).length, 1, 'one item, no "w.bin (1)"');
  tt.notMatch(m.logs(), /"level":50/, 'no error in the log');
});

t.test('a 403 after an ACL change: the upload waits; once write access is back, SIGHUP sends it at once', async (tt) => {
  const folder = await freshFolder('acl');
  const grant = (level: number) => admin.put(`/folder/${folder._id}/access`, {
    access: JSON.stringify({ users: [{ id: info.admin.id, level: 2, flags: [] }, { id: info.user.id, level, flags: [] }], groups: [] }),
    public: false,
  });
  await grant(1);
  const m = await mountOn(tt, folder._id, { user: 'user' });
  const M = m.mountpoint;
  const src = path.join(work, 'acl.bin');
  const sum = await writeRandomFile(src, 2 * MiB + 1);
  const w = await heldWriter(path.join(M, 'acl.bin'), src);
  await grant(0);
  await w.go();
  tt.equal((await w.done).code, 0, 'close() returns 0 after the user lost write access');
  const waiting = await statusWhen(M, (s) => uploadOf(s, '/acl.bin')?.state === 'waiting', 'the upload to wait');
  tt.equal(waiting.code, 3, 'status exits 3');
  tt.match(uploadOf(waiting.json, '/acl.bin')?.reason, /^Girder denied access \(403: Write access denied for folder [0-9a-f]{24}/);
  tt.equal((await sha512sumOf(path.join(M, 'acl.bin'))).sha512, sum, 'the mount serves the new bytes meanwhile');
  const far = await statusWhen(M, (s) => (uploadOf(s, '/acl.bin')?.retryInS ?? 0) >= 4, 'the next try to be 4 s or more away', 60_000);
  const retryInS = uploadOf(far.json, '/acl.bin')?.retryInS ?? 0;

  await grant(1);
  const granted = Date.now();
  m.process.kill('SIGHUP');
  await waitForServerFile(admin, folder._id, 'acl.bin', sum, 60_000);
  tt.ok(Date.now() - granted < retryInS * 1000, `on the server ${Date.now() - granted} ms after SIGHUP, before the next scheduled try (${retryInS} s)`);
  tt.equal((await statusWhen(M, (s) => s.uploads.length === 0, 'status to be clear')).code, 0);
});

t.test('a 5xx window: the upload waits, then goes by itself', async (tt) => {
  const folder = await freshFolder('5xx');
  const m = await mountOn(tt, folder._id);
  const M = m.mountpoint;
  holdUploads({ kind: 'status', status: 503 });
  const src = path.join(work, 'five.bin');
  const sum = await writeRandomFile(src, 4 * MiB + 9);
  const cp = await run(`cp ${q(src)} ${q(path.join(M, 'five.bin'))}`);
  tt.equal(cp.code, 0, `cp succeeds while Girder answers 503 ${cp.stderr}`);
  const waiting = await statusWhen(M, (s) => uploadOf(s, '/five.bin')?.state === 'waiting', 'the upload to wait');
  tt.equal(waiting.code, 3, 'status exits 3');
  tt.equal(uploadOf(waiting.json, '/five.bin')?.reason, 'Girder failed (503: injected 503)');
  tt.equal((await sha512sumOf(path.join(M, 'five.bin'))).sha512, sum, 'the mount serves the new bytes meanwhile');
  await waitFor(() => proxy.seenCount('POST', /\/item(\?|$)/) >= 3, { timeoutMs: 60_000, what: 'a few tries' });
  proxy.clear();
  await waitForServerFile(admin, folder._id, 'five.bin', sum, 90_000);
  tt.equal((await itemsLike(admin, folder._id, 'five.bin')).length, 1, 'one item');
  await waitUploadsDone(M, 60_000);
});

t.test('the target folder deleted on the server: the bytes go to lost+found; status says failed, kept at <path>, across a restart', async (tt) => {
  const folder = await freshFolder('gone');
  const sub = await admin.createFolder(folder._id, 'S');
  const mountpoint = await mkdtemp(path.join(tmpdir(), 'girder-mnt-gone-'));
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'girder-cache-gone-'));
  tt.teardown(async () => {
    await forceUnmount(mountpoint);
    await rmdir(mountpoint).catch(() => undefined);
    await rm(cacheDir, { recursive: true, force: true });
  });
  const m = await mountOn(tt, folder._id, { mountpoint, cacheDir });
  holdUploads({ kind: 'status', status: 503 });
  const src = path.join(work, 'x.bin');
  const sum = await writeRandomFile(src, MiB + 5);
  tt.equal((await run(`cp ${q(src)} ${q(path.join(mountpoint, 'S', 'x.bin'))}`)).code, 0, 'cp succeeds');
  await waitFor(() => proxy.seenCount('POST', /\/item(\?|$)/) > 0, { what: 'the upload to be tried' });
  await admin.delete(`/folder/${sub._id}`);
  proxy.clear();

  const keptAt = path.join(cacheDir, 'lost+found', 'S', 'x.bin');
  const failed = await statusWhen(mountpoint, (s) => s.failedUploads.length === 1, 'the upload to fail for good', 90_000);
  tt.same(failed.json.uploads, [], 'it left the queue');
  tt.match(failed.json.failedUploads[0], { path: '/S/x.bin', keptAt, size: MiB + 5, reason: 'the folder it was written to was deleted on the server' });
  tt.equal(failed.code, 4, 'status exits 4 while a failed upload is kept');
  tt.match(failed.text, `  /S/x.bin  failed: the folder it was written to was deleted on the server, kept at ${keptAt}`);
  tt.match(failed.text, `until you move or delete its file in ${path.join(cacheDir, 'lost+found')}`);
  tt.equal(sha512(await readFile(keptAt)), sum, 'the bytes in lost+found are exact');
  tt.match(m.logs(), new RegExp(`"level":40.*"keptAt":"${keptAt.replace(/[.+]/g, '\\$&')}".*its bytes are kept at`), 'a warning names the path');

  await m.stop();
  const again = await mountOn(tt, folder._id, { mountpoint, cacheDir });
  const after = await statusWhen(again.mountpoint, (s) => s.failedUploads.length === 1, 'status after a restart');
  tt.equal(after.code, 4, 'still listed after a restart (read from lost+found)');
  await rm(keptAt);
  const cleared = await statusWhen(again.mountpoint, (s) => s.failedUploads.length === 0, 'status once the file is removed');
  tt.equal(cleared.code, 0, 'removing the file clears it');
});

t.test('a restart with journaled uploads: their paths show the new bytes until the uploads end; shutdown logs one summary line', async (tt) => {
  const folder = await freshFolder('restart');
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'old.txt', Buffer.from('the server\'s old content\n'));
  const mountpoint = await mkdtemp(path.join(tmpdir(), 'girder-mnt-restart-'));
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'girder-cache-restart-'));
  tt.teardown(async () => {
    await forceUnmount(mountpoint);
    await rmdir(mountpoint).catch(() => undefined);
    await rm(cacheDir, { recursive: true, force: true });
  });
  const first = await mountOn(tt, folder._id, { mountpoint, cacheDir });
  await waitFor(async () => (await run(`test -f ${q(path.join(mountpoint, 'old.txt'))}`)).code === 0, { what: 'old.txt in the mount' });
  holdUploads({ kind: 'hang' });
  const newText = 'written before the restart\n';
  tt.equal((await run(`printf %s ${q(newText)} > ${q(path.join(mountpoint, 'old.txt'))}`)).code, 0, 'overwrite old.txt');
  const src = path.join(work, 'new.bin');
  const sum = await writeRandomFile(src, 3 * MiB + 11);
  tt.equal((await run(`cp ${q(src)} ${q(path.join(mountpoint, 'new.bin'))}`)).code, 0, 'cp new.bin');
  // (the shell's truncate before its write can queue an empty version of old.txt first: three jobs)
  await statusWhen(mountpoint, (s) => ['/old.txt', '/new.bin'].every((p) => uploadOf(s, p) !== undefined), 'both files to be pending');

  tt.equal(await first.stop(), 0, 'the daemon stops with uploads pending');
  const journal = path.join(cacheDir, 'journal');
  const logs = first.logs();
  const summary = new RegExp(`"msg":"\\d+ uploads pending, journaled in ${journal}; they resume at the next start with --cache-dir ${cacheDir}"`);
  tt.equal(logs.split('\n').filter((l) => summary.test(l)).length, 1, 'one summary line says where the uploads are');
  tt.notMatch(logs, /"level":50/, 'no error logged for the interrupted uploads');
  tt.notMatch(logs, /failed\//, 'no mention of failed/');

  const second = await mountOn(tt, folder._id, { mountpoint, cacheDir });
  tt.equal((await run(`cat ${q(path.join(mountpoint, 'old.txt'))}`)).stdout, newText, 'old.txt reads its new content, not the server\'s');
  const st = await run(`stat -c %s ${q(path.join(mountpoint, 'old.txt'))} ${q(path.join(mountpoint, 'new.bin'))}`);
  tt.same(st.stdout.trim().split('\n'), [String(newText.length), String(3 * MiB + 11)], 'stat shows the new sizes');
  tt.match((await run(`ls ${q(mountpoint)}`)).stdout, /new\.bin/, 'ls shows the new file');
  tt.equal((await sha512sumOf(path.join(mountpoint, 'new.bin'))).sha512, sum, 'new.bin reads its journaled bytes');
  const resumed = await statusWhen(mountpoint, (s) => s.uploads.length === 2 && s.uploads.every((u) => u.resumed === true), 'the resumed uploads in status');
  tt.same(resumed.json.uploads.map((u) => u.path).sort(), ['/new.bin', '/old.txt'], 'status lists the journaled files, marked resumed');
  tt.equal(await fileOf(admin, folder._id, 'new.bin'), undefined, 'Girder does not have new.bin yet');
  const oldFile = await fileOf(admin, folder._id, 'old.txt');
  tt.equal((await admin.download(oldFile?._id ?? '')).toString(), 'the server\'s old content\n', 'nor the new old.txt');

  tt.equal((await run(`printf 'appended after the restart\\n' >> ${q(path.join(mountpoint, 'old.txt'))}`)).code, 0, 'a resumed path takes a new write');
  const finalText = `${newText}appended after the restart\n`;
  tt.equal((await run(`cat ${q(path.join(mountpoint, 'old.txt'))}`)).stdout, finalText);

  proxy.clear();
  await waitForServerFile(admin, folder._id, 'new.bin', sum, 120_000);
  await waitForServerFile(admin, folder._id, 'old.txt', sha512(Buffer.from(finalText)), 120_000);
  await waitUploadsDone(mountpoint, 60_000);
  tt.equal((await run(`cat ${q(path.join(mountpoint, 'old.txt'))}`)).stdout, finalText, 'the mount shows what the server now holds');
  tt.ok(second.process.exitCode === null, 'the daemon runs');
});
