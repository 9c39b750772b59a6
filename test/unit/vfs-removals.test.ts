// Removals written back: an unlink answers once the entry is gone from the mount and the removal is
// journaled; Girder's DELETE follows. rm -r is one recursive delete; a new file of a removed name
// takes the old entry over; a removal survives a restart; one Girder refuses shows the entry again.
import t from 'tap';
import { GirderError } from '../../src/girder/girder-error.js';
import { O_WRONLY } from '../../src/vfs/api.js';
import { errnoOf } from '../helpers/errno.js';
import { vfsFixture } from '../helpers/vfs-fixture.js';

const TTL = 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('an unlink answers before Girder removes the file; listings fetched meanwhile do not bring it back', async (t) => {
  const fx = await vfsFixture({ ttlMs: TTL });
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'gone.txt', 'bye');
  fx.store.seedFile(fx.store.rootId, 'kept.txt', 'stay');
  t.same((await fx.vfs.readdir('/')).sort(), ['gone.txt', 'kept.txt']);
  const gate = fx.store.gate('deleteItem');
  await fx.vfs.unlink('/gone.txt');
  await gate.reached;
  fx.store.calls.length = 0;
  t.same(await fx.vfs.readdir('/'), ['kept.txt'], 'gone from the mount at once');
  t.equal(await errnoOf(fx.vfs.getattr('/gone.txt')), 'ENOENT');
  await sleep(TTL + 5);
  t.same(await fx.vfs.readdir('/'), ['kept.txt'], 'a listing fetched while Girder still has it leaves it out');
  t.equal(fx.store.count('listFiles'), 0, 'without asking for the files of the item being removed (rm -r of a big folder asked for every one at each TTL)');
  t.ok(fx.store.itemsIn(fx.store.rootId).some((i) => i.name === 'gone.txt'), 'Girder still has it');
  gate.release();
  await fx.removals.drain(5_000);
  t.same(fx.store.itemsIn(fx.store.rootId).map((i) => i.name), ['kept.txt'], 'then Girder removes it');
});

t.test('rm -r: the rmdir\'s recursive delete takes the removals still queued under it', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const dir = fx.store.seedFolder(fx.store.rootId, 'tree');
  for (let i = 0; i < 20; i++) fx.store.seedFile(dir.id, `f${i}.txt`, `${i}`);
  // Girder refuses item removals for now: they stay queued (and keep being tried) while rm runs.
  const refusal = fx.store.refuse(new GirderError('Service Unavailable', 503, 'rest'), ['deleteItem']);
  for (const name of await fx.vfs.readdir('/tree')) await fx.vfs.unlink(`/tree/${name}`);
  t.equal(fx.removals.pending, 20, 'every removal queued');
  await fx.vfs.rmdir('/tree');
  refusal.lift();
  await fx.removals.drain(5_000);
  t.equal(fx.removals.pending, 0, 'the rmdir took them all');
  t.equal(fx.store.count('deleteFolder'), 1, 'one recursive delete');
  t.notOk(fx.store.hasFolder(dir.id), 'the tree is gone from Girder');
  t.equal(fx.store.itemsIn(dir.id).length, 0, 'with its items');
});

t.test('an rmdir of an emptied folder answers before Girder removes it; a mkdir of its name waits for that', async (t) => {
  const fx = await vfsFixture({ ttlMs: TTL });
  t.teardown(() => fx.close());
  const dir = fx.store.seedFolder(fx.store.rootId, 'ab');
  fx.store.seedFile(dir.id, 'obj1', '1');
  fx.store.seedFile(dir.id, 'obj2', '2');
  fx.store.seedFile(fx.store.rootId, 'kept.txt', 'stay');
  for (const name of await fx.vfs.readdir('/ab')) await fx.vfs.unlink(`/ab/${name}`);
  const gate = fx.store.gate('deleteFolder');
  const answered = await Promise.race([fx.vfs.rmdir('/ab').then(() => true), sleep(2_000).then(() => false)]);
  t.ok(answered, 'the rmdir answered while Girder has not removed the folder yet');
  t.ok(fx.store.hasFolder(dir.id), 'Girder still has it');
  t.equal(await errnoOf(fx.vfs.getattr('/ab')), 'ENOENT', 'gone from the mount at once');
  await sleep(TTL + 5);
  t.same(await fx.vfs.readdir('/'), ['kept.txt'], 'a listing fetched while Girder still has it leaves it out');
  const made = fx.vfs.mkdir('/ab', 0o755);
  await sleep(50);
  t.equal(fx.store.count('createFolder'), 0, 'the mkdir of its name waits for the removal');
  await gate.reached;
  gate.release();
  await made;
  await fx.removals.drain(5_000);
  t.notOk(fx.store.hasFolder(dir.id), 'Girder removed the folder');
  t.equal(fx.store.count('deleteFolder'), 1, 'with one recursive delete');
  t.equal(fx.store.count('deleteItem'), 0, 'which took the removals of its files');
  t.same((await fx.vfs.readdir('/')).sort(), ['ab', 'kept.txt'], 'the new folder of the name is there');
  t.same(await fx.vfs.readdir('/ab'), [], 'and empty');
});

t.test('rm -r of a tree of folders: one recursive delete, and a mkdir of its name right after does not wait forever', async (t) => {
  const fx = await vfsFixture({ ttlMs: TTL });
  t.teardown(() => fx.close());
  const top = fx.store.seedFolder(fx.store.rootId, 'd00');
  fx.store.seedFile(top.id, 'a.txt', 'a');
  const sub = fx.store.seedFolder(top.id, 'sub');
  fx.store.seedFile(sub.id, 'b.txt', 'b');
  const deeper = fx.store.seedFolder(sub.id, 'deeper');
  fx.store.seedFile(deeper.id, 'c.txt', 'c');
  // as rm -r does it: the files of a folder, then the folder, from the bottom up
  await fx.vfs.unlink('/d00/sub/deeper/c.txt');
  await fx.vfs.rmdir('/d00/sub/deeper');
  await fx.vfs.unlink('/d00/sub/b.txt');
  await fx.vfs.rmdir('/d00/sub');
  await fx.vfs.unlink('/d00/a.txt');
  await fx.vfs.rmdir('/d00');
  const made = await Promise.race([fx.vfs.mkdir('/d00', 0o755).then(() => true), sleep(3_000).then(() => false)]);
  t.ok(made, 'the mkdir of its name is done once the removal is');
  t.ok(await fx.removals.drain(3_000), 'no removal left waiting');
  t.equal(fx.store.count('deleteFolder'), 1, 'one recursive delete');
  t.equal(fx.store.count('deleteItem'), 0, 'which did the removals of the files');
  t.notOk(fx.store.hasFolder(top.id), 'the old tree is gone from Girder');
  t.same(await fx.vfs.readdir('/d00'), [], 'the new folder is empty');
});

t.test('an rmdir Girder refuses: the folder shows again, with its files', async (t) => {
  const fx = await vfsFixture({ ttlMs: TTL });
  t.teardown(() => fx.close());
  const dir = fx.store.seedFolder(fx.store.rootId, 'locked');
  fx.store.seedFile(dir.id, 'f.txt', 'x');
  await fx.vfs.unlink('/locked/f.txt');
  fx.store.failNext('deleteFolder', new GirderError('Write access denied for folder', 403, 'access'));
  const refused = fx.store.refuse(new GirderError('Write access denied for folder', 403, 'access'), ['deleteItem']);
  await fx.vfs.rmdir('/locked');
  await fx.removals.drain(5_000);
  refused.lift();
  await sleep(TTL + 5);
  t.same(await fx.vfs.readdir('/'), ['locked'], 'Girder refused: it shows again');
  t.same(await fx.vfs.readdir('/locked'), ['f.txt'], 'its file too (refused as well)');
});

t.test('rm f, then a new f: the old one is removed first, the new one is not made beside it as "f (1)"', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'f.txt', 'old');
  await fx.vfs.readdir('/');
  await fx.vfs.unlink('/f.txt');
  const fh = await fx.vfs.create('/f.txt', 0o644, O_WRONLY);
  t.equal(fx.removals.pending, 0, 'the create waited for the removal');
  await fx.vfs.write(fh, Buffer.from('new'), 3, 0);
  await fx.vfs.release(fh);
  await fx.uploads.drain(5_000);
  const items = fx.store.itemsIn(fx.store.rootId);
  t.same(items.map((i) => i.name), ['f.txt'], 'one item');
  t.equal(fx.store.contentOf(fx.store.filesIn(items[0]!.id)[0]!.id).toString(), 'new', 'with the new bytes');
});

t.test('a removal survives a restart; one Girder refuses shows the entry again', async (t) => {
  const first = await vfsFixture({ ttlMs: TTL });
  const store = first.store;
  store.seedFile(store.rootId, 'later.txt', 'x');
  store.seedFile(store.rootId, 'refused.txt', 'y');
  await first.vfs.readdir('/');
  const down = store.refuse(new GirderError('Service Unavailable', 503, 'rest'), ['deleteItem']);
  await first.vfs.unlink('/later.txt');
  await first.close({ keep: true });
  down.lift();

  const second = await vfsFixture({ ttlMs: TTL, store, dir: first.dir });
  t.teardown(() => second.close());
  t.same((await second.vfs.readdir('/')).sort(), ['refused.txt'], 'after the restart the removed entry stays hidden');
  await second.removals.drain(5_000);
  t.notOk(store.itemsIn(store.rootId).some((i) => i.name === 'later.txt'), 'and Girder removed it');

  store.failNext('deleteItem', new GirderError('Write access denied for folder', 403, 'access'));
  await second.vfs.unlink('/refused.txt');
  await second.removals.drain(5_000);
  await sleep(TTL + 5);
  t.same(await second.vfs.readdir('/'), ['refused.txt'], 'Girder refused: it shows again');
});

t.test('a journal made and removed again and again (sqlite): nothing of it is left on Girder', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.vfs.readdir('/');
  for (let round = 0; round < 3; round++) {
    await fx.writeFile('/db-journal', `transaction ${round}`);
    await fx.uploads.drain(5_000); // this round's journal reached Girder
    await fx.vfs.unlink('/db-journal');
  }
  await fx.writeFile('/db-journal', 'last');
  await fx.vfs.unlink('/db-journal');
  await fx.uploads.drain(5_000);
  await fx.removals.drain(5_000);
  t.same(fx.store.itemsIn(fx.store.rootId).map((i) => i.name), [], 'no journal left: a leftover is a hot journal, which rolls the database back');
  t.equal(await errnoOf(fx.vfs.getattr('/db-journal')), 'ENOENT');
});

t.test("a file removed or replaced here leaves the cache: its versions are not kept until evicted", async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const a = fx.store.seedFile(fx.store.rootId, 'a.txt', 'aaa');
  const b = fx.store.seedFile(fx.store.rootId, 'b.txt', 'bbb');
  t.equal((await fx.readFile('/a.txt')).toString(), 'aaa');
  t.equal((await fx.readFile('/b.txt')).toString(), 'bbb');
  t.ok(fx.reader.holds(a.file.id) && fx.reader.holds(b.file.id), 'both cached once read');
  await fx.vfs.unlink('/a.txt');
  t.notOk(fx.reader.holds(a.file.id), 'the removed one is gone from the cache');
  await fx.writeFile('/c.txt', 'ccc');
  await fx.uploads.drain(5_000);
  await fx.vfs.rename('/c.txt', '/b.txt');
  t.notOk(fx.reader.holds(b.file.id), 'the one a rename replaced too');
  t.equal((await fx.readFile('/b.txt')).toString(), 'ccc');
});

t.test('a file removed while a program reads it keeps its cached bytes until that program closes it', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const { file } = fx.store.seedFile(fx.store.rootId, 'open.bin', Buffer.alloc(100_000, 5));
  const fh = await fx.vfs.open('/open.bin', 0);
  const buf = Buffer.alloc(100_000);
  t.equal(await fx.vfs.read(fh, buf, buf.length, 0), 100_000);
  // `rm` of an open file: libfuse renames it to a hidden name, and unlinks that at the last close.
  const hidden = '/.fuse_hidden0000000200000001';
  await fx.vfs.rename('/open.bin', hidden);
  t.equal(fx.store.count('deleteItem'), 1, 'Girder no longer has it');
  buf.fill(0);
  t.equal(await fx.vfs.read(fh, buf, buf.length, 0), 100_000, 'the reader still reads it, from the cache');
  t.ok(buf.every((x) => x === 5));
  t.ok(fx.reader.holds(file.id));
  await fx.vfs.release(fh);
  await fx.vfs.unlink(hidden);
  t.notOk(fx.reader.holds(file.id), 'gone from the cache once closed');
});

t.test('rmdir of a folder whose last file was unlinked while a program still holds it open', async (t) => {
  // stress-ng's fanotify stressor: a child killed with the file open, then the parent's unlink
  // and rmdir. libfuse keeps the file under a hidden name until its last close, and rmdir(2) of
  // the folder succeeds on a local disk meanwhile.
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.vfs.mkdir('/d', 0o755);
  const folderId = (await fx.store.listFolders(fx.store.rootId))[0]!.id;
  const fh = await fx.vfs.create('/d/f', 0o644, O_WRONLY);
  await fx.vfs.write(fh, Buffer.from('unsaved'), 7, 0);
  const hidden = '/d/.fuse_hidden0000000300000001';
  await fx.vfs.rename('/d/f', hidden);
  await fx.vfs.rmdir('/d');
  t.equal(await errnoOf(fx.vfs.getattr('/d')), 'ENOENT', 'the folder is gone');
  await fx.vfs.release(fh);
  await fx.vfs.unlink(hidden);
  await fx.uploads.drain(5_000);
  await fx.removals.drain(5_000);
  t.notOk(fx.store.hasFolder(folderId), 'and gone from Girder');
  t.equal(fx.store.count('createFile'), 0, 'the unlinked file was never uploaded');
});
