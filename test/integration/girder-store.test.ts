// The Girder layer (client, RestStore, download, upload) against a real Girder 5 server.
import t from 'tap';
import { versionKeyOf } from '../../src/vfs/cache/version-key.js';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { GirderError, isMissing, isRefused, isTooDeep } from '../../src/girder/girder-error.js';
import type { Credentials } from '../../src/girder/auth.js';
import { GirderClient, type ClientOptions } from '../../src/girder/client.js';
import { readRange } from '../../src/girder/download.js';
import { RestStore } from '../../src/girder/rest-store.js';
import type { RangeStream } from '../../src/girder/store.js';
import type { FileDoc } from '../../src/girder/types.js';
import { ONE_REQUEST_MAX } from '../../src/girder/upload.js';
import { silentLogger } from '../../src/log.js';
import { startGirder } from '../helpers/girder-server.js';

const MiB = 1024 * 1024;

const server = await startGirder();
t.teardown(() => server.stop());
const info = server.info;
const work = await mkdtemp(path.join(os.tmpdir(), 'girder-store-test-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

const clients: GirderClient[] = [];
t.teardown(async () => {
  for (const c of clients) await c.close();
});

function client(credentials: Credentials, extra: Partial<ClientOptions> = {}): GirderClient {
  const c = new GirderClient({
    apiUrl: info.apiUrl,
    credentials,
    timeoutMs: 60_000,
    retries: 3,
    retryBaseMs: 20,
    logger: silentLogger(),
    ...extra,
  });
  clients.push(c);
  return c;
}

const adminKey: Credentials = { kind: 'apiKey', key: info.admin.apiKey };
const admin = client(adminKey);
await admin.login();
const store = new RestStore(admin, silentLogger(), { pageSize: 3 });

/** Expect `promise` to reject with a GirderError and return it (anything else fails the test). */
async function girderError(promise: Promise<unknown>): Promise<GirderError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GirderError) return err;
    throw new Error(`expected a GirderError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected a rejection');
}

/** A local file of `size` random bytes; returns its path and SHA-512. */
async function localFile(name: string, size: number): Promise<{ path: string; size: number; sha512: string }> {
  const file = path.join(work, name);
  const hash = createHash('sha512');
  const out = createWriteStream(file);
  for (let left = size; left > 0;) {
    const block = randomBytes(Math.min(left, 4 * MiB));
    hash.update(block);
    left -= block.length;
    if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { path: file, size, sha512: hash.digest('hex') };
}

async function newFolder(name: string, parentId = info.folders.adminPrivate): Promise<string> {
  return (await store.createFolder(parentId, name)).id;
}

/** Start a throwaway HTTP server answering every request with `status` and an HTML body. */
async function htmlServer(status: number): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/html' });
    res.end('<html><body>not here</body></html>');
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/api/v1`,
    close: () => new Promise<void>((resolve) => s.close(() => resolve())),
  };
}

t.test('checkServer', async (tt) => {
  tt.equal(await admin.checkServer(), '5.0.21');

  const html = await htmlServer(404);
  try {
    const c = client(adminKey, { apiUrl: html.url, retries: 0 });
    const err = await girderError(c.checkServer());
    tt.equal(err.type, 'not-girder');
    tt.equal(err.message, `${html.url} does not look like a Girder API (GET /system/version answered 404 text/html)`);
  } finally {
    await html.close();
  }

  const ok200 = await htmlServer(200);
  try {
    const c = client({ kind: 'token', token: 'x' }, { apiUrl: ok200.url, retries: 0 });
    const err = await girderError(c.get('/anything', undefined, { auth: false }));
    tt.equal(err.type, 'malformed', 'HTML where JSON is expected');
  } finally {
    await ok200.close();
  }

  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const c = client(adminKey, { apiUrl: `http://127.0.0.1:${port}/api/v1`, retries: 1 });
  const err = await girderError(c.checkServer());
  tt.equal(err.status, 0);
  tt.equal(err.type, 'network');
  tt.match(err.message, `127.0.0.1:${port}`);
  tt.match(err.message, 'ECONNREFUSED');
});

t.test('login', async (tt) => {
  tt.equal((await client(adminKey).login()).login, 'admin');
  const byPassword = await client({ kind: 'password', username: 'user', password: info.user.password }).login();
  tt.equal(byPassword.login, 'user');
  tt.equal(byPassword.admin, false);

  const basic = Buffer.from(`admin:${info.admin.password}`).toString('base64');
  const res = await fetch(`${info.apiUrl}/user/authentication`, { headers: { authorization: `Basic ${basic}` } });
  const token = ((await res.json()) as { authToken: { token: string } }).authToken.token;
  const byToken = client({ kind: 'token', token });
  tt.equal((await byToken.login()).login, 'admin');
  tt.equal((await new RestStore(byToken, silentLogger()).getFolder(info.folders.adminPrivate)).name, 'Private');

  const badKey = await girderError(client({ kind: 'apiKey', key: 'x'.repeat(40) }).login());
  tt.equal(badKey.type, 'auth');
  tt.equal(badKey.message, 'the API key was refused by the server (Invalid API key.)');
  const badPassword = await girderError(client({ kind: 'password', username: 'admin', password: 'wrong' }).login());
  tt.equal(badPassword.type, 'auth');
  tt.equal(badPassword.message, 'the server refused the login of user "admin" (Login failed.)');
  tt.ok(isRefused(badPassword));
  const badToken = await girderError(client({ kind: 'token', token: 'y'.repeat(64) }).login());
  tt.equal(badToken.type, 'auth');
  tt.match(badToken.message, /token was refused/);
  tt.same(await store.me(), { id: info.admin.id, login: 'admin', admin: true });
});

t.test('a refused token is renewed once without the callers noticing', async (tt) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done): void {
      lines.push(chunk.toString());
      done();
    },
  });
  const c = client(adminKey, { logger: pino({ level: 'info' }, sink) });
  await c.login();
  // Removes the client's own token on the server (DELETE /user/authentication does not: Girder 5.0.21's
  // Token.expire saves the old document back).
  await c.delete('/token/session');
  const s = new RestStore(c, silentLogger());
  const folders = await Promise.all(Array.from({ length: 6 }, () => s.getFolder(info.folders.adminPrivate)));
  tt.same(folders.map((f) => f.name), Array(6).fill('Private'));
  tt.equal(lines.filter((l) => l.includes('logging in again')).length, 1, 'one login for all callers');
  tt.notOk(lines.join('').includes(info.admin.apiKey), 'the key is never logged');
});

t.test('listings page through every entry', async (tt) => {
  const parent = await newFolder('listing');
  const names = ['e', 'b', 'g', 'a', 'f', 'c', 'd'];
  for (const name of names) {
    await store.createFolder(parent, `dir-${name}`);
    await store.createItem(parent, `item-${name}`);
  }
  const before = admin.stats().requests;
  const folders = await store.listFolders(parent);
  tt.same(folders.map((f) => f.name).sort(), names.map((n) => `dir-${n}`).sort());
  tt.ok(admin.stats().requests - before >= 3, 'several pages were asked for');
  tt.ok(folders.every((f) => f.parentId === parent && f.parentType === 'folder' && f.accessLevel === 2));
  const items = await store.listItems(parent);
  tt.same(items.map((i) => i.name).sort(), names.map((n) => `item-${n}`).sort());
  tt.ok(items.every((i) => i.folderId === parent && i.created > 0 && i.updated >= i.created));
  tt.same((await store.findItems(parent, 'item-c')).map((i) => i.name), ['item-c']);
  tt.same(await store.findItems(parent, 'item-C'), []);
  tt.same(await store.listFolders(folders[0]!.id), []);
});

t.test('uploads, range reads, replace, copy, dedup lookup', async (tt) => {
  const parent = await newFolder('files');
  const item = await store.createItem(parent, 'data');
  tt.ok(await store.hasHashsum());

  const uploaded = new Map<number, { doc: FileDoc; local: { path: string; sha512: string } }>();
  for (const size of [0, 1, 5 * MiB - 1, 5 * MiB + 1, 70 * MiB]) {
    const local = await localFile(`up-${size}`, size);
    const ids: string[] = [];
    const progress: Array<[number, number]> = [];
    const doc = await store.createFile({ itemId: item.id }, `f-${size}.bin`, local, {
      onUploadId: (id) => void ids.push(id),
      onProgress: (sent, total) => void progress.push([sent, total]),
    });
    tt.equal(doc.size, size, `size ${size}`);
    tt.equal(doc.itemId, item.id);
    tt.equal(doc.name, `f-${size}.bin`);
    tt.equal(doc.sha512, local.sha512, `sha512 of ${size} bytes`);
    // under 5 MiB the bytes go with POST /file itself: no upload id to report
    tt.equal(ids.length, size === 0 || size < ONE_REQUEST_MAX ? 0 : 1, 'upload id reported once, when there is one');
    if (size > 0) tt.same(progress.at(-1), [size, size]);
    uploaded.set(size, { doc, local });
  }
  tt.same((await store.listFiles(item.id)).map((f) => f.size).sort((a, b) => a - b), [0, 1, 5 * MiB - 1, 5 * MiB + 1, 70 * MiB]);

  // range reads
  const big = uploaded.get(5 * MiB + 1)!;
  const content = await readFile(big.local.path);
  const ref = { id: big.doc.id, size: big.doc.size };
  for (const [offset, length] of [[0, 1], [12345, 100_000], [4095, 4097], [5 * MiB - 7, 100], [5 * MiB, 1]] as const) {
    const into = Buffer.alloc(length + 3);
    const n = await store.readRange(ref, offset, length, into, 3);
    tt.equal(n, Math.min(length, content.length - offset), `read at ${offset}`);
    tt.ok(into.subarray(3, 3 + n).equals(content.subarray(offset, offset + n)), `bytes at ${offset}`);
  }
  const whole = Buffer.alloc(content.length);
  tt.equal(await store.readRange(ref, 0, content.length, whole), content.length);
  tt.ok(whole.equals(content), 'whole file');
  const tail = Buffer.alloc(64);
  tt.equal(await store.readRange(ref, content.length - 10, 64, tail), 10, 'a read past EOF stops at EOF');
  tt.ok(tail.subarray(0, 10).equals(content.subarray(content.length - 10)));
  tt.equal(await store.readRange(ref, content.length, 10, tail), 0, 'at EOF');
  tt.equal(await store.readRange(ref, content.length + 100, 10, tail), 0, 'beyond EOF');
  const empty = uploaded.get(0)!.doc;
  tt.equal(await store.readRange({ id: empty.id, size: 0 }, 0, 10, tail), 0, 'empty file');
  tt.equal(await store.readRange({ id: empty.id, size: 5 }, 0, 5, tail).catch((e: GirderError) => e.type), 'stale',
    'a 200 empty body for a file believed non-empty is refused');
  const one = uploaded.get(1)!;
  tt.equal(await store.readRange({ id: one.doc.id, size: 20 }, 10, 5, tail).catch((e: GirderError) => e.type), 'stale',
    'the whole-file answer to an unsatisfiable range is refused');
  const oneByte = Buffer.alloc(1);
  tt.equal(await store.readRange({ id: one.doc.id, size: 1 }, 0, 1, oneByte), 1);
  tt.ok(oneByte.equals(await readFile(one.local.path)));

  // replace keeps the id
  const target = uploaded.get(5 * MiB - 1)!.doc;
  const replacement = await localFile('replacement', 6 * MiB + 3);
  const replaced = await store.replaceFile(target.id, replacement);
  tt.equal(replaced.id, target.id, 'same file id');
  tt.equal(replaced.size, replacement.size);
  tt.equal(replaced.sha512, replacement.sha512);
  const back = Buffer.alloc(replacement.size);
  tt.equal(await store.readRange({ id: replaced.id, size: replaced.size }, 0, replacement.size, back), replacement.size);
  tt.ok(back.equals(await readFile(replacement.path)), 'new contents read back');
  const emptied = await store.replaceFile(target.id, await localFile('zero', 0));
  tt.equal(emptied.id, target.id);
  tt.equal(emptied.size, 0);

  // copy and lookup by hash
  const other = await store.createItem(parent, 'copy-target');
  const copy = await store.copyFile(big.doc.id, other.id);
  tt.not(copy.id, big.doc.id);
  tt.equal(copy.itemId, other.id);
  tt.equal(copy.size, big.doc.size);
  tt.equal(copy.sha512, big.doc.sha512);
  const hits = await store.filesBySha512(big.local.sha512);
  tt.ok(hits.some((f) => f.id === big.doc.id) && hits.some((f) => f.id === copy.id), 'both found by hash');
  tt.same(await store.filesBySha512('f'.repeat(128)), []);
  const renamed = await store.renameFile(copy.id, 'renamed.bin');
  tt.equal(renamed.name, 'renamed.bin');
  tt.ok(renamed.updated !== undefined, 'a renamed file has updated');

  // What the uploader's server-side copy relies on: a copy made after the source's contents were
  // replaced holds the new bytes, and its document says so (size, sha512, the source's `created`).
  const looked = (await store.filesBySha512(big.local.sha512)).find((f) => f.id === big.doc.id)!;
  const newer = await localFile('newer', big.doc.size);
  const swapped = await store.replaceFile(big.doc.id, newer);
  const late = await store.copyFile(looked.id, other.id);
  tt.equal(late.sha512, newer.sha512, "a late copy claims the new contents' hash");
  tt.not(late.sha512, looked.sha512);
  tt.equal(late.created, swapped.created, "a copy keeps the source's created");
  tt.not(versionKeyOf(late), versionKeyOf(looked), 'so its version is not the one looked up');
  const lateBytes = Buffer.alloc(late.size);
  await store.readRange({ id: late.id, size: late.size }, 0, late.size, lateBytes);
  tt.ok(lateBytes.equals(await readFile(newer.path)), 'and it holds the new bytes');
});

/** Pull `length` bytes out of a stream with reads of varied sizes, several queued at once. */
async function drain(rs: RangeStream, length: number): Promise<Buffer> {
  const sizes = [1, 4096, 65_543, 300_001, 17, 1_000_000];
  const out = Buffer.alloc(length);
  const queued: Array<Promise<void>> = [];
  let at = 0;
  for (let i = 0; at < length; i++) {
    const len = Math.min(sizes[i % sizes.length] as number, length - at);
    const into = out.subarray(at, at + len);
    const start = at;
    queued.push(rs.read(into).then((n) => {
      if (n !== len) throw new Error(`a read at ${start} got ${n} of ${len} bytes`);
    }));
    at += len;
    if (queued.length >= 6) await queued.shift();
  }
  await Promise.all(queued);
  return out;
}

t.test('a read of a whole small file reads its body to the end', async (tt) => {
  // Stopping at the body's last byte destroyed it before it ended: undici then made an AbortError,
  // with its stack, for every small file read (2% of the daemon's time reading 10,000 of them).
  const reader = client(adminKey);
  await reader.login();
  let cutShort = 0;
  const send = reader.send.bind(reader);
  reader.send = async (options) => {
    const res = await send(options);
    const destroy = res.body.destroy.bind(res.body);
    res.body.destroy = (err?: Error) => {
      if (!res.body.readableEnded) cutShort++;
      return destroy(err);
    };
    return res;
  };
  const item = await store.createItem(await newFolder('whole-reads'), 'small');
  const local = await localFile('whole-read.bin', 4096);
  const bytes = await readFile(local.path);
  const doc = await store.createFile({ itemId: item.id }, 'small.bin', local, {});
  const file = { id: doc.id, size: doc.size };
  for (let i = 0; i < 5; i++) {
    const into = Buffer.alloc(bytes.length);
    tt.equal(await readRange(reader, file, 0, bytes.length, into), bytes.length);
    tt.ok(into.equals(bytes), `read ${i + 1} is exact`);
  }
  const part = Buffer.alloc(100);
  tt.equal(await readRange(reader, file, 0, 100, part), 100, 'a read of the first 100 bytes');
  tt.ok(part.equals(bytes.subarray(0, 100)));
  tt.equal(cutShort, 0, 'no body was dropped before its end');
});

t.test('streamed range reads: exact bytes through GETs that grow, end of file, close, a changed file', async (tt) => {
  const parent = await newFolder('streams');
  const item = await store.createItem(parent, 'data');
  const local = await localFile('streamed', 3 * MiB + 12_345);
  const doc = await store.createFile({ itemId: item.id }, 'streamed.bin', local);
  const content = await readFile(local.path);
  const ref = { id: doc.id, size: doc.size };
  for (const direct of [true, false]) {
    const how = direct ? 'direct' : 'undici';
    const s = new RestStore(admin, silentLogger(), { stream: { firstRequestBytes: 100_000, maxRequestBytes: 400_000, openAheadBytes: 50_000, direct } });
    const before = admin.stats().requests;
    const rs = s.streamRange(ref, 777, content.length);
    tt.ok((await drain(rs, content.length - 777)).equals(content.subarray(777)), `${how}: the bytes from 777 to the end`);
    tt.equal(await rs.read(Buffer.alloc(10)), 0, `${how}: nothing after the end`);
    const gets = admin.stats().requests - before;
    // 100 000 + 200 000 + 400 000 x 8 covers 3 MiB + 11 568
    tt.equal(gets, 10, `${how}: GETs of growing length, each sent once (${gets})`);
    rs.close();
    tt.match(await rs.read(Buffer.alloc(1)).catch((e: unknown) => e), { type: 'aborted' }, `${how}: a closed stream refuses reads`);

    const stale = s.streamRange({ id: doc.id, size: doc.size + 1 }, 0, 10);
    tt.match(await stale.read(Buffer.alloc(10)).catch((e: unknown) => e), { type: 'stale' }, `${how}: another size is 'stale'`);
    stale.close();

    const part = s.streamRange(ref, 0, content.length);
    tt.ok((await drain(part, 150_000)).equals(content.subarray(0, 150_000)));
    const queued = part.read(Buffer.alloc(2 * MiB)).then(() => 'read', (e: unknown) => e);
    part.close();
    tt.match(await queued, { type: 'aborted' }, `${how}: close rejects the queued reads`);
  }

  // the file changes under a stream: the old bytes, then 'stale', never other bytes
  const s = new RestStore(admin, silentLogger(), { stream: { firstRequestBytes: 256 * 1024, maxRequestBytes: 256 * 1024, openAheadBytes: 0 } });
  const rs = s.streamRange(ref, 0, content.length);
  tt.ok((await drain(rs, 300_000)).equals(content.subarray(0, 300_000)), 'the first bytes');
  await store.replaceFile(doc.id, await localFile('streamed-2', 2 * MiB));
  let got = 300_000;
  let outcome: unknown;
  for (;;) {
    const into = Buffer.alloc(100_000);
    const n = await rs.read(into).catch((e: unknown) => {
      outcome = e;
      return -1;
    });
    if (n < 0) break;
    if (n === 0 || !into.subarray(0, n).equals(content.subarray(got, got + n))) {
      outcome = `other bytes at ${got}`;
      break;
    }
    got += n;
  }
  tt.match(outcome, { type: 'stale' }, `a 'stale' error after ${got} bytes of the old version`);
  rs.close();
});

t.test('an interrupted upload resumes from its upload id', async (tt) => {
  const parent = await newFolder('resume');
  const item = await store.createItem(parent, 'resumed');
  const local = await localFile('resume-src', 12 * MiB + 5);
  const started = (await admin.post('/file', { parentType: 'item', parentId: item.id, name: 'r.bin', size: local.size })) as { _id: string };
  const firstChunk = (await readFile(local.path)).subarray(0, 5 * MiB);
  await admin.post('/file/chunk', { uploadId: started._id, offset: 0 }, {
    body: () => firstChunk,
    headers: { 'content-type': 'application/octet-stream' },
    reset: true,
  });
  const ids: string[] = [];
  const sentBefore = admin.stats().bytesUploaded;
  const doc = await store.createFile({ itemId: item.id }, 'r.bin', local, { resumeUploadId: started._id, onUploadId: (id) => void ids.push(id) });
  tt.equal(doc.size, local.size);
  tt.equal(doc.sha512, local.sha512);
  tt.same(ids, [], 'no new upload id');
  tt.equal(admin.stats().bytesUploaded - sentBefore, local.size - 5 * MiB, 'only the rest was sent');

  // An id the server does not know: start over.
  const again = await store.createFile({ itemId: item.id }, 'r2.bin', local, { resumeUploadId: started._id, onUploadId: (id) => void ids.push(id) });
  tt.equal(again.sha512, local.sha512);
  tt.equal(ids.length, 1, 'a fresh upload id');
});

t.test('abort stops an upload', async (tt) => {
  const parent = await newFolder('abort');
  const item = await store.createItem(parent, 'aborted');
  const local = await localFile('abort-src', 8 * MiB);
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  await tt.rejects(store.createFile({ itemId: item.id }, 'a.bin', local, { signal: controller.signal }), { message: 'stop' });
  tt.same(await store.listFiles(item.id), []);
});

t.test('renames, moves, deletes, metadata', async (tt) => {
  const root = await newFolder('mutations');
  const a = await newFolder('a', root);
  const b = await newFolder('b', root);

  const item = await store.createItem(a, 'thing');
  const dup = await store.createItem(a, 'thing');
  tt.equal(dup.name, 'thing (1)', 'Girder renames a clashing item');
  tt.same((await store.createItem(a, 'link', { fuse_symlink: '../x' })).meta, { fuse_symlink: '../x' }, 'an item made with its metadata');
  tt.equal((await store.updateItem(item.id, { name: 'renamed' })).name, 'renamed');
  const moved = await store.updateItem(item.id, { folderId: b });
  tt.equal(moved.folderId, b);
  tt.equal(moved.name, 'renamed');

  const sub = await store.createFolder(a, 'sub');
  tt.equal((await store.updateFolder(sub.id, { name: 'sub2' })).name, 'sub2');
  const movedFolder = await store.updateFolder(sub.id, { parentId: b });
  tt.equal(movedFolder.parentId, b);
  tt.same((await store.listFolders(b)).map((f) => f.name), ['sub2']);
  const clash = await girderError(store.createFolder(b, 'sub2'));
  tt.equal(clash.status, 400);

  const withMeta = await store.setItemMeta(item.id, { color: 'red', n: 1, nested: { x: [1, 2] } });
  tt.same(withMeta.meta, { color: 'red', n: 1, nested: { x: [1, 2] } });
  tt.same((await store.setItemMeta(item.id, { color: null })).meta, { n: 1, nested: { x: [1, 2] } }, 'null deletes a key');
  tt.same((await store.setFolderMeta(b, { k: 'v' })).meta, { k: 'v' });
  tt.same((await store.setFolderMeta(b, { k: null, j: true })).meta, { j: true });
  tt.same((await store.getFolder(b)).meta, { j: true });

  const fileItem = await store.createItem(sub.id, 'holder');
  const file = await store.createFile({ itemId: fileItem.id }, 'x.txt', await localFile('x.txt', 10));
  tt.equal(file.mimeType, 'text/plain');
  await store.deleteFile(file.id);
  tt.ok(isMissing(await girderError(store.getFile(file.id))), 'file gone');
  await store.deleteItem(dup.id);
  tt.ok(isMissing(await girderError(store.getItem(dup.id))), 'item gone');

  const file2 = await store.createFile({ itemId: fileItem.id }, 'y.bin', await localFile('y.bin', 100));
  await store.createFolder(sub.id, 'deeper');
  await store.deleteFolder(b);
  tt.ok(isMissing(await girderError(store.getFolder(b))), 'folder gone');
  tt.ok(isMissing(await girderError(store.getFolder(sub.id))), 'subfolder gone');
  tt.ok(isMissing(await girderError(store.getItem(fileItem.id))), 'item inside gone');
  tt.ok(isMissing(await girderError(store.getFile(file2.id))), 'file inside gone');
  tt.ok(isMissing(await girderError(store.deleteFolder(b))), 'deleting it again: missing');
  tt.same((await store.listFolders(root)).map((f) => f.name), ['a']);
});

t.test('a folder tree too deep for one recursive DELETE is removed from its deepest folders up', async (tt) => {
  const top = await store.createFolder(await newFolder('deep-root'), 'top');
  let bottom = top;
  const items: string[] = [];
  for (let level = 0; level < 600; level++) {
    bottom = await store.createFolder(bottom.id, `d${level}`);
    if (level % 200 === 0) items.push((await store.createItem(bottom.id, `item-${level}`)).id);
  }
  const refused = await girderError(admin.delete('/resource', { resources: JSON.stringify({ folder: [top.id] }) }));
  tt.ok(isTooDeep(refused), `Girder's own recursive DELETE fails: ${refused.message.slice(0, 80)}`);
  await store.deleteFolder(top.id);
  tt.ok(isMissing(await girderError(store.getFolder(top.id))), 'the top folder is gone');
  tt.ok(isMissing(await girderError(store.getFolder(bottom.id))), 'the deepest folder is gone');
  for (const id of items) tt.ok(isMissing(await girderError(store.getItem(id))), 'items in it are gone');
});

t.test('stats count what happened', async (tt) => {
  const s = admin.stats();
  tt.ok(s.requests > 0);
  tt.ok(s.bytesUploaded >= 70 * MiB);
  tt.ok(s.bytesDownloaded >= 5 * MiB);
  tt.ok(s.errors > 0, 'the expected failures were counted');
});
