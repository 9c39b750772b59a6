// The Girder layer and the mount on an S3 assetstore (girder-server.py --assetstore s3, moto as S3),
// each S3-specific behaviour checked against the real servers:
// - a download answers 303 to a presigned URL: ranged reads follow it (Range sent again, no token),
//   byte-exact when cold and unaligned; the URL is kept for the file version; when S3 refuses it
//   (expired: a fault proxy in front of S3 answers as S3 does, moto never expires anything) Girder
//   is asked for a new one, also between two reads of a file open through the mount;
// - uploads up to the adapter's chunk length (64 MiB) go as one chunk whatever the configured chunk
//   size, larger ones as parts of at least 5 MiB; GET /file/offset answers 400 for a multipart
//   upload without parts, which is offset 0 (a cut in the first part, a kill -9, an S3-side cut);
// - through the mount: new files of 0 B, 1 B, 64 MiB, 64 MiB + 1, 150 MiB; overwrite keeps the
//   file id; identical re-copy and copy-by-hash (hashsum_download's auto_compute); Girder's stale
//   SHA-512 after a replacement on S3 never makes the mount skip an upload; mv and rsync of empty
//   files (Girder answers 500 to renaming them); rm -r deletes the objects; kill -9 mid-upload, restart.
import { mkdir, mkdtemp, open, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ONE_REQUEST_MAX } from '../../src/girder/upload.js';
import { GirderClient } from '../../src/girder/client.js';
import { RestStore } from '../../src/girder/rest-store.js';
import type { FileRef } from '../../src/girder/store.js';
import { silentLogger } from '../../src/log.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { rest } from '../helpers/girder-rest.js';
import { startGirder, type GirderServerInfo } from '../helpers/girder-server.js';
import { forceUnmount, isMounted, startMount, type Mount } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';
import { remoteFile, remoteLookup } from '../helpers/remote-tree.js';
import { S3_EXPIRED_BODY, pointS3At, s3Objects } from '../helpers/s3.js';
import { shell } from '../helpers/shell.js';
import { startUploadProxy } from '../helpers/upload-proxy.js';
import { sleep, waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** The S3 adapter's CHUNK_LEN: up to this size an upload must be one chunk. */
const S3_CHUNK = 64 * MiB;

const girder = await startGirder({ assetstore: 's3' });
t.teardown(() => girder.stop());
const info = girder.info;
const admin = rest(girder, 'admin');
const store3 = info.assetstore;
if (store3.service === undefined || store3.bucket === undefined) throw new Error('the server did not start an S3 assetstore');
const bucket = store3.bucket;

// Girder reaches S3 (and sends clients) through a fault proxy; one in front of Girder counts what clients ask.
const s3 = await startFaultProxy({ upstream: store3.service });
t.teardown(() => s3.close());
await pointS3At(admin, store3.id, s3.origin);
const gp = await startFaultProxy({ upstream: info.apiUrl });
// The Girder layer's checks hash downloads themselves: spare Girder reading every upload back.
await admin.put('/system/setting', { key: 'hashsum_download.auto_compute', value: 'false' });
t.teardown(() => gp.close());
t.afterEach(() => {
  s3.clear();
  gp.clear();
});

const W = await mkdtemp(path.join(tmpdir(), 's3-assetstore-work-'));
t.teardown(() => rm(W, { recursive: true, force: true }));
const root = await admin.createFolder(info.folders.adminPrivate, `s3-${process.pid}`);

const client = new GirderClient({
  apiUrl: gp.apiUrl, credentials: { kind: 'apiKey', key: info.admin.apiKey }, timeoutMs: 60_000, retries: 3, retryBaseMs: 10, logger: silentLogger(),
});
t.teardown(() => client.close());
/** Chunks of 5 MiB: an S3 upload must not follow them below 64 MiB, and parts must stay >= 5 MiB above. */
const store = new RestStore(client, silentLogger(), { chunkSize: 5 * MiB, stream: { firstRequestBytes: MiB, maxRequestBytes: 2 * MiB, openAheadBytes: MiB / 2 } });
const folder = await store.createFolder(root._id, 'girder-layer');

const downloads = (mark: number): number => gp.since(mark).filter((r) => /\/file\/[0-9a-f]+\/download$/.test(r.path)).length;
const s3Gets = (mark: number): typeof s3.log => s3.since(mark).filter((r) => r.method === 'GET' && r.path.startsWith(`/${bucket}/`));

t.test('ranged reads through the 303: byte-exact, Range re-sent to S3, no token, the URL kept per version', async (t) => {
  const size = 3 * MiB + 17;
  const local = path.join(W, 'read.bin');
  await writeRandomFile(local, size);
  const bytes = await readFile(local);
  const item = await store.createItem(folder.id, 'read.bin');
  const doc = await store.createFile({ itemId: item.id }, 'read.bin', { path: local, size });
  const token = await admin.token();
  const redirect = await fetch(`${info.apiUrl}/file/${doc.id}/download`, { headers: { 'Girder-Token': token, Range: 'bytes=5-9' }, redirect: 'manual' });
  t.equal(redirect.status, 303, 'precondition: Girder answers a ranged download with 303');
  t.notOk(/bytes|range/i.test(redirect.headers.get('location') ?? ''), 'the presigned URL does not carry the Range');

  const plain: FileRef = { id: doc.id, size };
  const versioned: FileRef = { id: doc.id, size, version: `${doc.id}:${size}:${doc.created}` };
  for (const [offset, length] of [[0, 1], [1, 4095], [65_537, 300_001], [size - 3, 10], [MiB - 1, 2 * MiB + 2]] as const) {
    const gMark = gp.mark();
    const sMark = s3.mark();
    const into = Buffer.alloc(length);
    const n = await store.readRange(plain, offset, length, into);
    const want = bytes.subarray(offset, offset + length);
    t.equal(n, want.length, `readRange ${offset}+${length}: length`);
    t.ok(into.subarray(0, n).equals(want), `readRange ${offset}+${length}: bytes match`);
    const [get] = s3Gets(sMark);
    t.equal(get?.range, `bytes=${offset}-${Math.min(offset + length, size) - 1}`, `readRange ${offset}+${length}: the Range sent again to S3`);
    t.equal(s3.seen.find((s) => s.record === get)?.headers['girder-token'], undefined, 'no Girder token sent to S3');
    t.equal(downloads(gMark), 1, 'Girder asked once (the read does not know the version)');
  }

  const past = await store.readRange({ id: doc.id, size: size + 100 }, size + 10, 5, Buffer.alloc(5)).catch((e: unknown) => e);
  t.match(past, { type: 'stale' }, 'a range past the end of the object (S3 answers 416) is a changed file');

  let gMark = gp.mark();
  const first = Buffer.alloc(1000);
  await store.readRange(versioned, 12_345, 1000, first);
  const second = Buffer.alloc(1000);
  await store.readRange(versioned, 2 * MiB + 1, 1000, second);
  t.ok(first.equals(bytes.subarray(12_345, 13_345)) && second.equals(bytes.subarray(2 * MiB + 1, 2 * MiB + 1001)), 'versioned reads: bytes match');
  t.equal(downloads(gMark), 1, 'a known version asks Girder once, then reads straight from S3');

  for (const direct of [true, false]) {
    const s = new RestStore(client, silentLogger(), { stream: { firstRequestBytes: MiB, maxRequestBytes: MiB, openAheadBytes: MiB / 2, direct } });
    gMark = gp.mark();
    const rs = s.streamRange(plain, 777, size - 777);
    const into = Buffer.alloc(size - 777);
    const reads: Array<Promise<number>> = [];
    for (let at = 0; at < into.length; at += 200_000) reads.push(rs.read(into.subarray(at, Math.min(into.length, at + 200_000))));
    await Promise.all(reads);
    rs.close();
    t.ok(into.equals(bytes.subarray(777)), `streamed read (${direct ? 'direct' : 'undici'}): bytes match`);
    t.equal(downloads(gMark), Math.ceil((size - 777) / MiB), `streamed read (${direct ? 'direct' : 'undici'}): one redirect per 1 MiB GET`);
  }
});

t.test('a presigned URL that S3 refuses as expired is asked of Girder again', async (t) => {
  const size = 2 * MiB;
  const local = path.join(W, 'expire.bin');
  await writeRandomFile(local, size);
  const bytes = await readFile(local);
  const item = await store.createItem(folder.id, 'expire.bin');
  const doc = await store.createFile({ itemId: item.id }, 'expire.bin', { path: local, size });
  const file: FileRef = { id: doc.id, size, version: 'v1' };
  const sMark = s3.mark();
  const into = Buffer.alloc(100);
  await store.readRange(file, 10, 100, into);
  const kept = s3.seen.find((s) => s.record === s3Gets(sMark)[0])?.url ?? '';
  const signature = /X-Amz-Signature=([0-9a-f]+)/.exec(kept)?.[1];
  t.ok(signature !== undefined, 'precondition: the read went to a presigned URL');
  // Girder signs with a one-second clock: a new URL differs from this one only after a second.
  await sleep(1100);
  s3.on('GET', new RegExp(`X-Amz-Signature=${signature}`), { kind: 'status', status: 403, contentType: 'application/xml', body: S3_EXPIRED_BODY }, Infinity);
  const gMark = gp.mark();
  const later = Buffer.alloc(100);
  t.equal(await store.readRange(file, MiB + 3, 100, later), 100);
  t.ok(later.equals(bytes.subarray(MiB + 3, MiB + 103)), 'the read after the expiry gets the right bytes');
  t.equal(s3.seen.filter((s) => s.fault === 'status').length, 1, 'S3 refused the kept URL once');
  t.equal(downloads(gMark), 1, 'and Girder gave a new one');
  const again = Buffer.alloc(100);
  await store.readRange(file, 5, 100, again);
  t.equal(downloads(gp.mark()), 0, 'the new URL is kept in turn');

  // A URL refused even when new: the error names S3's reason, after one more try.
  s3.on('GET', new RegExp(`/${bucket}/`), { kind: 'status', status: 403, contentType: 'application/xml', body: S3_EXPIRED_BODY }, Infinity);
  const err = await store.readRange({ id: doc.id, size }, 0, 10, Buffer.alloc(10)).catch((e: unknown) => e);
  t.match(String(err), /storage server answered 403 \(AccessDenied: Request has expired\)/, 'a lasting refusal is an error naming S3\'s reason');
  t.notMatch(String(err), /X-Amz-Signature/, 'which does not show the URL');
});

t.test('uploads: one chunk up to 64 MiB whatever the chunk size configured (parts above: the resume test)', async (t) => {
  for (const size of [0, 1, S3_CHUNK]) {
    const local = path.join(W, `up-${size}.bin`);
    const sha = await writeRandomFile(local, size);
    const item = await store.createItem(folder.id, `up-${size}.bin`);
    const mark = gp.mark();
    const doc = await store.createFile({ itemId: item.id }, `up-${size}.bin`, { path: local, size });
    t.equal(doc.size, size, `${size} B: size`);
    t.equal(await admin.downloadSha512(doc.id), sha, `${size} B: S3 holds the bytes`);
    // the bytes go in one request: POST /file itself under 5 MiB (ONE_REQUEST_MAX), else one chunk
    const chunks = gp.since(mark).filter((r) => r.path === '/file/chunk' || (r.path === '/file' && r.method === 'POST' && size > 0 && size < ONE_REQUEST_MAX));
    const expected = size === 0 ? 0 : 1;
    t.equal(chunks.length, expected, `${size} B: ${expected} request(s) with its bytes`);
    t.ok(chunks.every((c) => c.status === 200), `${size} B: none refused`);
    await rm(local);
  }
});

t.test('resume: a cut in the first part (client side and S3 side), GET /file/offset answering 400', async (t) => {
  const size = S3_CHUNK + 5 * MiB + 5; // above 64 MiB: 14 parts of 5 MiB, the last 4 MiB + 5
  const local = path.join(W, 'cut.bin');
  const sha = await writeRandomFile(local, size);
  const item = await store.createItem(folder.id, 'cut.bin');

  // The client's connection to Girder is cut 1 MiB into the first part.
  gp.on('POST', /\/file\/chunk/, { kind: 'drop-request', afterBytes: MiB });
  const mark = gp.mark();
  const doc = await store.createFile({ itemId: item.id }, 'cut.bin', { path: local, size });
  t.equal(await admin.downloadSha512(doc.id), sha, 'after a cut on the client side: the right bytes');
  const offsets = gp.since(mark).filter((r) => r.path === '/file/offset');
  t.same(offsets.map((r) => r.status), [400], 'GET /file/offset answered 400 (a multipart upload without parts) and the mount went on from 0');

  // Girder's own PUT of the first part to S3 is cut: Girder answers 500, nothing is counted.
  s3.on('PUT', /partNumber=1/, { kind: 'drop-request', afterBytes: MiB });
  const item2 = await store.createItem(folder.id, 'cut2.bin');
  const mark2 = gp.mark();
  const doc2 = await store.createFile({ itemId: item2.id }, 'cut2.bin', { path: local, size });
  t.equal(await admin.downloadSha512(doc2.id), sha, 'after a cut between Girder and S3: the right bytes');
  const statuses = gp.since(mark2).filter((r) => r.path === '/file/chunk').map((r) => r.status);
  t.same(statuses, [500, ...Array<number>(14).fill(200)], 'the part Girder could not store answered 500 and was sent again');

  // An upload cut during its second part resumes at the part Girder counted.
  const item3 = await store.createItem(folder.id, 'cut3.bin');
  const stop = new AbortController();
  const ids: string[] = [];
  const first = store.createFile({ itemId: item3.id }, 'cut3.bin', { path: local, size }, {
    signal: stop.signal,
    onUploadId: (id) => void ids.push(id),
    onProgress: (sent) => {
      if (sent > 6 * MiB) stop.abort();
    },
  });
  await t.rejects(first, 'the first attempt is stopped in its second part');
  const mark3 = gp.mark();
  const doc3 = await store.createFile({ itemId: item3.id }, 'cut3.bin', { path: local, size }, { resumeUploadId: ids[0] });
  t.equal(await admin.downloadSha512(doc3.id), sha, 'resumed: the right bytes');
  const resumedAt = gp.since(mark3).filter((r) => r.path === '/file/chunk').map((r) => new URLSearchParams(r.query).get('offset'));
  t.equal(resumedAt[0], String(5 * MiB), 'from the 5 MiB Girder counted');
  t.equal(resumedAt.length, 13, 'then the 13 parts left');
});

// ---- through the mount -------------------------------------------------------------------------

const upProxy = await startUploadProxy(info.apiUrl);
t.teardown(() => upProxy.stop());
const viaProxy: GirderServerInfo = { ...info, apiUrl: upProxy.apiUrl };

t.test('through the mount', async (t) => {
  await admin.put('/system/setting', { key: 'hashsum_download.auto_compute', value: 'true' });
  const mfolder = await admin.createFolder(root._id, 'mount');
  const mount = await startMount({ server: viaProxy, folderId: mfolder._id });
  t.teardown(() => mount.cleanup());
  t.teardown(() => {
    if (!t.passing()) t.comment(`--- daemon log (tail) ---\n${mount.logs().slice(-8000)}`);
  });
  const M = mount.mountpoint;
  const sh = shell({ M, W });
  const settle = (): Promise<unknown> => waitUploadsDone(M);
  const bytesOnS3 = async (rel: string): Promise<string> => (await remoteFile(admin, mfolder._id, rel)).file.sha512 ?? '';

  const sizes = [0, 1, S3_CHUNK, S3_CHUNK + 1, 150 * MiB];
  await mkdir(path.join(W, 'sizes'));
  const shas = new Map<number, string>();
  for (const size of sizes) shas.set(size, await writeRandomFile(path.join(W, 'sizes', `f-${size}.bin`), size));

  t.test('cp of new files: 0 B, 1 B, 64 MiB, 64 MiB + 1, 150 MiB', async (t) => {
    await sh.ok('mkdir "$M/sizes" && cp "$W"/sizes/* "$M/sizes/"');
    await settle();
    for (const size of sizes) {
      const { file } = await remoteFile(admin, mfolder._id, `sizes/f-${size}.bin`);
      t.equal(file.size, size, `${size} B: size on the server`);
      t.equal(file.sha512, shas.get(size), `${size} B: the bytes in S3 are the local file's`);
    }
    t.equal(await sh.sha512sum('"$M/sizes/f-157286400.bin"'), shas.get(150 * MiB), '150 MiB read back through the mount (cold, via the redirect)');
  });

  t.test('cold unaligned reads, and a presigned URL that expires between two reads of an open file', async (t) => {
    const reader = path.join(W, 'reader.cjs');
    await writeFile(reader, [
      "const fs = require('node:fs');",
      "const fd = fs.openSync(process.env.M + '/sizes/f-157286400.bin', 'r');",
      'const read = (pos, len) => { const b = Buffer.alloc(len); const n = fs.readSync(fd, b, 0, len, pos); return b.subarray(0, n).toString("hex"); };',
      "process.stdout.write(read(Number(process.env.A), 333) + '\\n');",
      "fs.writeFileSync(process.env.W + '/first-read', '');",
      "while (!fs.existsSync(process.env.W + '/go')) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); }",
      "process.stdout.write(read(Number(process.env.B), 4097) + '\\n');",
      'fs.closeSync(fd);',
    ].join('\n'));
    const remount = await startMount({ server: info, folderId: mfolder._id }); // a cold cache, straight to Girder
    t.teardown(() => remount.cleanup());
    const A = 7 * MiB + 13;
    const B = 131 * MiB + 4001;
    const sMark = s3.mark();
    const run = sh(`A=${A} B=${B} M=${JSON.stringify(remount.mountpoint)} ${JSON.stringify(process.execPath)} "$W/reader.cjs"`);
    await waitFor(() => stat(path.join(W, 'first-read')).then(() => true, () => false), { timeoutMs: 60_000, what: 'the first read' });
    const urls = [...new Set(s3.seen.filter((s) => s.record.seq > sMark && s.method === 'GET').map((s) => /X-Amz-Signature=([0-9a-f]+)/.exec(s.url)?.[1]))];
    t.equal(urls.length, 1, 'the first read went to one presigned URL');
    await sleep(1100);
    s3.on('GET', new RegExp(`X-Amz-Signature=${urls[0] ?? 'none'}`), { kind: 'status', status: 403, contentType: 'application/xml', body: S3_EXPIRED_BODY }, Infinity);
    await writeFile(path.join(W, 'go'), '');
    const r = await run;
    t.equal(r.code, 0, `the reader succeeds ${r.stderr}`);
    const [first, second] = r.stdout.trim().split('\n');
    const local = await open(path.join(W, 'sizes', 'f-157286400.bin'));
    const want = async (pos: number, len: number): Promise<string> => {
      const b = Buffer.alloc(len);
      await local.read(b, 0, len, pos);
      return b.toString('hex');
    };
    t.equal(first, await want(A, 333), 'the first (cold, unaligned) read is byte-exact');
    t.equal(second, await want(B, 4097), 'the read after the URL expired is byte-exact');
    await local.close();
    t.ok(s3.seen.some((s) => s.record.seq > sMark && s.fault === 'status'), 'S3 refused the expired URL');
    await rm(path.join(W, 'go'));
    await rm(path.join(W, 'first-read'));
    await remount.stop();
  });

  t.test('overwrite keeps the file id; identical re-copy and copy-by-hash send nothing', async (t) => {
    const before = await remoteFile(admin, mfolder._id, `sizes/f-${S3_CHUNK + 1}.bin`);
    await writeRandomFile(path.join(W, 'other.bin'), 9 * MiB + 1);
    await sh.ok(`cp "$W/other.bin" "$M/sizes/f-${S3_CHUNK + 1}.bin"`);
    await settle();
    const after = await remoteFile(admin, mfolder._id, `sizes/f-${S3_CHUNK + 1}.bin`);
    t.equal(after.file._id, before.file._id, 'overwrite: the same file id');
    t.equal(after.file.sha512, await sh.sha512sum('"$W/other.bin"'), 'overwrite: the new bytes in S3');

    upProxy.resetCount();
    await sh.ok(`cp "$W/sizes/f-${S3_CHUNK}.bin" "$M/sizes/f-${S3_CHUNK}.bin"`);
    await settle();
    t.equal(upProxy.bytes(), 0, 'identical re-copy: no byte uploaded (the SHA-512 hashsum_download computed after the upload)');
    await sh.ok(`cp "$W/sizes/f-${S3_CHUNK}.bin" "$M/by-hash.bin"`);
    await settle();
    t.equal(upProxy.bytes(), 0, 'copy-by-hash: no byte uploaded');
    t.equal(await bytesOnS3('by-hash.bin'), shas.get(S3_CHUNK), 'copy-by-hash: the right bytes');
  });

  t.test("Girder's stale SHA-512 after a replacement never makes the mount skip an upload", async (t) => {
    const x = Buffer.alloc(2 * MiB + 3, 'x');
    const y = Buffer.alloc(2 * MiB + 3, 'y');
    await writeFile(path.join(W, 'x.bin'), x);
    await writeFile(path.join(W, 'y.bin'), y);
    await sh.ok('cp "$W/x.bin" "$M/flip.bin"');
    await settle();
    const { file } = await remoteFile(admin, mfolder._id, 'flip.bin');
    await sh.ok('cp "$W/y.bin" "$M/flip.bin"');
    await settle();
    const raw = await admin.get<{ sha512?: string }>(`/file/${file._id}`);
    t.equal(raw.sha512, sha512(x), "precondition: Girder still gives X's SHA-512 for the file that now holds Y (hashsum_download on S3)");
    await sh.ok('cp "$W/x.bin" "$M/flip.bin"');
    await settle();
    t.equal(await admin.downloadSha512(file._id), sha512(x), 'copying X back puts X in S3');
    t.equal(await sh.sha512sum('"$M/flip.bin"'), sha512(x), 'and the mount reads X');
  });

  t.test('mv and rsync of empty files (Girder answers 500 to renaming them on S3)', async (t) => {
    await sh.ok('mkdir "$M/empty" && : > "$M/empty/a" && mv "$M/empty/a" "$M/empty/b"');
    await mkdir(path.join(W, 'rs'));
    await writeFile(path.join(W, 'rs', 'zero'), '');
    await writeFile(path.join(W, 'rs', 'one'), '1');
    await sh.ok('rsync -a "$W/rs/" "$M/rs/"');
    await settle();
    t.equal((await remoteFile(admin, mfolder._id, 'empty/b')).file.size, 0, 'mv: the empty file has its new name');
    t.equal((await remoteFile(admin, mfolder._id, 'rs/zero')).file.size, 0, 'rsync: the empty file arrived');
    t.equal((await remoteFile(admin, mfolder._id, 'rs/one')).file.sha512, sha512(Buffer.from('1')), 'rsync: the 1-byte file arrived');
  });

  t.test('rm -r deletes the folder and its objects in S3', async (t) => {
    const before = (await s3Objects(store3.service ?? '', bucket)).keys.length;
    await sh.ok('rm -r "$M/sizes"');
    await settle(); // the emptied folder's delete follows its rmdir
    t.equal(await remoteLookup(admin, mfolder._id, 'sizes'), undefined, 'the folder is gone on the server');
    const after = (await s3Objects(store3.service ?? '', bucket)).keys.length;
    // f-67108864.bin's object is shared with by-hash.bin (a server-side copy), and stays
    t.equal(before - after, 3, 'the objects only the deleted files used are deleted (0 B has none; a shared one stays)');
    t.equal(await bytesOnS3('by-hash.bin'), shas.get(S3_CHUNK), 'the copy that shared an object still reads');
  });
});

t.test('kill -9 during a 150 MiB upload to S3, then a restart with the same cache dir finishes it', async (t) => {
  const kfolder = await admin.createFolder(root._id, 'kill9');
  const mountpoint = await mkdtemp(path.join(tmpdir(), 'girder-mnt-s3k9-'));
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'girder-cache-s3k9-'));
  const mounts: Mount[] = [];
  t.teardown(async () => {
    upProxy.setRate(undefined);
    for (const m of mounts) await m.kill9();
    if (!t.passing()) for (const m of mounts) t.comment(`--- daemon log (tail) ---\n${m.logs().slice(-6000)}`);
    await forceUnmount(mountpoint);
    if (!(await isMounted(mountpoint))) {
      await rmdir(mountpoint).catch(() => undefined);
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
  const bigSha = await writeRandomFile(path.join(W, 'k9.bin'), 150 * MiB);
  const opts = { server: viaProxy, folderId: kfolder._id, mountpoint, cacheDir };
  const first = await startMount(opts);
  mounts.push(first);
  const sh = shell({ M: mountpoint, W });
  upProxy.setRate(60 * MiB);
  await sh.ok('cp "$W/k9.bin" "$M/k9.bin"');
  const caught = await waitFor(async () => {
    const up = (await mountStatus(mountpoint)).uploads.find((u) => u.path === '/k9.bin');
    return up !== undefined && up.state === 'uploading' && up.sent > 80 * MiB ? up : undefined;
  }, { timeoutMs: 120_000, intervalMs: 100, what: 'the upload to be in its second part' });
  await first.kill9();
  upProxy.setRate(undefined);
  t.ok(caught.sent < 150 * MiB, `killed in flight, at ${caught.sent} bytes sent`);
  upProxy.resetCount();
  const second = await startMount(opts);
  mounts.push(second);
  await waitUploadsDone(mountpoint);
  const { file } = await remoteFile(admin, kfolder._id, 'k9.bin');
  t.equal(file.sha512, bigSha, 'S3 holds the whole file');
  const resumedAt = Number(/"offset":(\d+),"size":157286400,"msg":"resuming an upload"/.exec(second.logs())?.[1] ?? -1);
  t.ok(resumedAt > 0 && resumedAt % S3_CHUNK === 0, `the restart resumed at a part boundary Girder counted (${resumedAt})`);
  t.ok(upProxy.bytes() <= 150 * MiB - resumedAt + 16 * MiB, `not from the start (${upProxy.bytes()} bytes reached the proxy after the kill)`);
  t.same((await admin.listItems(kfolder._id)).map((i) => i.name), ['k9.bin'], 'one item, no duplicate');
  await second.stop();
});
