import t from 'tap';
import { errnoOf } from '../helpers/errno.js';
import { O_RDONLY, S_IFLNK } from '../../src/vfs/api.js';
import { MemoryStore } from '../helpers/memory-store.js';
import { vfsFixture } from '../helpers/vfs-fixture.js';

const S_IFMT = 0o170000;

t.test('a symbolic link is an item holding its target, made with one request and listed with none', async (t) => {
  const fx = await vfsFixture({ ttlMs: 100 });
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'data.csv', 'a,b\n');
  await fx.vfs.readdir('/');
  const before = fx.store.calls.length;
  await fx.vfs.symlink('data.csv', '/latest');
  t.same(fx.store.calls.slice(before), ['createItem'], 'one POST /item, its metadata included');
  const attr = await fx.vfs.getattr('/latest');
  t.equal(attr.mode & S_IFMT, S_IFLNK);
  t.equal(attr.mode & 0o777, 0o777);
  t.equal(attr.size, Buffer.byteLength('data.csv'));
  t.equal(await fx.vfs.readlink('/latest'), 'data.csv');

  const item = fx.store.itemsIn(fx.store.rootId).find((i) => i.name === 'latest');
  t.same(item?.meta, { fuse_symlink: 'data.csv' }, 'the target is in the item\'s metadata');
  t.same(fx.store.filesIn(item?.id ?? ''), [], 'and the item has no file');

  // Listed from Girder, cold, then again after the TTL: no GET /item/{id}/files for a link.
  fx.tree.clear();
  let asked = fx.store.count('listFiles');
  t.same((await fx.vfs.readdir('/')).sort(), ['data.csv', 'latest']);
  t.equal(await fx.vfs.readlink('/latest'), 'data.csv');
  t.equal(fx.store.count('listFiles') - asked, 1, 'cold: the files of data.csv only');
  await new Promise((r) => setTimeout(r, 150));
  asked = fx.store.count('listFiles');
  await fx.vfs.readdir('/');
  t.equal(fx.store.count('listFiles') - asked, 0, 'after the TTL: nothing per item (data.csv is unchanged, a link has no files)');
  t.notOk((await fx.vfs.listxattr('/latest')).includes('user.girder.meta.fuse_symlink'), 'the key is the mount\'s own');
});

t.test('links are renamed, moved, replaced and removed as entries; never opened', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'a.txt', 'A');
  const sub = fx.store.seedFolder(fx.store.rootId, 'sub');
  await fx.vfs.symlink('../a.txt', '/link');
  await fx.vfs.rename('/link', '/sub/up');
  t.equal(await fx.vfs.readlink('/sub/up'), '../a.txt');
  t.same(fx.store.itemsIn(sub.id).map((i) => i.name), ['up'], 'the item moved');
  t.equal(await errnoOf(fx.vfs.getattr('/link')), 'ENOENT');

  // rename over a link replaces it, as over a file
  await fx.writeFile('/sub/new', 'N');
  await fx.vfs.rename('/sub/new', '/sub/up');
  t.equal((await fx.vfs.getattr('/sub/up')).mode & S_IFMT, 0o100000);
  await fx.vfs.symlink('x', '/sub/l2');
  t.equal(await errnoOf(fx.vfs.rmdir('/sub')), 'ENOTEMPTY');
  await fx.vfs.unlink('/sub/l2');
  t.equal(await errnoOf(fx.vfs.readlink('/sub/l2')), 'ENOENT');
  t.ok(await fx.removals.drain(10_000), 'its removal reached Girder');
  fx.tree.clear();
  t.equal(await errnoOf(fx.vfs.readlink('/sub/l2')), 'ENOENT', 'gone from Girder too');

  await fx.vfs.symlink('a.txt', '/l3');
  t.equal(await errnoOf(fx.vfs.open('/l3', O_RDONLY)), 'ELOOP', 'only O_NOFOLLOW opens reach a link');
  t.equal(await errnoOf(fx.vfs.truncate('/l3', 0)), 'ELOOP');
  t.equal(await errnoOf(fx.vfs.readlink('/a.txt')), 'EINVAL', 'readlink of a file');
  await fx.vfs.chmod('/l3', 0o755);
  await fx.vfs.utimens('/l3', 1, 1);
  t.equal(await fx.vfs.readlink('/l3'), 'a.txt', 'chmod and utimens of a link change nothing');
});

t.test('symlink refusals', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'taken', 'x');
  const item = fx.store.seedItem(fx.store.rootId, 'bundle');
  fx.store.seedFileInItem(item.id, 'a.bin', 'a');
  fx.store.seedFileInItem(item.id, 'b.bin', 'b');
  const locked = fx.store.seedFolder(fx.store.rootId, 'locked');
  fx.store.setAccess(locked.id, 0);
  t.equal(await errnoOf(fx.vfs.symlink('x', '/taken')), 'EEXIST');
  t.equal(await errnoOf(fx.vfs.symlink('x', '/bundle/l')), 'EPERM', 'an item directory holds files only');
  t.equal(await errnoOf(fx.vfs.symlink('x', '/locked/l')), 'EACCES');
  t.equal(await errnoOf(fx.vfs.symlink('t'.repeat(4096), '/long')), 'ENAMETOOLONG');
  t.equal(await errnoOf(fx.vfs.symlink('bad-\uFFFD-byte', '/bad')), 'EINVAL', 'a target that is not UTF-8');
  t.equal(await errnoOf(fx.vfs.symlink('x', '/' + 'n'.repeat(256))), 'ENAMETOOLONG');

  // Girder has the name while the cached listing does not show it yet: no `name (1)` is left.
  await fx.vfs.readdir('/');
  await fx.store.createItem(fx.store.rootId, 'late');
  t.equal(await errnoOf(fx.vfs.symlink('x', '/late')), 'EEXIST');
  t.same(fx.store.itemsIn(fx.store.rootId).map((i) => i.name).filter((n) => n.startsWith('late')), ['late']);

  // An item a file was added to (elsewhere) is no longer a link.
  await fx.vfs.symlink('x', '/was-link');
  const link = fx.store.itemsIn(fx.store.rootId).find((i) => i.name === 'was-link');
  fx.store.seedFileInItem(link?.id ?? '', 'was-link', 'bytes');
  fx.tree.clear();
  t.equal((await fx.vfs.getattr('/was-link')).mode & S_IFMT, 0o100000);
});

t.test('a read-only mount refuses symlink', async (t) => {
  const fx = await vfsFixture({ readOnly: true });
  t.teardown(() => fx.close());
  t.equal(await errnoOf(fx.vfs.symlink('x', '/l')), 'EROFS');
});

t.test('with the listing plugin, a link is listed from its page alone', async (t) => {
  const store = new MemoryStore({ listingPlugin: true });
  const fx = await vfsFixture({ store });
  t.teardown(() => fx.close());
  await store.createItem(store.rootId, 'made-elsewhere', { fuse_symlink: '../somewhere' });
  fx.store.seedFile(store.rootId, 'plain.txt', 'p');
  t.equal(await fx.vfs.readlink('/made-elsewhere'), '../somewhere');
  t.equal((await fx.vfs.getattr('/plain.txt')).mode & S_IFMT, 0o100000);
  t.equal(store.count('folderContents'), 1);
  t.equal(store.count('listFiles'), 0, 'no request per item');
});
