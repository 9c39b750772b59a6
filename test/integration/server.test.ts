// The test server itself: scripts/girder-server.py through the helpers, checked over plain REST.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest, type RawFile } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';

const MiB = 1024 * 1024;

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('girder-server.py serves a real Girder 5.0.21', async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const { info } = server;
  const admin = rest(server, 'admin');
  const user = rest(server, 'user');

  t.match(info.apiUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/v1$/);
  t.equal(info.pid, server.process.pid, 'pid in the ready line is the child');

  t.test('version', async (t) => {
    const version = await admin.get<{ release: string }>('/system/version');
    t.equal(version.release, '5.0.21');
  });

  t.test('API keys log in as their users', async (t) => {
    const me = await admin.get<{ login: string; admin: boolean; _id: string }>('/user/me');
    t.equal(me.login, 'admin');
    t.equal(me.admin, true);
    t.equal(me._id, info.admin.id);
    const userMe = await user.get<{ login: string; admin: boolean }>('/user/me');
    t.equal(userMe.login, 'user');
    t.equal(userMe.admin, false);
    const folders = await user.listFolders(info.user.id, 'user');
    t.same(folders.map((f) => f._id).sort(), [info.folders.userPrivate, info.folders.userPublic].sort());
    await t.rejects(user.listItems(info.folders.adminPrivate), { name: 'RestError', status: 403 }, "user cannot read admin's Private");
  });

  t.test('uploaded files carry sha512 (hashsum_download)', async (t) => {
    const data = Buffer.from('hello girder\n');
    const file = await user.uploadBytes({ type: 'folder', id: info.folders.userPrivate }, 'hello.txt', data);
    t.equal(file._modelType, 'file');
    t.equal(file.size, data.length);
    t.equal(file.sha512, sha512(data));
    t.equal(await user.fileSha512(file._id), sha512(data));
    t.same(await user.download(file._id), data);
    const hits = await user.get<RawFile[]>(`/file/hashsum/sha512/${sha512(data)}`);
    t.same(hits.map((f) => f._id), [file._id]);
  });

  t.test('6 MiB in several chunks, from memory and from disk', async (t) => {
    const folder = await admin.createFolder(info.folders.adminPrivate, 'chunks');
    const data = Buffer.alloc(6 * MiB + 123);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
    const file = await admin.uploadBytes({ type: 'folder', id: folder._id }, 'six.bin', data, 5 * MiB);
    t.equal(file.size, data.length);
    t.equal(file.sha512, sha512(data));
    t.ok((await admin.download(file._id)).equals(data), 'downloaded bytes are the uploaded bytes');

    const dir = await mkdtemp(path.join(tmpdir(), 'girder-server-test-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const local = path.join(dir, 'random.bin');
    const localSha = await writeRandomFile(local, 6 * MiB + 1);
    const item = await admin.createItem(folder._id, 'holder');
    const fromDisk = await admin.uploadFileFromDisk({ type: 'item', id: item._id }, 'random.bin', local, 5 * MiB);
    t.equal(fromDisk.itemId, item._id);
    t.equal(await admin.fileSha512(fromDisk._id), localSha);
    t.equal(sha512(await admin.download(fromDisk._id)), localSha);
    const files = await admin.listFiles(item._id);
    t.same(files.map((f) => f.name), ['random.bin']);
    const items = await admin.listItems(folder._id);
    t.same(items.map((i) => i.name).sort(), ['holder', 'six.bin']);
    const withMeta = await admin.setMeta('item', item._id, { kind: 'test', n: 1 });
    t.same(withMeta.meta, { kind: 'test', n: 1 });
  });

  t.test('stop() ends the process and removes its temp data dir', async (t) => {
    const code = await server.stop();
    t.equal(code, 0, 'clean exit on SIGTERM');
    t.notOk(processExists(info.pid), 'no server process left');
    await t.rejects(stat(info.dataDir), { code: 'ENOENT' });
    await t.rejects(fetch(`${info.apiUrl}/system/version`), 'nothing listens any more');
  });
});

t.test('girder-server.py --assetstore s3: Girder on a local S3 server (moto) that lives and dies with it', async (t) => {
  const server = await startGirder({ assetstore: 's3' });
  t.teardown(() => server.stop());
  const { info } = server;
  const admin = rest(server, 'admin');
  t.equal(info.assetstore.type, 's3', 'the ready line says S3 is the current assetstore');
  t.match(info.assetstore.service, /^http:\/\/127\.0\.0\.1:\d+$/, 'on a local S3 server bound to 127.0.0.1');
  t.equal(info.assetstore.hashsumAutoCompute, true);

  const data = Buffer.from('bytes kept in S3\n');
  const file = await admin.uploadBytes({ type: 'folder', id: info.folders.adminPrivate }, 's3.txt', data);
  t.equal(file.size, data.length);
  const token = await admin.token();
  const res = await fetch(`${info.apiUrl}/file/${file._id}/download`, { headers: { 'Girder-Token': token }, redirect: 'manual' });
  t.equal(res.status, 303, 'a download answers 303');
  const location = res.headers.get('location') ?? '';
  t.ok(location.startsWith(`${info.assetstore.service}/${info.assetstore.bucket}/`), 'to a presigned URL of the bucket');
  const fromS3 = await fetch(location, { headers: { Range: 'bytes=6-10' } });
  t.equal(fromS3.status, 206, 'S3 answers the Range itself');
  t.equal(await fromS3.text(), 'kept ', 'with the right bytes');
  t.equal(await admin.fileSha512(file._id), sha512(data), 'hashsum_download computed the SHA-512 after the upload');

  t.equal(await server.stop(), 0, 'clean exit on SIGTERM');
  await t.rejects(fetch(`${info.assetstore.service}/`), 'the S3 server is gone too');
});
