import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { errnoOf } from '../helpers/errno.js';
import { O_APPEND, O_RDWR, O_TRUNC, O_WRONLY } from '../../src/vfs/api.js';
import { largestFileSize } from '../../src/vfs/largest-file.js';
import { LocalFile } from '../../src/vfs/local-file.js';
import { vfsFixture, type VfsFixture } from '../helpers/vfs-fixture.js';


async function settled(fx: VfsFixture): Promise<void> {
  if (!(await fx.uploads.drain(20_000))) throw new Error('uploads did not drain');
}

function onlyFile(fx: VfsFixture, folderId: string, name: string): { itemId: string; fileId: string; data: string } {
  const items = fx.store.itemsIn(folderId).filter((i) => i.name === name);
  if (items.length !== 1) throw new Error(`${items.length} items named ${name}`);
  const files = fx.store.filesIn(items[0]!.id);
  if (files.length !== 1) throw new Error(`${files.length} files in ${name}`);
  return { itemId: items[0]!.id, fileId: files[0]!.id, data: fx.store.contentOf(files[0]!.id).toString() };
}

t.test('a new file reaches Girder as an item with one file of its name', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.writeFile('/new.txt', 'fresh bytes');
  t.equal((await fx.readFile('/new.txt')).toString(), 'fresh bytes', 'reads back before the upload finishes');
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'new.txt').data, 'fresh bytes');
  t.equal((await fx.vfs.getattr('/new.txt')).size, 11);
  t.same((await fx.vfs.readdir('/')), ['new.txt']);
});

t.test('an empty new file exists on Girder too', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const fh = await fx.vfs.create('/empty', 0o644, O_WRONLY);
  await fx.vfs.flush(fh);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'empty').data, '');
});

t.test('a write or size past the largest file the cache directory holds fails alone, with EFBIG', async (t) => {
  // stress-ng's fsize stressor: ext4 takes no file over 16 TiB; its EFBIG came from the write
  // thread after the write was answered, and every later change of the file failed with it.
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const max = await largestFileSize(path.join(fx.dir, 'data'));
  const fh = await fx.vfs.create('/big', 0o644, O_RDWR);
  await fx.vfs.write(fh, Buffer.from('kept'), 4, 0);
  t.equal(await errnoOf(fx.vfs.write(fh, Buffer.from('x'), 1, max)), 'EFBIG');
  t.equal(await errnoOf(fx.vfs.truncate('/big', max + 1)), 'EFBIG');
  await fx.vfs.write(fh, Buffer.from(' too'), 4, 4);
  await fx.vfs.flush(fh);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'big').data, 'kept too', 'the file is uploaded with what was written');
});

t.test('overwrite keeps the file id; append and O_RDWR edit in place', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const { file } = fx.store.seedFile(fx.store.rootId, 'doc.txt', 'version one');

  let fh = await fx.vfs.open('/doc.txt', O_WRONLY | O_TRUNC);
  await fx.vfs.write(fh, Buffer.from('two'), 3, 0);
  await fx.vfs.release(fh);
  await settled(fx);
  let now = onlyFile(fx, fx.store.rootId, 'doc.txt');
  t.equal(now.fileId, file.id, 'same file id');
  t.equal(now.data, 'two');

  fh = await fx.vfs.open('/doc.txt', O_WRONLY | O_APPEND);
  await fx.vfs.write(fh, Buffer.from('+more'), 5, (await fx.vfs.fgetattr('/doc.txt', fh)).size);
  await fx.vfs.release(fh);
  fh = await fx.vfs.open('/doc.txt', O_RDWR);
  await fx.vfs.write(fh, Buffer.from('T'), 1, 0);
  await fx.vfs.release(fh);
  await settled(fx);
  now = onlyFile(fx, fx.store.rootId, 'doc.txt');
  t.equal(now.data, 'Two+more');
  t.equal(now.fileId, file.id);
});

t.test('identical contents upload nothing', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'same.bin', Buffer.alloc(3 << 20, 1));
  const before = fx.store.bytesUploaded;
  const fh = await fx.vfs.open('/same.bin', O_WRONLY | O_TRUNC);
  await fx.vfs.write(fh, Buffer.alloc(3 << 20, 1), 3 << 20, 0);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(fx.store.bytesUploaded, before, '0 bytes sent');
});

t.test('an identical rewrite is not even queued; one that the server changed meanwhile is uploaded (last close wins)', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const { file } = fx.store.seedFile(fx.store.rootId, 'same.bin', Buffer.alloc(1 << 20, 7));
  let queued = 0;
  const submit = fx.uploads.submit.bind(fx.uploads);
  fx.uploads.submit = (job) => {
    queued++;
    return submit(job);
  };
  const rewrite = async (): Promise<void> => {
    const fh = await fx.vfs.open('/same.bin', O_WRONLY | O_TRUNC);
    await fx.vfs.write(fh, Buffer.alloc(1 << 20, 7), 1 << 20, 0);
    await fx.vfs.fsync(fh);
    await fx.vfs.release(fh);
    await settled(fx);
  };
  await rewrite();
  t.equal(queued, 0, 'same bytes as the server: no upload job');

  const other = path.join(fx.dir, 'other-client.bin');
  await writeFile(other, 'changed elsewhere');
  await fx.store.replaceFile(file.id, { path: other, size: 17 });
  await rewrite();
  t.equal(queued, 1, 'the server changed since: the local close is uploaded');
  t.ok(fx.store.contentOf(file.id).equals(Buffer.alloc(1 << 20, 7)), 'and wins');
});

t.test('opening for writing without changes uploads nothing', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'ro.txt', 'keep');
  fx.store.calls.length = 0;
  const fh = await fx.vfs.open('/ro.txt', O_RDWR);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(fx.store.count('replaceFile') + fx.store.count('createFile'), 0);
});

t.test('truncate by path and ftruncate', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'cut.txt', '0123456789');
  await fx.vfs.truncate('/cut.txt', 4);
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'cut.txt').data, '0123');
  const fh = await fx.vfs.open('/cut.txt', O_RDWR);
  await fx.vfs.ftruncate(fh, 6);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'cut.txt').data, '0123\0\0');
});

t.test('fsync returns only when Girder has the bytes', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const fh = await fx.vfs.create('/synced', 0o644, O_WRONLY);
  await fx.vfs.write(fh, Buffer.from('durable'), 7, 0);
  await fx.vfs.fsync(fh);
  t.equal(onlyFile(fx, fx.store.rootId, 'synced').data, 'durable');
  await fx.vfs.release(fh);
});

t.test('--sync-uploads: release waits for the upload', async (t) => {
  const fx = await vfsFixture({ syncUploads: true });
  t.teardown(() => fx.close());
  await fx.writeFile('/sync.txt', 'now');
  t.equal(onlyFile(fx, fx.store.rootId, 'sync.txt').data, 'now');
});

t.test('a name taken on the server meanwhile: the path ends with the bytes written, no "name (1)"', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.vfs.readdir('/');
  const fh = await fx.vfs.create('/race.txt', 0o644, O_WRONLY);
  fx.store.seedFile(fx.store.rootId, 'race.txt', 'made elsewhere');
  fx.tree.clear(); // the listing that said the name was free is gone (SIGHUP, or past its TTL): look before creating
  await fx.vfs.write(fh, Buffer.from('mine'), 4, 0);
  await fx.vfs.release(fh);
  await settled(fx);
  t.same(fx.store.itemsIn(fx.store.rootId).map((i) => i.name), ['race.txt']);
  t.equal(onlyFile(fx, fx.store.rootId, 'race.txt').data, 'mine');
});

t.test('mkdir, rmdir and ENOTEMPTY', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.vfs.mkdir('/d', 0o755);
  t.equal(await errnoOf(fx.vfs.mkdir('/d', 0o755)), 'EEXIST');
  await fx.writeFile('/d/f', 'x');
  await settled(fx);
  t.equal(await errnoOf(fx.vfs.rmdir('/d')), 'ENOTEMPTY');
  await fx.vfs.unlink('/d/f');
  await fx.vfs.rmdir('/d');
  t.same(await fx.vfs.readdir('/'), []);
  await fx.removals.drain(5_000); // Girder's delete follows the rmdir
  t.equal(fx.store.itemsIn(fx.store.rootId).length, 0);
  t.equal((await fx.store.listFolders(fx.store.rootId)).length, 0);
});

t.test('rename within and across directories, over an existing file, and of directories', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const { store } = fx;
  const a = store.seedFolder(store.rootId, 'a');
  const b = store.seedFolder(store.rootId, 'b');
  store.seedFile(a.id, 'one.txt', '1');
  store.seedFile(b.id, 'target.txt', 'old target');

  await fx.vfs.rename('/a/one.txt', '/a/uno.txt');
  t.equal(onlyFile(fx, a.id, 'uno.txt').data, '1');
  t.equal(store.filesIn(onlyFile(fx, a.id, 'uno.txt').itemId)[0]!.name, 'uno.txt', 'file renamed with its item');

  await fx.vfs.rename('/a/uno.txt', '/b/target.txt');
  t.equal(store.itemsIn(a.id).length, 0);
  t.equal(onlyFile(fx, b.id, 'target.txt').data, '1', 'replaced the target');
  t.same((await fx.vfs.readdir('/b')), ['target.txt']);

  await fx.vfs.rename('/b', '/a/b2');
  t.same((await fx.vfs.readdir('/a')), ['b2']);
  t.equal((await fx.readFile('/a/b2/target.txt')).toString(), '1');
  t.equal((await store.getFolder(b.id)).parentId, a.id);
  t.equal(await errnoOf(fx.vfs.rename('/a', '/a/b2/inside')), 'EINVAL');
});

t.test('editor save: write a temp file, rename it over the original', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'notes.md', 'draft');
  await fx.vfs.readdir('/');
  await fx.writeFile('/.notes.md.swp', 'final text');
  await fx.vfs.rename('/.notes.md.swp', '/notes.md');
  await settled(fx);
  t.same((await fx.vfs.readdir('/')).sort(), ['notes.md']);
  t.equal((await fx.readFile('/notes.md')).toString(), 'final text');
  t.equal(onlyFile(fx, fx.store.rootId, 'notes.md').data, 'final text');
});

t.test('files inside an item directory', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const item = fx.store.seedItem(fx.store.rootId, 'bundle');
  fx.store.seedFileInItem(item.id, 'a.txt', 'A');
  fx.store.seedFileInItem(item.id, 'b.txt', 'B');
  await fx.writeFile('/bundle/c.txt', 'C');
  await settled(fx);
  t.same(fx.store.filesIn(item.id).map((f) => f.name).sort(), ['a.txt', 'b.txt', 'c.txt']);
  t.equal(await errnoOf(fx.vfs.mkdir('/bundle/sub', 0o755)), 'EPERM');
  await fx.vfs.rename('/bundle/c.txt', '/bundle/see.txt');
  t.same(fx.store.filesIn(item.id).map((f) => f.name).sort(), ['a.txt', 'b.txt', 'see.txt']);
  await fx.vfs.rename('/bundle/see.txt', '/loose.txt');
  t.equal(onlyFile(fx, fx.store.rootId, 'loose.txt').data, 'C');
  t.same(fx.store.filesIn(item.id).map((f) => f.name).sort(), ['a.txt', 'b.txt']);
});

t.test('utimens is kept in metadata and survives a listing', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'old.txt', 'x');
  const when = Date.parse('2001-02-03T04:05:06Z');
  await fx.vfs.utimens('/old.txt', when, when);
  fx.tree.clear();
  t.equal((await fx.vfs.getattr('/old.txt')).mtime, when);
  await fx.writeFile('/fresh.txt', 'y');
  await fx.vfs.utimens('/fresh.txt', when, when);
  await settled(fx);
  const item = fx.store.itemsIn(fx.store.rootId).find((i) => i.name === 'fresh.txt');
  await t.resolves(async () => {
    for (let i = 0; i < 100 && item !== undefined && (await fx.store.getItem(item.id)).meta.fuse_mtime === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  fx.tree.clear();
  t.equal((await fx.vfs.getattr('/fresh.txt')).mtime, when);
});

t.test('the execute bit is kept in metadata; the other mode bits are not', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const perm = async (path: string): Promise<number> => (await fx.vfs.getattr(path)).mode & 0o777;
  const metaOf = async (name: string): Promise<unknown> => {
    const item = fx.store.itemsIn(fx.store.rootId).find((i) => i.name === name);
    return item === undefined ? 'no item' : (await fx.store.getItem(item.id)).meta.fuse_mode;
  };
  const afterUploads = async (): Promise<void> => {
    await settled(fx);
    t.ok(await fx.vfs.quiesce(10_000), 'what follows the uploads is done');
  };

  // gcc creates its output 0777 & ~umask; a shell redirection 0666 & ~umask.
  const fh = await fx.vfs.create('/prog', 0o100755, O_WRONLY);
  t.equal(await perm('/prog'), 0o755, 'executable while written');
  await fx.vfs.write(fh, Buffer.from('\x7fELF'), 4, 0);
  await fx.vfs.release(fh);
  await fx.writeFile('/plain', 'data');
  await afterUploads();
  t.equal(await metaOf('prog'), '755');
  t.equal(await metaOf('plain'), undefined, 'a file created 0644 leaves no metadata');
  t.equal(fx.store.count('setItemMeta'), 1, 'one metadata request, for the executable only');
  fx.tree.clear();
  t.equal(await perm('/prog'), 0o755, 'read back from Girder');
  t.equal(await perm('/plain'), 0o644);

  await fx.vfs.chmod('/plain', 0o100700);
  t.equal(await metaOf('plain'), '755', 'chmod +x of a file Girder has');
  t.equal(await perm('/plain'), 0o755);
  await fx.vfs.chmod('/plain', 0o100750);
  t.equal(fx.store.count('setItemMeta'), 2, 'no request when the execute bit stays');
  await fx.vfs.chmod('/plain', 0o100600);
  t.equal(await metaOf('plain'), undefined, 'chmod -x deletes the key');
  fx.tree.clear();
  t.equal(await perm('/plain'), 0o644);

  // Rewritten in place (O_TRUNC), a file keeps its mode, as on a local disk.
  const again = await fx.vfs.open('/prog', O_WRONLY | O_TRUNC);
  await fx.vfs.write(again, Buffer.from('new'), 3, 0);
  await fx.vfs.release(again);
  const before = fx.store.count('setItemMeta');
  await afterUploads();
  t.equal(await metaOf('prog'), '755');
  t.equal(fx.store.count('setItemMeta'), before, 'nothing to store again');
  fx.tree.clear();
  t.equal(await perm('/prog'), 0o755);

  // chmod +x right after a close, while its upload is pending: stored once it is uploaded.
  await fx.writeFile('/run.sh', '#!/bin/sh\n');
  await fx.vfs.chmod('/run.sh', 0o100755);
  t.equal(await perm('/run.sh'), 0o755, 'seen at once');
  await afterUploads();
  t.equal(await metaOf('run.sh'), '755');

  // xattrs keep the key to themselves; a file of an item directory is never executable.
  t.notOk((await fx.vfs.listxattr('/run.sh')).includes('user.girder.meta.fuse_mode'));
  t.equal(await errnoOf(fx.vfs.setxattr('/run.sh', 'user.girder.meta.fuse_mode', Buffer.from('"755"'))), 'EINVAL');
  const item = fx.store.seedItem(fx.store.rootId, 'bundle');
  fx.store.seedFileInItem(item.id, 'a.bin', 'a');
  fx.store.seedFileInItem(item.id, 'b.bin', 'b');
  fx.tree.clear();
  await fx.vfs.chmod('/bundle/a.bin', 0o100755);
  t.equal(await perm('/bundle/a.bin'), 0o644);
});

t.test('refusals: EACCES without write access, names Girder cannot hold, huge offsets', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const locked = fx.store.seedFolder(fx.store.rootId, 'locked');
  fx.store.setAccess(locked.id, 0);
  t.equal(await errnoOf(fx.vfs.create('/locked/x', 0o644, O_WRONLY)), 'EACCES');
  t.equal(await errnoOf(fx.vfs.create('/ spaced', 0o644, O_WRONLY)), 'EINVAL');
  t.equal(await errnoOf(fx.vfs.create('/' + 'n'.repeat(256), 0o644, O_WRONLY)), 'ENAMETOOLONG');
  const fh = await fx.vfs.create('/huge', 0o644, O_WRONLY);
  t.equal(await errnoOf(fx.vfs.write(fh, Buffer.from('x'), 1, 2 ** 53)), 'EFBIG');
  await fx.vfs.release(fh);
});

t.test('writes after a close while the upload runs are not lost', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const gate = fx.store.gate('createFile');
  await fx.writeFile('/busy.txt', 'first');
  await gate.reached;
  const fh = await fx.vfs.open('/busy.txt', O_WRONLY | O_APPEND);
  await fx.vfs.write(fh, Buffer.from(' second'), 7, 5);
  await fx.vfs.release(fh);
  t.equal((await fx.readFile('/busy.txt')).toString(), 'first second');
  gate.release();
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'busy.txt').data, 'first second');
});

t.test('an upload that finishes while an open truncates the file leaves the copy to the open', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const gate = fx.store.gate('createFile');
  await fx.writeFile('/race.txt', 'first version');
  await gate.reached; // closed, uploading: the local copy stays until the upload ends
  // hold the open inside its truncate while the upload ends (a soak saw this: the write then went to a closed file)
  const original = LocalFile.prototype.truncate;
  let inTruncate!: () => void;
  const reached = new Promise<void>((resolve) => {
    inTruncate = resolve;
  });
  let letGo!: () => void;
  const held = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  LocalFile.prototype.truncate = async function (this: LocalFile, size: number): Promise<void> {
    inTruncate();
    await held;
    return original.call(this, size);
  };
  t.teardown(() => {
    LocalFile.prototype.truncate = original;
  });
  const opening = fx.vfs.open('/race.txt', O_WRONLY | O_TRUNC);
  await reached;
  gate.release();
  await settled(fx);
  letGo();
  const fh = await opening;
  await fx.vfs.write(fh, Buffer.from('second'), 6, 0);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(onlyFile(fx, fx.store.rootId, 'race.txt').data, 'second', 'the write after the open reached Girder');
});

t.test('truncate to a size the cache disk cannot hold: ENOSPC, nothing queued', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'small.txt', 'x');
  // Within the largest file the directory's file system takes (past it: EFBIG, tested above).
  const huge = Math.min(2 ** 52, await largestFileSize(path.join(fx.dir, 'data')));
  t.equal(await errnoOf(fx.vfs.truncate('/small.txt', huge)), 'ENOSPC');
  const fh = await fx.vfs.create('/grow', 0o644, O_WRONLY);
  t.equal(await errnoOf(fx.vfs.ftruncate(fh, huge)), 'ENOSPC');
  await fx.vfs.ftruncate(fh, 1 << 20);
  await fx.vfs.release(fh);
  await settled(fx);
  t.equal(fx.store.contentOf(fx.store.filesIn(fx.store.itemsIn(fx.store.rootId).find((i) => i.name === 'grow')!.id)[0]!.id).length, 1 << 20);
  t.equal(onlyFile(fx, fx.store.rootId, 'small.txt').data, 'x');
});

t.test('a file written front to back is hashed as it is written; any other order is hashed at upload', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const jobs: Array<{ path: string; sha512?: string }> = [];
  const submit = fx.uploads.submit.bind(fx.uploads);
  fx.uploads.submit = (job) => {
    jobs.push({ path: job.path, ...(job.sha512 !== undefined ? { sha512: job.sha512 } : {}) });
    return submit(job);
  };
  const data = Buffer.alloc(3 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const hash = createHash('sha512').update(data).digest('hex');

  let fh = await fx.vfs.create('/seq.bin', 0o644, O_WRONLY);
  for (let pos = 0; pos < data.length; pos += 128 << 10) await fx.vfs.write(fh, data.subarray(pos), Math.min(128 << 10, data.length - pos), pos);
  await fx.vfs.release(fh);

  fh = await fx.vfs.create('/backwards.bin', 0o644, O_WRONLY);
  for (let pos = data.length - (128 << 10); pos >= 0; pos -= 128 << 10) await fx.vfs.write(fh, data.subarray(pos), 128 << 10, pos);
  await fx.vfs.release(fh);
  await settled(fx);

  t.equal(jobs.find((j) => j.path === '/seq.bin')?.sha512, hash, 'hash known at close');
  t.equal(jobs.find((j) => j.path === '/backwards.bin')?.sha512, undefined, 'left to the upload queue');
  t.equal(createHash('sha512').update(fx.store.contentOf(onlyFile(fx, fx.store.rootId, 'seq.bin').fileId)).digest('hex'), hash);
  t.equal(createHash('sha512').update(fx.store.contentOf(onlyFile(fx, fx.store.rootId, 'backwards.bin').fileId)).digest('hex'), hash);
});

t.test('last close wins when the directory moves while an earlier upload of the file runs', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const a = fx.store.seedFolder(fx.store.rootId, 'a');
  fx.store.seedFile(a.id, 'P', 'original');
  const gate = fx.store.gate('replaceFile');
  let fh = await fx.vfs.open('/a/P', O_WRONLY | O_TRUNC);
  await fx.vfs.write(fh, Buffer.alloc(2 << 20, 1), 2 << 20, 0);
  await fx.vfs.release(fh);
  await gate.reached;
  await fx.vfs.rename('/a', '/b');
  fh = await fx.vfs.open('/b/P', O_WRONLY | O_TRUNC);
  await fx.vfs.write(fh, Buffer.from('newest'), 6, 0);
  await fx.vfs.release(fh);
  // Give a wrongly parallel second upload the time to finish before the first one goes on.
  await new Promise((resolve) => setTimeout(resolve, 200));
  gate.release();
  await settled(fx);
  t.equal(onlyFile(fx, a.id, 'P').data, 'newest', 'the server holds the last close');
  t.equal((await fx.readFile('/b/P')).toString(), 'newest');
});

t.test('a write answered EIO while it waited (its kernel buffer taken back) fails the file instead of writing garbage', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  const fh = await fx.vfs.create('/given-up', 0o644, O_WRONLY);
  await fx.vfs.write(fh, Buffer.from('kept '), 5, 0);
  const kernelMemory = new ArrayBuffer(9);
  const kernelBuffer = Buffer.from(kernelMemory);
  kernelBuffer.write('given up!');
  const late = fx.vfs.write(fh, kernelBuffer, 9, 5);
  structuredClone(kernelMemory, { transfer: [kernelMemory] }); // fuse-native detaches it once the watchdog answered
  t.equal(await errnoOf(late), 'EIO', 'the write fails');
  t.equal((await fx.vfs.fgetattr('/given-up', fh)).size, 5, 'the file did not grow');
  t.equal(await errnoOf(fx.vfs.flush(fh)), 'EIO', 'close reports the failure');
  t.equal(await errnoOf(fx.vfs.release(fh)), 'EIO');
  await settled(fx);
  t.same(fx.store.itemsIn(fx.store.rootId).map((i) => i.name), [], 'nothing of it is uploaded');
});

t.test('a small new file in a freshly listed folder is created in one request, nothing looked up', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.vfs.mkdir('/d', 0o755);
  const before = fx.store.calls.length;
  await fx.writeFile('/d/one.txt', 'one request');
  await settled(fx);
  t.same(fx.store.calls.slice(before), ['createFile'], 'POST /file with the bytes, and nothing else');
  t.equal(onlyFile(fx, (await fx.store.listFolders(fx.store.rootId))[0]!.id, 'one.txt').data, 'one request');
  t.equal((await fx.readFile('/d/one.txt')).toString(), 'one request', 'reads back without asking: the listing has it');
});

t.test('a temp file renamed into place before its upload starts is uploaded once, under its final name', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  await fx.vfs.mkdir('/d', 0o755);
  await fx.writeFile('/d/final.txt', 'old');
  await settled(fx);
  const before = fx.store.calls.length;
  await fx.writeFile('/d/.final.txt.tmp', 'new contents');
  await fx.vfs.rename('/d/.final.txt.tmp', '/d/final.txt');
  await settled(fx);
  const calls = fx.store.calls.slice(before);
  t.same(calls.filter((c) => c === 'createFile' || c === 'replaceFile'), ['createFile'], 'one upload');
  t.same(calls.filter((c) => c === 'updateItem' || c === 'renameFile'), [], 'no rename on the server');
  const folderId = (await fx.store.listFolders(fx.store.rootId))[0]!.id;
  t.same(fx.store.itemsIn(folderId).map((i) => i.name), ['final.txt'], 'no temp name left, the old file replaced');
  t.equal(onlyFile(fx, folderId, 'final.txt').data, 'new contents');
});

t.test('a file keeps the mtime it was written with after its upload, across listings; another version shows Girder\'s', async (t) => {
  const fx = await vfsFixture({ ttlMs: 1 });
  t.teardown(() => fx.close());
  await fx.writeFile('/kept.txt', 'written here');
  const written = (await fx.vfs.getattr('/kept.txt')).mtime;
  await new Promise((r) => setTimeout(r, 30)); // Girder's time for the upload is later
  await settled(fx);
  const { fileId } = onlyFile(fx, fx.store.rootId, 'kept.txt');
  t.not((await fx.store.getFile(fileId)).created, written, 'Girder has another time');
  await new Promise((r) => setTimeout(r, 5)); // past the TTL: listed again from Girder
  t.equal((await fx.vfs.getattr('/kept.txt')).mtime, written, 'the mtime the writer saw');
  fx.store.replaceContents(fileId, 'changed elsewhere');
  await new Promise((r) => setTimeout(r, 5));
  t.equal((await fx.vfs.getattr('/kept.txt')).mtime, (await fx.store.getFile(fileId)).created, 'new contents from elsewhere: Girder\'s time');
});

t.test('an fsync of an edited small file asks Girder for the file once (the upload\'s own look), not twice', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  fx.store.seedFile(fx.store.rootId, 'db', 'page one');
  await fx.vfs.readdir('/');
  const before = fx.store.calls.length;
  const fh = await fx.vfs.open('/db', O_RDWR);
  await fx.vfs.write(fh, Buffer.from('PAGE'), 4, 0);
  await fx.vfs.fsync(fh);
  await fx.vfs.release(fh);
  await fx.uploads.drain(5_000);
  const calls = fx.store.calls.slice(before);
  t.equal(calls.filter((c) => c === 'getFile').length, 1, `one GET /file/{id}: ${calls.join(', ')}`);
  t.equal(onlyFile(fx, fx.store.rootId, 'db').data, 'PAGE one');
});

t.test('the file lists of items the mount no longer shows are not kept (rm, mv -f over them)', async (t) => {
  const fx = await vfsFixture();
  t.teardown(() => fx.close());
  for (let i = 0; i < 30; i++) await fx.writeFile(`/f${i}.txt`, `file ${i}`);
  await settled(fx);
  const kept = fx.tree.itemFilesKept;
  t.ok(kept >= 20, `the uploaded files' lists are kept (${kept})`);
  for (let i = 0; i < 10; i++) await fx.vfs.unlink(`/f${i}.txt`);
  for (let i = 10; i < 20; i++) {
    await fx.writeFile(`/.tmp${i}`, `replaced ${i}`);
    await fx.vfs.rename(`/.tmp${i}`, `/f${i}.txt`);
  }
  await settled(fx);
  if (!(await fx.removals.drain(20_000))) throw new Error('removals did not drain');
  t.ok(fx.tree.itemFilesKept <= 20, `at most one list per file shown: removed and replaced items are forgotten (${fx.tree.itemFilesKept})`);
  t.equal((await fx.readFile('/f15.txt')).toString(), 'replaced 15');
  t.equal((await fx.readFile('/f25.txt')).toString(), 'file 25');
});
