import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';
import { versionKeyOf } from '../../src/vfs/cache/version-key.js';
import { UploadQueue, type UploadJob, type UploadQueueOptions, type UploadResult } from '../../src/vfs/writeback/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

const MiB = 1 << 20;
const sha = (b: Buffer | string): string => createHash('sha512').update(b).digest('hex');

/** Log lines at every level, to assert what the queue says. */
function captureLogger(): { logger: Logger; lines: Array<{ level: number; msg: string } & Record<string, unknown>> } {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { logger, lines };
}

/** Submit, then wait for Girder to have the bytes. */
async function done(submitted: Promise<{ readonly done: Promise<UploadResult> }>): Promise<UploadResult> {
  return (await submitted).done;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The bits of a tap test the fixture needs. */
interface TestLike {
  testdir: typeof t.testdir;
  teardown: typeof t.teardown;
}

function setup(t: TestLike, opts: Partial<UploadQueueOptions> & { store?: MemoryStore } = {}) {
  const dir = t.testdir({ data: {}, journal: {} });
  const store = opts.store ?? new MemoryStore();
  const log = captureLogger();
  let n = 0;
  const queue = new UploadQueue({ store, journalDir: join(dir, 'journal'), logger: log.logger, retryDelayMs: { min: 5, max: 20 }, ...opts });
  t.teardown(() => queue.close());
  const temp = async (data: Buffer | string): Promise<{ tempPath: string; size: number }> => {
    const tempPath = join(dir, 'data', `${++n}.upload`);
    await writeFile(tempPath, data);
    return { tempPath, size: Buffer.byteLength(data) };
  };
  const journalFiles = (): string[] => readdirSync(join(dir, 'journal')).filter((f) => f.endsWith('.json'));
  return { dir, store, queue, log, temp, journalFiles };
}

t.test('a new file in a folder is uploaded, its temp file and journal record removed', async (t) => {
  const { store, queue, temp, journalFiles } = setup(t);
  t.same(await queue.start(), []);
  const data = 'hello girder';
  const src = await temp(data);
  const job: UploadJob = { path: '/a.txt', target: { kind: 'folder', folderId: store.rootId, name: 'a.txt' }, ...src };
  const { done: finished } = await queue.submit(job);
  t.equal(journalFiles().length, 1, 'journaled before submit resolves');
  const r = await finished;
  t.equal(r.how, 'uploaded');
  t.equal(r.path, '/a.txt');
  t.equal(r.bytesSent, data.length);
  t.equal(r.file.name, 'a.txt');
  t.equal(store.contentOf(r.file.id).toString(), data);
  const items = store.itemsIn(store.rootId);
  t.same(items.map((i) => i.name), ['a.txt']);
  t.equal(r.itemId, items[0]?.id);
  t.equal(store.bytesUploaded, data.length);
  t.notOk(existsSync(src.tempPath), 'temp file removed');
  t.same(journalFiles(), []);
  t.equal(queue.pendingFor('/a.txt'), undefined);
  t.same(queue.status(), []);
});

t.test('replacing keeps the file id; same bytes send nothing', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const { file } = store.seedFile(store.rootId, 'b.txt', 'old content');
  const r = await done(queue.submit({ path: '/b.txt', target: { kind: 'file', fileId: file.id }, ...(await temp('new content!')) }));
  t.equal(r.how, 'uploaded');
  t.equal(r.file.id, file.id);
  t.equal(store.contentOf(file.id).toString(), 'new content!');
  t.equal(store.count('replaceFile'), 1);

  const before = store.bytesUploaded;
  const same = await done(queue.submit({ path: '/b.txt', target: { kind: 'file', fileId: file.id, remoteSha512: sha('new content!') }, ...(await temp('new content!')) }));
  t.equal(same.how, 'unchanged');
  t.equal(same.bytesSent, 0);
  t.equal(same.file.id, file.id);
  t.equal(store.bytesUploaded, before, 'no bytes uploaded');
  t.equal(store.count('replaceFile'), 1, 'no second replace');
});

t.test('replacing a file changed elsewhere since it was opened here logs that the local version replaces it', async (t) => {
  const { store, queue, temp, log } = setup(t);
  await queue.start();
  const { file } = store.seedFile(store.rootId, 'c.txt', 'as opened');
  const opened = versionKeyOf(await store.getFile(file.id));
  const warned = (): number => log.lines.filter((l) => /changed on the server while open here/.test(l.msg)).length;
  await done(queue.submit({ path: '/c.txt', target: { kind: 'file', fileId: file.id }, openedVersion: opened, ...(await temp('edited here')) }));
  t.equal(warned(), 0, 'not while Girder has the version it was opened from');
  const now = versionKeyOf(await store.getFile(file.id));
  store.replaceContents(file.id, 'changed elsewhere');
  await done(queue.submit({ path: '/c.txt', target: { kind: 'file', fileId: file.id }, openedVersion: now, ...(await temp('edited again')) }));
  t.equal(warned(), 1, 'once Girder has another version');
  t.equal(store.contentOf(file.id).toString(), 'edited again', 'and the local close wins');
});

t.test('a file deleted meanwhile is created anew at its fallback place', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const { item, file } = store.seedFile(store.rootId, 'gone.txt', 'x');
  await store.deleteItem(item.id);
  const r = await done(queue.submit({
    path: '/gone.txt', target: { kind: 'file', fileId: file.id, fallback: { folderId: store.rootId, name: 'gone.txt' } }, ...(await temp('back')),
  }));
  t.equal(r.how, 'uploaded');
  t.not(r.file.id, file.id);
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['gone.txt']);
  t.equal(store.contentOf(r.file.id).toString(), 'back');
});

t.test('a new file in a multi-file item, and item metadata', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const item = store.seedItem(store.rootId, 'dir');
  store.seedFileInItem(item.id, 'one', '1');
  store.seedFileInItem(item.id, 'two', '2');
  const r = await done(queue.submit({
    path: '/dir/three', target: { kind: 'item', itemId: item.id, name: 'three' }, meta: { fuse_mtime: '5:6' }, ...(await temp('3')),
  }));
  t.equal(r.itemId, item.id);
  t.same(store.filesIn(item.id).map((f) => f.name), ['one', 'three', 'two']);
  t.same((await store.getItem(item.id)).meta, { fuse_mtime: '5:6' });
});

t.test('server-side copy of a readable file with the same hash', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const big = randomBytes(MiB + 1234);
  const other = store.seedFolder(store.rootId, 'elsewhere');
  const { file: src } = store.seedFile(other.id, 'original.bin', big);
  const r = await done(queue.submit({ path: '/copy.bin', target: { kind: 'folder', folderId: store.rootId, name: 'copy.bin' }, ...(await temp(big)) }));
  t.equal(r.how, 'copied');
  t.equal(r.bytesSent, 0);
  t.equal(store.bytesUploaded, 0, 'no bytes uploaded');
  t.equal(r.file.name, 'copy.bin');
  t.not(r.file.id, src.id);
  t.ok(store.contentOf(r.file.id).equals(big));
  t.equal(store.count('copyFile'), 1);
  t.equal(store.count('renameFile'), 1);
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['copy.bin']);

  // under 1 MiB: uploaded even though a copy would be possible
  const small = randomBytes(1000);
  store.seedFile(other.id, 'small.bin', small);
  const s = await done(queue.submit({ path: '/small.bin', target: { kind: 'folder', folderId: store.rootId, name: 'small.bin' }, ...(await temp(small)) }));
  t.equal(s.how, 'uploaded');
  t.equal(store.count('filesBySha512'), 1, 'small files never look up hashes');
});

t.test('a server-side copy whose source changed after the hash lookup is deleted, never kept', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const big = randomBytes(MiB + 77);
  const sameSize = randomBytes(big.length);
  const other = store.seedFolder(store.rootId, 'elsewhere');
  const { file: first } = store.seedFile(other.id, 'first.bin', big);
  store.seedFile(other.id, 'second.bin', big);
  // The first hit's contents are replaced (same size) between the lookup and its copy, as a
  // concurrent upload of ours does: the copy would hold those bytes.
  store.beforeNext('copyFile', () => store.replaceContents(first.id, sameSize));
  const r = await done(queue.submit({ path: '/a.bin', target: { kind: 'folder', folderId: store.rootId, name: 'a.bin' }, ...(await temp(big)) }));
  t.equal(r.how, 'copied', 'copied from the second hit, which still holds the bytes');
  t.ok(store.contentOf(r.file.id).equals(big), 'the file holds what was written');
  t.equal(store.count('copyFile'), 2);
  t.equal(store.count('deleteFile'), 1, 'the wrong copy was deleted');
  const [item] = store.itemsIn(store.rootId).filter((i) => i.name === 'a.bin');
  t.same(store.filesIn(item!.id).map((f) => f.name), ['a.bin'], 'one file in the item');

  // the only hit changes (to other bytes of another size): uploaded instead
  const only = randomBytes(MiB + 99);
  const { file: lone } = store.seedFile(other.id, 'lone.bin', only);
  store.beforeNext('copyFile', () => store.replaceContents(lone.id, randomBytes(500)));
  const s = await done(queue.submit({ path: '/b.bin', target: { kind: 'folder', folderId: store.rootId, name: 'b.bin' }, ...(await temp(only)) }));
  t.equal(s.how, 'uploaded');
  t.ok(store.contentOf(s.file.id).equals(only));
  t.equal(store.count('deleteFile'), 2);
  const [bItem] = store.itemsIn(store.rootId).filter((i) => i.name === 'b.bin');
  t.equal(store.filesIn(bItem!.id).length, 1, 'one file in the item');
});

t.test('no server-side copy without the hashsum plugin', async (t) => {
  const { store, queue, temp } = setup(t, { store: new MemoryStore({ hashsum: false }) });
  await queue.start();
  const big = randomBytes(MiB + 1);
  store.seedFile(store.rootId, 'original.bin', big);
  const r = await done(queue.submit({ path: '/c.bin', target: { kind: 'folder', folderId: store.rootId, name: 'c.bin' }, ...(await temp(big)) }));
  t.equal(r.how, 'uploaded');
  t.equal(store.count('filesBySha512'), 0);
  t.equal(store.bytesUploaded, big.length);
});

t.test('an existing single-file item of the name gets its file replaced (no "name (1)")', async (t) => {
  const { store, queue, temp, log } = setup(t);
  await queue.start();
  const { item, file } = store.seedFile(store.rootId, 'dup.txt', 'theirs');
  const r = await done(queue.submit({ path: '/dup.txt', target: { kind: 'folder', folderId: store.rootId, name: 'dup.txt' }, ...(await temp('mine')) }));
  t.equal(r.file.id, file.id);
  t.equal(r.itemId, item.id);
  t.equal(store.contentOf(file.id).toString(), 'mine');
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['dup.txt']);
  t.equal(store.count('createItem'), 0);
  t.ok(log.lines.some((l) => l.level === 40 && l.msg === 'replaced a file created elsewhere meanwhile'));
});

t.test('a clash racing in ("name (1)") is undone and the raced file replaced', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  let raced: { itemId: string; fileId: string } | undefined;
  store.beforeNext('createItem', () => {
    const { item, file } = store.seedFile(store.rootId, 'race.txt', 'other writer');
    raced = { itemId: item.id, fileId: file.id };
  });
  const r = await done(queue.submit({ path: '/race.txt', target: { kind: 'folder', folderId: store.rootId, name: 'race.txt' }, ...(await temp('ours')) }));
  t.ok(raced);
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['race.txt'], 'no "race.txt (1)" left');
  t.equal(r.file.id, raced?.fileId);
  t.equal(store.contentOf(r.file.id).toString(), 'ours');
  t.equal(store.count('deleteItem'), 1);
});

t.test('a folder of the same name in the way: the job waits, never leaving "name (1)"', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const folder = store.seedFolder(store.rootId, 'taken');
  const { done: p } = await queue.submit({ path: '/taken', target: { kind: 'folder', folderId: store.rootId, name: 'taken' }, ...(await temp('x')) });
  await waitFor(() => queue.status()[0]?.state === 'waiting', 'the job to wait');
  t.match(queue.status()[0], { reason: /a folder of that name is in the way; rename or remove it/ });
  t.same(store.itemsIn(store.rootId), [], 'every "taken (n)" item was removed');
  await store.updateFolder(folder.id, { name: 'moved away' });
  queue.retryNow('test');
  const r = await p;
  t.equal(store.contentOf(r.file.id).toString(), 'x', 'uploaded once the name is free');
});

t.test('jobs of one path run in order; a queued job is superseded by a newer one', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const target = { kind: 'folder', folderId: store.rootId, name: 'o.txt' } as const;
  const gate = store.gate('createFile');
  const j1 = { path: '/o.txt', target, ...(await temp('one')) };
  const { done: p1 } = await queue.submit(j1);
  await gate.reached;
  const j2 = { path: '/o.txt', target, ...(await temp('two')) };
  const { done: p2 } = await queue.submit(j2);
  t.equal(queue.pendingFor('/o.txt'), j2);
  const j3 = { path: '/o.txt', target, ...(await temp('three')) };
  const { done: p3 } = await queue.submit(j3);
  t.equal(queue.pendingFor('/o.txt'), j3);
  await waitFor(() => !existsSync(j2.tempPath), 'the superseded temp file to go');
  t.same(queue.status().map((s) => s.state), ['uploading', 'queued'], 'j2 dropped, j3 waits behind j1');
  t.equal(store.count('replaceFile'), 0, 'nothing of j3 started while j1 runs');
  gate.release();
  const r1 = await p1;
  const r3 = await p3;
  const r2 = await p2;
  t.equal(r2, r3, 'the superseded job resolves with the newer one\'s result');
  t.equal(r3.file.id, r1.file.id, 'j3 replaced the file j1 made');
  t.equal(store.contentOf(r3.file.id).toString(), 'three');
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['o.txt']);
  t.equal(store.count('createFile'), 1);
  t.equal(store.count('replaceFile'), 1);
});

t.test('different paths upload concurrently up to the limit', async (t) => {
  const { store, queue, temp } = setup(t, { concurrency: 2 });
  await queue.start();
  const g1 = store.gate('createFile');
  const g2 = store.gate('createFile');
  const ps = [];
  for (const name of ['p', 'q', 'r']) {
    ps.push((await queue.submit({ path: `/${name}`, target: { kind: 'folder', folderId: store.rootId, name }, ...(await temp(name)) })).done);
  }
  await g1.reached;
  await g2.reached;
  t.same(queue.status().map((s) => s.state), ['uploading', 'uploading', 'queued']);
  g1.release();
  g2.release();
  const rs = await Promise.all(ps);
  t.same(rs.map((r) => store.contentOf(r.file.id).toString()), ['p', 'q', 'r']);
});

t.test('status while uploading, and drain with a timeout', async (t) => {
  const store = new MemoryStore({ chunkSize: 1000 });
  const { queue, temp } = setup(t, { store });
  await queue.start();
  store.delayNext('createFile', 200);
  const pause = store.pauseNextUpload(2000);
  const data = randomBytes(5000);
  const { done: p } = await queue.submit({ path: '/s.bin', target: { kind: 'folder', folderId: store.rootId, name: 's.bin' }, ...(await temp(data)) });
  await waitFor(() => queue.status()[0]?.state === 'uploading', 'state uploading');
  t.match(queue.status(), [{ path: '/s.bin', size: 5000, state: 'uploading' }]);
  await pause.reached;
  t.same(queue.status(), [{ path: '/s.bin', size: 5000, sent: 2000, state: 'uploading' }]);
  t.equal(await queue.drain(30), false, 'drain times out while an upload is pending');
  pause.release();
  t.equal(await queue.drain(20_000), true);
  t.equal(store.contentOf((await p).file.id).length, 5000);
  t.equal(await queue.drain(0), true, 'an empty queue drains at once');
});

t.test('an item directory in the way waits for the user; an empty item being filled elsewhere is waited for', async (t) => {
  const { store, queue, temp } = setup(t);
  await queue.start();
  const dirItem = store.seedItem(store.rootId, 'multi');
  store.seedFileInItem(dirItem.id, 'x', '1');
  store.seedFileInItem(dirItem.id, 'y', '2');
  const { done: multi } = await queue.submit({ path: '/multi', target: { kind: 'folder', folderId: store.rootId, name: 'multi' }, ...(await temp('m')) });
  await waitFor(() => queue.status()[0]?.state === 'waiting', 'the job to wait');
  t.match(queue.status()[0], { path: '/multi', reason: /an item directory of that name is in the way; rename or remove it/ });
  t.same(store.filesIn(dirItem.id).map((f) => f.name), ['x', 'y'], 'the directory is untouched');
  t.equal(store.count('createItem'), 0);
  await store.updateItem(dirItem.id, { name: 'multi.renamed' });
  queue.retryNow('test');
  t.equal(store.contentOf((await multi).file.id).toString(), 'm', 'uploaded once the user renamed the directory');

  const empty = store.seedItem(store.rootId, 'filling');
  store.beforeNext('findItems', () => undefined);
  store.beforeNext('findItems', () => { store.seedFileInItem(empty.id, 'filling', 'theirs'); });
  const r = await done(queue.submit({ path: '/filling', target: { kind: 'folder', folderId: store.rootId, name: 'filling' }, ...(await temp('mine')) }));
  t.equal(r.itemId, empty.id);
  t.equal(store.contentOf(r.file.id).toString(), 'mine');
  t.equal(store.itemsIn(store.rootId).filter((i) => i.name.startsWith('filling')).length, 1);
});
