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
  t.same(await fx.vfs.readdir('/'), ['kept.txt'], 'gone from the mount at once');
  t.equal(await errnoOf(fx.vfs.getattr('/gone.txt')), 'ENOENT');
  await sleep(TTL + 5);
  t.same(await fx.vfs.readdir('/'), ['kept.txt'], 'a listing fetched while Girder still has it leaves it out');
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
  t.equal(fx.removals.pending, 0, 'the rmdir took them all');
  t.equal(fx.store.count('deleteFolder'), 1, 'one recursive delete');
  t.notOk(fx.store.hasFolder(dir.id), 'the tree is gone from Girder');
  t.equal(fx.store.itemsIn(dir.id).length, 0, 'with its items');
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
