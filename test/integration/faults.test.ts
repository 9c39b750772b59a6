// Faults between the mount and a real Girder, injected by the fault proxy (test/helpers/fault-proxy.ts),
// and local faults (kill -9 of the daemon, two writers of one path). Everything goes through the real
// mount (the built CLI as a child process) with ordinary shell tools; the server is checked over REST.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { failingMount } from '../helpers/failing-mount.js';
import { faultRig, timed, type Timed } from '../helpers/fault-rig.js';
import type { RawFolder } from '../helpers/girder-rest.js';
import { cliPath, forceUnmount, isMounted, run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';
import { fileOf, itemsLike, replaceContents, sha512sumOf, waitForServerFile } from '../helpers/server-files.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** Never hang: every command that may meet a fault must come back well within this. */
const BOUND_MS = 30_000;
/** Fails fast: for Girder down or hung. */
const STRICT = ['--timeout', '2', '--retries', '1', '--attr-ttl', '1', '--drain-timeout', '5'];
/** Rides out short bursts of failures. */
const PATIENT = ['--timeout', '20', '--retries', '5', '--attr-ttl', '1', '--drain-timeout', '30'];

const { info, admin, proxy, viaProxy, work } = await faultRig(t, 'girder-faults');


function sh(cmd: string, timeoutMs = 300_000): Promise<Timed> {
  return timed(cmd, timeoutMs);
}

let folderSeq = 0;
async function freshFolder(name: string): Promise<RawFolder> {
  return admin.createFolder(info.folders.adminPrivate, `${name}-${process.pid}-${folderSeq++}`);
}

async function mountOn(tt: { teardown(fn: () => unknown): void }, folderId: string, args: string[], extra: { cacheDir?: string; mountpoint?: string } = {}): Promise<Mount> {
  const m = await startMount({ server: viaProxy, folderId, args, ...extra });
  tt.teardown(() => m.cleanup());
  return m;
}

/** The mount's probes find Girder answering again (within their interval: 1 s, backing off to 10 s). */
async function waitReachable(mountpoint: string): Promise<void> {
  await waitFor(async () => (await mountStatus(mountpoint)).server?.reachable !== false, { timeoutMs: 30_000, what: 'the mount to find Girder back' });
}

function alive(m: Mount): boolean {
  return m.process.exitCode === null && m.process.signalCode === null;
}

/** A writer in its own process: opens `file` for writing, waits for `<dir>/go`, writes `src`, closes. */
const WRITER = `
const fs = require('fs');
const [file, src, dir] = process.argv.slice(2);
const fd = fs.openSync(file, 'w');
fs.writeFileSync(dir + '/opened', '');
const pause = new Int32Array(new SharedArrayBuffer(4));
while (!fs.existsSync(dir + '/go')) Atomics.wait(pause, 0, 0, 50);
fs.writeSync(fd, fs.readFileSync(src));
fs.closeSync(fd);
fs.writeFileSync(dir + '/closed', '');
`;

interface HeldWriter {
  dir: string;
  /** Resolves when the writer process ends. */
  done: Promise<Timed>;
  go(): Promise<void>;
}

async function heldWriter(file: string, src: string): Promise<HeldWriter> {
  const dir = await mkdtemp(path.join(work, 'writer-'));
  const script = path.join(dir, 'writer.cjs');
  await writeFile(script, WRITER);
  let ended = false;
  const done = sh(`${q(process.execPath)} ${q(script)} ${q(file)} ${q(src)} ${q(dir)}`, 120_000).finally(() => (ended = true));
  await waitFor(async () => ended || (await readFile(path.join(dir, 'opened')).then(() => true, () => false)), {
    what: `the writer of ${file} to open it`,
  });
  if (ended) {
    const r = await done;
    throw new Error(`the writer of ${file} ended early (code ${r.code}): ${r.stderr}`);
  }
  return { dir, done, go: () => writeFile(path.join(dir, 'go'), '') };
}

t.test('Girder down at start: one clear line, a non-zero exit, nothing mounted', async (tt) => {
  const folder = await freshFolder('down-at-start');
  await proxy.down();
  const r = await failingMount(tt, folder._id, ['--api-url', proxy.apiUrl, '--timeout', '2', '--retries', '1'], info.admin.apiKey);
  tt.notOk(r.timedOut, 'the daemon gives up by itself');
  tt.not(r.code, 0, `a non-zero exit (got ${r.code})`);
  const lines = r.stderr.trim().split('\n');
  tt.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
  tt.match(lines[0], /^girder-mount: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/, 'it says the server cannot be reached');
  tt.notOk(r.mounted, 'nothing mounted');
});

t.test('Girder goes down while mounted: EIO within the bound, the mount stays and recovers, a write closed meanwhile is uploaded', async (tt) => {
  const folder = await freshFolder('down');
  const sub = await admin.createFolder(folder._id, 'sub');
  const other = await admin.createFolder(folder._id, 'other');
  await admin.uploadBytes({ type: 'folder', id: sub._id }, 'inner.txt', Buffer.from('inner\n'));
  await admin.uploadBytes({ type: 'folder', id: other._id }, 'o.txt', Buffer.from('o\n'));
  const topBytes = Buffer.from('top file, never read before the fault\n');
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'top.txt', topBytes);
  const m = await mountOn(tt, folder._id, STRICT);
  const M = m.mountpoint;

  const src = path.join(work, 'written-while-down.bin');
  const sum = await writeRandomFile(src, 3 * MiB + 5);
  const writer = await heldWriter(path.join(M, 'written-while-down.bin'), src);

  await proxy.down();
  const ls = await sh(`ls ${q(path.join(M, 'sub'))}`);
  tt.not(ls.code, 0, 'ls of an uncached directory fails');
  tt.match(ls.stderr, /Input\/output error/, 'with EIO');
  tt.ok(ls.ms < BOUND_MS, `ls returns within the bound (${ls.ms} ms)`);
  const cat = await sh(`cat ${q(path.join(M, 'top.txt'))}`);
  tt.not(cat.code, 0, 'cat of uncached data fails');
  tt.match(cat.stderr, /Input\/output error/, 'with EIO');
  tt.ok(cat.ms < BOUND_MS, `cat returns within the bound (${cat.ms} ms)`);

  // The open file is written and closed while Girder is away: close succeeds, the upload waits.
  await writer.go();
  const wrote = await writer.done;
  tt.equal(wrote.code, 0, `write and close succeed while Girder is down ${wrote.stderr}`);
  tt.ok(wrote.ms < 120_000, 'the writer never hangs');
  const pending = await mountStatus(M);
  tt.same(pending.uploads.map((u) => u.path), ['/written-while-down.bin'], 'the upload is pending');

  // A new file while Girder is down: a clean error or a pending upload, never a hang.
  const created = await sh(`printf 'created while down\\n' > ${q(path.join(M, 'created-while-down.txt'))}`);
  tt.ok(created.ms < BOUND_MS, `creating a file returns within the bound (${created.ms} ms)`);
  if (created.code !== 0) tt.match(created.stderr, /Input\/output error/, 'creating a file while down: EIO');

  // Girder hangs (accepts, never answers): the same, bounded by --timeout. While the mount holds
  // Girder for unreachable it sends nothing (but its probes): first let it find Girder back.
  await proxy.up();
  await waitReachable(M);
  const hang = proxy.on(undefined, /./, { kind: 'hang' }, Infinity);
  const lsHung = await sh(`ls ${q(path.join(M, 'other'))}`);
  tt.not(lsHung.code, 0, 'ls of an uncached directory fails while Girder hangs');
  tt.match(lsHung.stderr, /Input\/output error/, 'with EIO');
  tt.ok(lsHung.ms < BOUND_MS, `and returns within the bound (${lsHung.ms} ms)`);
  tt.ok(hang.hits > 0, 'requests did meet the hang');

  tt.ok(await isMounted(M), 'the mount stays');
  tt.ok(alive(m), 'the daemon runs');

  proxy.clear();
  await waitReachable(M);
  const lsUp = await sh(`ls ${q(path.join(M, 'sub'))} ${q(path.join(M, 'other'))}`);
  tt.equal(lsUp.code, 0, `ls works again once Girder is back ${lsUp.stderr}`);
  tt.match(lsUp.stdout, /inner\.txt/);
  tt.match(lsUp.stdout, /o\.txt/);
  const catUp = await sh(`cat ${q(path.join(M, 'top.txt'))}`);
  tt.equal(catUp.stdout, topBytes.toString(), 'cat works again, bytes exact');

  const file = await waitForServerFile(admin, folder._id, 'written-while-down.bin', sum, 180_000);
  tt.equal(file.size, 3 * MiB + 5, 'the file written while down reached Girder by itself, sha512 exact');
  tt.equal((await itemsLike(admin, folder._id, 'written-while-down.bin')).length, 1, 'once');
  if (created.code === 0) {
    await waitForServerFile(admin, folder._id, 'created-while-down.txt', sha512(Buffer.from('created while down\n')), 180_000);
  }
  await waitUploadsDone(M, 180_000);
});

t.test('5xx bursts are invisible to cat and ls', async (tt) => {
  const folder = await freshFolder('bursts');
  const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'a.bin', data);
  const dir = await admin.createFolder(folder._id, 'dir');
  const names = ['n1.txt', 'n2.txt', 'n3.txt'];
  for (const n of names) await admin.uploadBytes({ type: 'folder', id: dir._id }, n, Buffer.from(n));
  const deeper = await admin.createFolder(dir._id, 'deeper');
  await admin.uploadBytes({ type: 'folder', id: deeper._id }, 'd.txt', Buffer.from('d'));
  const m = await mountOn(tt, folder._id, PATIENT);
  const M = m.mountpoint;

  const downloads = [
    proxy.on('GET', /\/file\/[0-9a-f]{24}\/download/, { kind: 'status', status: 503 }, 1),
    proxy.on('GET', /\/file\/[0-9a-f]{24}\/download/, { kind: 'status', status: 502 }, 1),
    proxy.on('GET', /\/file\/[0-9a-f]{24}\/download/, { kind: 'status', status: 500 }, 1),
  ];
  const sum = await sha512sumOf(path.join(M, 'a.bin'));
  tt.equal(sum.code, 0, `sha512sum succeeds ${sum.stderr}`);
  tt.equal(sum.sha512, sha512(data), 'bytes exact through 3 failed downloads');
  tt.same(downloads.map((r) => r.hits), [1, 1, 1], 'each failure was served');

  const listings = [
    proxy.on('GET', /\/item\?/, { kind: 'status', status: 503 }, 3),
    proxy.on('GET', /\/folder\?/, { kind: 'status', status: 502, body: '<html><body>Bad Gateway</body></html>', contentType: 'text/html' }, 2),
    proxy.on('GET', /\/item\/[0-9a-f]{24}\/files/, { kind: 'status', status: 500 }, 2),
  ];
  const ls = await sh(`ls ${q(path.join(M, 'dir'))}`);
  tt.equal(ls.code, 0, `ls succeeds ${ls.stderr}`);
  tt.same(ls.stdout.split('\n').filter(Boolean), ['deeper', ...names], 'the listing is complete');
  tt.ok(listings.every((r) => r.hits > 0), `the failures were served (${listings.map((r) => r.hits).join(', ')})`);
  const find = await sh(`find ${q(path.join(M, 'dir'))} -type f | sort`);
  tt.equal(find.stdout.split('\n').filter(Boolean).length, 4, 'find sees every file');
});

t.test('a download cut mid-body: sha512sum of a 50 MiB file is exact', async (tt) => {
  const folder = await freshFolder('cut-download');
  const src = path.join(work, 'big.bin');
  const sum = await writeRandomFile(src, 50 * MiB);
  await admin.uploadFileFromDisk({ type: 'folder', id: folder._id }, 'big.bin', src);
  await rm(src);
  const m = await mountOn(tt, folder._id, PATIENT);
  const cuts = proxy.on('GET', /\/file\/[0-9a-f]{24}\/download/, { kind: 'cut', afterBytes: MiB + 4321 }, 2);
  const reset = proxy.on('GET', /\/file\/[0-9a-f]{24}\/download/, { kind: 'reset' }, 1);
  const got = await sha512sumOf(path.join(m.mountpoint, 'big.bin'));
  tt.equal(got.code, 0, `sha512sum succeeds ${got.stderr}`);
  tt.equal(got.sha512, sum, 'bytes exact');
  tt.equal(cuts.hits, 2, 'two downloads were cut mid-body');
  tt.equal(reset.hits, 1, 'one download was reset');
});

t.test('an upload cut mid-chunk resumes: the final sha512 is exact', async (tt) => {
  const folder = await freshFolder('cut-upload');
  const m = await mountOn(tt, folder._id, PATIENT);
  const M = m.mountpoint;

  const src = path.join(work, 'up.bin');
  const sum = await writeRandomFile(src, 12 * MiB + 77);
  const drop = proxy.on('POST', /\/file\/chunk/, { kind: 'drop-request', afterBytes: 3 * MiB }, 1);
  const offsetsBefore = proxy.seenCount('GET', /\/file\/offset/);
  const cp = await sh(`cp ${q(src)} ${q(path.join(M, 'up.bin'))}`);
  tt.equal(cp.code, 0, `cp succeeds ${cp.stderr}`);
  const file = await waitForServerFile(admin, folder._id, 'up.bin', sum);
  tt.equal(file.size, 12 * MiB + 77);
  tt.equal(drop.hits, 1, 'the chunk was cut');
  tt.ok(proxy.seenCount('GET', /\/file\/offset/) > offsetsBefore, 'the upload asked Girder for its offset');
  tt.equal((await itemsLike(admin, folder._id, 'up.bin')).length, 1, 'one item, no "up.bin (1)"');

  // New contents of the same file, cut the same way (PUT /file/{id}/contents, then chunks).
  const sum2 = await writeRandomFile(src, 7 * MiB);
  const drop2 = proxy.on('POST', /\/file\/chunk/, { kind: 'drop-request', afterBytes: MiB }, 1);
  const cp2 = await sh(`cp ${q(src)} ${q(path.join(M, 'up.bin'))}`);
  tt.equal(cp2.code, 0, `overwriting succeeds ${cp2.stderr}`);
  const file2 = await waitForServerFile(admin, folder._id, 'up.bin', sum2);
  tt.equal(file2._id, file._id, 'the same Girder file got the new contents');
  tt.equal(drop2.hits, 1, 'that chunk was cut too');

  // A 2xx answer to a chunk that is not JSON says nothing about the upload: it resumes.
  const sum3 = await writeRandomFile(src, 6 * MiB); // (under 5 MiB a new file is one POST /file, no chunk)
  const garbled = proxy.on('POST', /\/file\/chunk/, { kind: 'malformed' }, 1);
  const cp3 = await sh(`cp ${q(src)} ${q(path.join(M, 'garbled.bin'))}`);
  tt.equal(cp3.code, 0, `cp succeeds ${cp3.stderr}`);
  await waitForServerFile(admin, folder._id, 'garbled.bin', sum3);
  tt.equal(garbled.hits, 1, 'the chunk answer was garbled');
  await waitUploadsDone(M, 120_000);
  const read = await sha512sumOf(path.join(M, 'garbled.bin'));
  tt.equal(read.sha512, sum3, 'the mount still shows the file, bytes exact');
});

t.test('a token that stops working mid-session: the caller sees nothing', async (tt) => {
  const folder = await freshFolder('token');
  const sub = await admin.createFolder(folder._id, 'sub');
  await admin.createFolder(folder._id, 'other'); // listed for the first time behind a 401
  const bytes = Buffer.from('behind an expired token\n');
  await admin.uploadBytes({ type: 'folder', id: sub._id }, 'f.txt', bytes);
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'g.txt', bytes);
  const m = await mountOn(tt, folder._id, PATIENT);
  const M = m.mountpoint;
  tt.equal((await sh(`ls ${q(M)}`)).code, 0);

  const loginsBefore = proxy.seenCount('POST', /\/api_key\/token/);
  proxy.expireTokens();
  const ls = await sh(`ls ${q(path.join(M, 'sub'))}`);
  tt.equal(ls.code, 0, `ls succeeds ${ls.stderr}`);
  tt.equal(ls.stdout, 'f.txt\n');
  const cat = await sh(`cat ${q(path.join(M, 'sub', 'f.txt'))}`);
  tt.equal(cat.stdout, bytes.toString(), 'cat succeeds, bytes exact');
  tt.ok(proxy.seenCount('POST', /\/api_key\/token/) > loginsBefore, 'the daemon logged in again');
  tt.ok(proxy.seen.some((s) => s.fault === 'expired-token'), 'the expired token was refused');
  tt.match(m.logs(), /refused the session token; logging in again/, 'and said so in its log');

  // 401 on single requests of each kind (a token revoked, then a fresh login works).
  const rules = [
    proxy.on('GET', /\/file\/[0-9a-f]{24}\/download/, { kind: 'unauthorized' }, 1),
    proxy.on('GET', /\/folder\?/, { kind: 'unauthorized' }, 1),
    proxy.on('POST', /\/file\?/, { kind: 'unauthorized' }, 1), // a new 1 MiB file: one POST /file with its bytes
  ];
  const g = await sh(`cat ${q(path.join(M, 'g.txt'))}`);
  tt.equal(g.stdout, bytes.toString(), 'cat succeeds through a 401');
  const src = path.join(work, 'token-upload.bin');
  const sum = await writeRandomFile(src, MiB);
  const cp = await sh(`cp ${q(src)} ${q(path.join(M, 'new.bin'))} && mkdir ${q(path.join(M, 'newdir'))} && ls ${q(path.join(M, 'newdir'))} ${q(path.join(M, 'other'))}`);
  tt.equal(cp.code, 0, `cp, mkdir and ls succeed through 401s ${cp.stderr}`);
  await waitForServerFile(admin, folder._id, 'new.bin', sum);
  tt.same(rules.map((r) => r.hits), [1, 1, 1], 'every 401 was served');
  tt.equal((await mountStatus(M)).uploads.filter((u) => u.state === 'waiting').length, 0, 'no upload waiting');
});

t.test('malformed JSON from the server: EIO, and the daemon keeps serving', async (tt) => {
  const folder = await freshFolder('malformed');
  const a = await admin.createFolder(folder._id, 'a');
  const b = await admin.createFolder(folder._id, 'b');
  const c = await admin.createFolder(folder._id, 'c');
  for (const f of [a, b, c]) await admin.uploadBytes({ type: 'folder', id: f._id }, 'x.txt', Buffer.from('x'));
  const m = await mountOn(tt, folder._id, STRICT);
  const M = m.mountpoint;

  const cases = [
    { dir: 'a', rule: proxy.on('GET', new RegExp(`/item\\?.*folderId=${a._id}`), { kind: 'malformed' }, Infinity) },
    { dir: 'b', rule: proxy.on('GET', new RegExp(`/folder\\?.*parentId=${b._id}`), { kind: 'malformed', body: '<html>Welcome to nginx</html>' }, Infinity) },
    { dir: 'c', rule: proxy.on('GET', /\/item\/[0-9a-f]{24}\/files/, { kind: 'malformed', body: '[{"_id": 12, "name": null}]' }, Infinity) },
  ];
  for (const { dir, rule } of cases) {
    const ls = await sh(`ls ${q(path.join(M, dir))}`);
    tt.not(ls.code, 0, `ls ${dir}: fails`);
    tt.match(ls.stderr, /Input\/output error/, `ls ${dir}: EIO`);
    tt.ok(ls.ms < BOUND_MS, `ls ${dir}: within the bound (${ls.ms} ms)`);
    tt.ok(rule.hits > 0, `ls ${dir}: the bad answer was served`);
  }
  tt.ok(alive(m), 'the daemon did not crash');
  proxy.clear();
  const ls = await sh(`ls ${q(path.join(M, 'a'))} ${q(path.join(M, 'b'))} ${q(path.join(M, 'c'))}`);
  tt.equal(ls.code, 0, `everything lists once the server answers well ${ls.stderr}`);
  tt.equal(ls.stdout.match(/x\.txt/g)?.length, 3);
  tt.ok(await isMounted(M), 'still mounted');
});

t.test('kill -9 during uploads of 4 files: after a restart with the same cache dir all 4 are on the server, once', async (tt) => {
  const folder = await freshFolder('kill9');
  const mountpoint = await mkdtemp(path.join(tmpdir(), 'girder-mnt-'));
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'girder-cache-'));
  tt.teardown(async () => {
    await forceUnmount(mountpoint);
    await rmdir(mountpoint).catch(() => undefined);
    await rm(cacheDir, { recursive: true, force: true });
  });
  const first = await mountOn(tt, folder._id, PATIENT, { mountpoint, cacheDir });
  const files = [3, 4, 5, 6].map((n) => ({ name: `f${n}.bin`, size: n * MiB + n, src: path.join(work, `kill9-${n}.bin`), sum: '' }));
  for (const f of files) f.sum = await writeRandomFile(f.src, f.size);

  // Every request that carries bytes: chunks, and the POST /file that carries a file under 5 MiB.
  const carriesBytes = /\/file(\/chunk)?\?/;
  proxy.on('POST', carriesBytes, { kind: 'delay', ms: 3000 }, Infinity);
  const chunksBefore = proxy.seenCount('POST', carriesBytes);
  for (const f of files) {
    const cp = await sh(`cp ${q(f.src)} ${q(path.join(mountpoint, f.name))}`);
    tt.equal(cp.code, 0, `cp ${f.name} succeeds ${cp.stderr}`);
  }
  await waitFor(() => proxy.seenCount('POST', carriesBytes) > chunksBefore, { what: 'an upload chunk in flight', timeoutMs: 60_000 });
  await first.kill9();
  proxy.clear();
  tt.equal((await admin.listItems(folder._id)).filter((i) => i.size > 0).length, 0, 'nothing had reached Girder at the kill');

  const second = await mountOn(tt, folder._id, PATIENT, { mountpoint, cacheDir });
  for (const f of files) {
    const file = await waitForServerFile(admin, folder._id, f.name, f.sum, 180_000).catch(async (err: unknown) => {
      const items = await admin.listItems(folder._id);
      const described = await Promise.all(items.map(async (i) => `${i.name}: ${(await admin.listFiles(i._id)).map((x) => `${x.name} ${x.size}`).join(', ')}`));
      tt.comment(`on the server:\n${described.join('\n')}\nthe daemon's log:\n${second.logs()}`);
      throw err;
    });
    tt.equal(file.size, f.size, `${f.name}: on the server, sha512 exact`);
  }
  await waitUploadsDone(second.mountpoint, 60_000);
  const items = await admin.listItems(folder._id);
  tt.same(items.map((i) => i.name).sort(), files.map((f) => f.name).sort(), 'exactly the 4 items, no "name (1)" duplicates');
  for (const f of files) {
    const read = await sha512sumOf(path.join(mountpoint, f.name));
    tt.equal(read.sha512, f.sum, `${f.name}: the mount shows it, bytes exact`);
    if (read.sha512 !== f.sum) {
      const ls = await sh(`ls -la ${q(mountpoint)} ${q(path.join(mountpoint, f.name))}`);
      tt.comment(`sha512sum: ${read.stderr}\nls -la: ${ls.stdout}${ls.stderr}\nthe daemon's log:\n${second.logs()}`);
    }
  }
});

t.test('two processes writing the same path', async (tt) => {
  const folder = await freshFolder('two-writers');
  const m = await mountOn(tt, folder._id, PATIENT);
  const M = m.mountpoint;
  const dir = await mkdtemp(path.join(work, 'writers-'));
  const a = path.join(dir, 'a.bin');
  const b = path.join(dir, 'b.bin');
  const sums = { A: await writeRandomFile(a, 2 * MiB), B: await writeRandomFile(b, 2 * MiB) };

  tt.test('one after the other (interleaved closes, uploads in flight): the last close wins, exactly', async (tt) => {
    const target = path.join(M, 'same.bin');
    const order = path.join(dir, 'order');
    const lock = path.join(dir, 'lock');
    const loop = (who: 'A' | 'B', src: string): string =>
      `for i in 1 2 3 4 5; do flock ${q(lock)} -c ${q(`cat ${q(src)} > ${q(target)} && echo ${who} >> ${q(order)}`)} || exit 1; done`;
    const [ra, rb] = await Promise.all([sh(loop('A', a)), sh(loop('B', b))]);
    tt.equal(ra.code, 0, `writer A succeeds ${ra.stderr}`);
    tt.equal(rb.code, 0, `writer B succeeds ${rb.stderr}`);
    const closes = (await readFile(order, 'utf8')).trim().split('\n');
    tt.equal(closes.length, 10, 'ten closes');
    const last = closes.at(-1) as 'A' | 'B';
    await waitUploadsDone(M, 120_000);
    const file = await waitForServerFile(admin, folder._id, 'same.bin', sums[last], 60_000);
    tt.equal(file.size, 2 * MiB, `the server holds exactly writer ${last}'s bytes (the last close)`);
    tt.equal((await itemsLike(admin, folder._id, 'same.bin')).length, 1, 'one item');
    tt.equal((await sha512sumOf(target)).sha512, sums[last], 'the mount shows the same bytes');
  });

  tt.test('truly overlapping: no duplicate, every block is one writer\'s, server and mount agree', async (tt) => {
    const target = path.join(M, 'overlap.bin');
    const dd = (src: string): string => `dd if=${q(src)} of=${q(target)} bs=64k status=none`;
    const [ra, rb] = await Promise.all([sh(dd(a)), sh(dd(b))]);
    tt.equal(ra.code, 0, `dd A succeeds ${ra.stderr}`);
    tt.equal(rb.code, 0, `dd B succeeds ${rb.stderr}`);
    await waitUploadsDone(M, 120_000);
    const file = await waitFor(() => fileOf(admin, folder._id, 'overlap.bin'), { what: 'overlap.bin on the server' });
    tt.equal((await itemsLike(admin, folder._id, 'overlap.bin')).length, 1, 'one item');
    const server = await admin.download(file._id);
    tt.equal(server.length, 2 * MiB, 'full size');
    const [bytesA, bytesB] = [await readFile(a), await readFile(b)];
    const BLOCK = 4096;
    let foreign = 0;
    for (let off = 0; off < server.length; off += BLOCK) {
      const blk = server.subarray(off, off + BLOCK);
      if (!blk.equals(bytesA.subarray(off, off + BLOCK)) && !blk.equals(bytesB.subarray(off, off + BLOCK))) foreign++;
    }
    tt.equal(foreign, 0, 'every 4 KiB block is A\'s or B\'s (no garbage, no hole)');
    tt.equal((await sha512sumOf(target)).sha512, createHash('sha512').update(server).digest('hex'), 'the mount shows what the server holds');
  });

  tt.test('a remote change overwritten by a local close is logged', async (tt) => {
    const original = await admin.uploadBytes({ type: 'folder', id: folder._id }, 'shared.txt', Buffer.from('original\n'));
    const src = path.join(dir, 'local.txt');
    const local = Buffer.from('written here, closed last\n');
    await writeFile(src, local);
    // The writer must open the file the mount knows (not create it anew past a cached listing).
    await waitFor(async () => (await run(`test -f ${q(path.join(M, 'shared.txt'))}`)).code === 0, { what: 'the mount to list shared.txt' });
    const writer = await heldWriter(path.join(M, 'shared.txt'), src);
    await replaceContents(admin, original._id, Buffer.from('changed elsewhere meanwhile\n'));
    await writer.go();
    const done = await writer.done;
    tt.equal(done.code, 0, `write and close succeed ${done.stderr}`);
    await waitForServerFile(admin, folder._id, 'shared.txt', sha512(local));
    await waitFor(() => /file changed on the server while open here; the local version replaces it/.test(m.logs()), {
      what: 'the daemon to log the overwritten remote change',
    });
    tt.pass('the server holds the local bytes, and the daemon logged that a remote change was replaced');
    tt.equal((await itemsLike(admin, folder._id, 'shared.txt')).length, 1, 'one item');
  });
});
