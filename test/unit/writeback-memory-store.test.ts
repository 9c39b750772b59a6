import t from 'tap';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { GirderError, isMissing } from '../../src/girder/girder-error.js';
import { MemoryStore } from '../helpers/memory-store.js';

const sha = (b: Buffer | string): string => createHash('sha512').update(b).digest('hex');

t.test('ids, missing ids and malformed ids', async (t) => {
  const s = new MemoryStore();
  t.match(s.rootId, /^[0-9a-f]{24}$/);
  const root = await s.getFolder(s.rootId);
  t.equal(root.id, s.rootId);
  const missing = 'aaaaaaaaaaaaaaaaaaaaaaaa';
  await t.rejects(s.getItem(missing), { status: 400, type: 'rest', message: `Invalid item id (${missing}).` });
  await t.rejects(s.getFolder(missing), { message: `Invalid folder id (${missing}).` });
  await t.rejects(s.getFile(missing), { message: `Invalid file id (${missing}).` });
  const err = await s.getFile(missing).catch((e: unknown) => e);
  t.ok(err instanceof GirderError && isMissing(err));
  await t.rejects(s.getItem('nope'), { message: 'Invalid ObjectId: nope', status: 400, type: 'validation', field: 'id' });
});

t.test('name clashes: items renamed, folders refused, names trimmed', async (t) => {
  const s = new MemoryStore();
  const a = await s.createItem(s.rootId, '  a.txt ');
  t.equal(a.name, 'a.txt');
  t.equal((await s.createItem(s.rootId, 'a.txt')).name, 'a.txt (1)');
  t.equal((await s.createItem(s.rootId, 'a.txt')).name, 'a.txt (2)');
  const d = await s.createFolder(s.rootId, 'd');
  t.equal((await s.createItem(s.rootId, 'd')).name, 'd (1)');
  await t.rejects(s.createFolder(s.rootId, 'd'), { status: 400, type: 'validation', message: 'A folder with that name already exists here.' });
  await t.rejects(s.createFolder(s.rootId, 'a.txt'), { status: 400, message: 'An item with that name already exists here.' });
  const e = await s.createFolder(s.rootId, 'e');
  await t.rejects(s.updateFolder(e.id, { name: 'd' }), { message: 'A folder with that name already exists here.' });
  await t.rejects(s.createItem(s.rootId, '   '), { status: 400, message: 'Item name must not be empty.' });
  await t.rejects(s.updateFolder(s.rootId, { parentId: d.id }), { message: 'You may not move a folder underneath itself.' });
  t.same((await s.findItems(s.rootId, 'a.txt')).map((i) => i.id), [a.id]);
});

t.test('upload, replace, copy, rename, read, delete', async (t) => {
  const s = new MemoryStore({ chunkSize: 4 });
  const dir = t.testdir({ src: 'hello world', src2: 'bye' });
  const item = await s.createItem(s.rootId, 'x');
  const ids: string[] = [];
  const progress: number[] = [];
  const f = await s.createFile({ itemId: item.id }, 'x', { path: join(dir, 'src'), size: 11 }, {
    onUploadId: (id) => { ids.push(id); },
    onProgress: (sent) => progress.push(sent),
  });
  t.equal(ids.length, 1);
  t.same(progress, [4, 8, 11]);
  t.equal(f.sha512, sha('hello world'));
  t.equal(f.updated, undefined);
  t.equal(s.bytesUploaded, 11);
  t.equal((await s.getItem(item.id)).size, 11);
  const buf = Buffer.alloc(20);
  t.equal(await s.readRange(f, 6, 20, buf), 5);
  t.equal(buf.subarray(0, 5).toString(), 'world');
  t.equal(await s.readRange(f, 11, 5, buf), 0);

  const r = await s.replaceFile(f.id, { path: join(dir, 'src2'), size: 3 });
  t.equal(r.id, f.id);
  t.equal(r.sha512, sha('bye'));
  t.equal(s.contentOf(f.id).toString(), 'bye');

  const other = await s.createItem(s.rootId, 'y');
  const c = await s.copyFile(f.id, other.id);
  t.equal(c.name, 'x');
  t.equal(c.created, r.created);
  const renamed = await s.renameFile(c.id, ' y ');
  t.equal(renamed.name, 'y');
  t.type(renamed.updated, 'number');
  t.same((await s.filesBySha512(sha('bye'))).map((x) => x.id).sort(), [f.id, c.id].sort());
  s.hashsum = false;
  t.same(await s.filesBySha512(sha('bye')), []);
  t.equal((await s.getFile(f.id)).sha512, undefined);

  const sub = await s.createFolder(s.rootId, 'sub');
  const deep = await s.createFolder(sub.id, 'deep');
  const { item: di, file: df } = s.seedFile(deep.id, 'z', 'zz');
  await s.deleteFolder(sub.id);
  t.notOk(s.hasFolder(deep.id));
  t.notOk(s.hasItem(di.id));
  t.notOk(s.hasFile(df.id));
});

t.test('metadata and hooks', async (t) => {
  const s = new MemoryStore();
  const { item } = s.seedFile(s.rootId, 'm', 'data');
  await s.setItemMeta(item.id, { a: 1, b: { c: 2 } });
  const m = await s.setItemMeta(item.id, { a: null });
  t.same(m.meta, { b: { c: 2 } });

  s.failNext('getItem', new GirderError('down', 0, 'network'), 2);
  await t.rejects(s.getItem(item.id), { message: 'down' });
  await t.rejects(s.getItem(item.id), { message: 'down' });
  t.equal((await s.getItem(item.id)).id, item.id);
  t.equal(s.count('getItem'), 3);

  const gate = s.gate('getItem');
  let done = false;
  const p = s.getItem(item.id).then(() => { done = true; });
  await gate.reached;
  t.notOk(done);
  gate.release();
  await p;
  t.ok(done);
});

t.test('interrupted upload resumes with its upload id', async (t) => {
  const s = new MemoryStore({ chunkSize: 4 });
  const dir = t.testdir({ src: '0123456789' });
  const src = { path: join(dir, 'src'), size: 10 };
  const item = await s.createItem(s.rootId, 'r');
  let uploadId: string | undefined;
  s.interruptNextUpload(4, new GirderError('reset', 0, 'network'));
  await t.rejects(s.createFile({ itemId: item.id }, 'r', src, { onUploadId: (id) => { uploadId = id; } }));
  t.equal(s.bytesUploaded, 4);
  t.same(s.pendingUploadIds(), [uploadId]);
  const ids: string[] = [];
  const f = await s.createFile({ itemId: item.id }, 'r', src, { resumeUploadId: uploadId, onUploadId: (id) => { ids.push(id); } });
  t.same(ids, []);
  t.equal(s.bytesUploaded, 10);
  t.equal(s.contentOf(f.id).toString(), '0123456789');
  await fsp.rm(dir, { recursive: true, force: true });
});
