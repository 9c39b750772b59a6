// The filesystem model while uploads wait (the in-memory Girder refuses): the written file keeps
// serving its new bytes, also after a restart with the same cache directory; fsync and rename say
// EIO at once; unlink drops the waiting upload.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FsError } from '../../src/errors.js';
import { GirderError } from '../../src/girder/girder-error.js';
import { O_APPEND, O_RDWR, O_WRONLY } from '../../src/vfs/api.js';
import { MemoryStore, type StoreMethod } from '../helpers/memory-store.js';
import { vfsFixture, type VfsFixture } from '../helpers/vfs-fixture.js';

const keyRefused = (): GirderError =>
  new GirderError('the API key was refused by the server (Invalid API key.)', 400, 'auth', undefined, {
    cause: new GirderError('Invalid API key.', 400, 'validation'),
  });

async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** What the uploader calls first for each kind of target; listings stay served. */
const UPLOAD_CALLS: StoreMethod[] = ['findItems', 'createItem', 'createFile', 'replaceFile', 'getFile', 'getItem', 'filesBySha512', 'copyFile'];

function serverContent(store: MemoryStore, name: string): string | undefined {
  const item = store.itemsIn(store.rootId).find((i) => i.name === name);
  const file = item === undefined ? undefined : store.filesIn(item.id)[0];
  return file === undefined ? undefined : store.contentOf(file.id).toString();
}

function journaled(fx: VfsFixture): string[] {
  return readdirSync(join(fx.dir, 'journal')).filter((f) => f.endsWith('.json'));
}

/** What `p` rejected with (undefined when it resolved). */
async function rejection(p: Promise<unknown>): Promise<FsError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (err instanceof FsError) return err;
    throw err;
  }
}

const waiting = (fx: VfsFixture): boolean => fx.uploads.status().some((u) => u.state === 'waiting');

t.test('after a restart, a journaled upload shows at its path with its new bytes until Girder has it, and takes new writes', async (t) => {
  const store = new MemoryStore();
  store.seedFile(store.rootId, 'old.txt', 'the server\'s old content');
  const first = await vfsFixture({ store });
  const refusal = store.refuse(keyRefused(), UPLOAD_CALLS);
  await first.writeFile('/new.txt', 'written before the restart');
  const fh = await first.vfs.open('/old.txt', O_WRONLY | 0o1000);
  await first.vfs.write(fh, Buffer.from('replaced before the restart'), 27, 0);
  await first.vfs.release(fh);
  await waitFor(() => waiting(first), 'the uploads to wait');
  const mtime = (await first.vfs.getattr('/new.txt')).mtime;
  await first.close({ keep: true });
  t.equal(journaled(first).length, 2, 'both stay journaled');

  const fx = await vfsFixture({ store, dir: first.dir, retryDelayMs: { min: 60_000, max: 60_000 } });
  t.teardown(() => fx.close());
  t.same(fx.uploads.status().map((u) => [u.path, u.resumed]), [['/new.txt', true], ['/old.txt', true]]);
  t.same((await fx.vfs.readdir('/')).sort(), ['new.txt', 'old.txt'], 'readdir lists the new file');
  const attr = await fx.vfs.getattr('/new.txt');
  t.equal(attr.size, 'written before the restart'.length, 'getattr: the journaled size');
  t.ok(Math.abs(attr.mtime - mtime) <= 1, `getattr: the mtime of the last write (${attr.mtime} vs ${mtime})`);
  t.equal((await fx.readFile('/new.txt')).toString(), 'written before the restart', 'reads serve the journaled bytes');
  t.equal((await fx.vfs.getattr('/old.txt')).size, 'replaced before the restart'.length);
  t.equal((await fx.readFile('/old.txt')).toString(), 'replaced before the restart', 'not the server\'s old content');
  t.equal(serverContent(store, 'new.txt'), undefined, 'Girder has nothing yet');

  const ah = await fx.vfs.open('/new.txt', O_WRONLY | O_APPEND);
  await fx.vfs.write(ah, Buffer.from(', and after'), 11, attr.size);
  await fx.vfs.release(ah);
  t.equal((await fx.readFile('/new.txt')).toString(), 'written before the restart, and after', 'a resumed path takes new writes');

  refusal.lift();
  fx.uploads.retryNow('test');
  t.ok(await fx.uploads.drain(20_000), 'everything uploads once Girder takes the key');
  t.equal(serverContent(store, 'new.txt'), 'written before the restart, and after', 'the last close wins');
  t.equal(serverContent(store, 'old.txt'), 'replaced before the restart');
  t.equal((await fx.readFile('/new.txt')).toString(), 'written before the restart, and after', 'served from Girder now');
  t.same(journaled(fx), []);
  t.same(readdirSync(join(fx.dir, 'data')), [], 'no temp file left');
});

t.test('fsync of a file whose upload waits fails with EIO at once; the upload stays and succeeds later', async (t) => {
  const store = new MemoryStore();
  const fx = await vfsFixture({ store, retryDelayMs: { min: 60_000, max: 60_000 } });
  t.teardown(() => fx.close());
  const refusal = store.refuse(new GirderError('Service Unavailable', 503, 'rest'), UPLOAD_CALLS);
  const fh = await fx.vfs.create('/f.txt', 0o644, O_RDWR);
  await fx.vfs.write(fh, Buffer.from('synced?'), 7, 0);
  const started = Date.now();
  const err = await rejection(fx.vfs.fsync(fh));
  t.equal(err?.errno, 'EIO', 'fsync says the bytes are not on the server');
  t.ok(Date.now() - started < 5000, 'and says it at once');
  t.match(err?.message, /its upload waits \(Girder failed \(503: Service Unavailable\)\)/);
  await fx.vfs.release(fh);
  t.equal((await fx.readFile('/f.txt')).toString(), 'synced?');
  refusal.lift();
  fx.uploads.retryNow('test');
  t.ok(await fx.uploads.drain(20_000));
  t.equal(serverContent(store, 'f.txt'), 'synced?');
});

t.test('unlink of a file whose upload waits drops the upload; rename says EIO at once', async (t) => {
  const store = new MemoryStore();
  const fx = await vfsFixture({ store, retryDelayMs: { min: 60_000, max: 60_000 } });
  t.teardown(() => fx.close());
  const folder = store.seedFolder(store.rootId, 'locked');
  await fx.vfs.readdir('/'); // the mount knows the folder as writable...
  store.setAccess(folder.id, 0); // ...when its access drops to READ: uploads there get 403 and wait
  await fx.writeFile('/locked/gone.txt', 'never wanted');
  await fx.writeFile('/locked/stays.txt', 'kept');
  await waitFor(() => fx.uploads.status().filter((u) => u.state === 'waiting').length === 2, 'both to wait');
  t.match(fx.uploads.status()[0], { reason: /^Girder denied access \(403: Write access denied for folder/ });

  const started = Date.now();
  const renamed = await rejection(fx.vfs.rename('/locked/stays.txt', '/locked/moved.txt'));
  t.equal(renamed?.errno, 'EIO', 'rename of a waiting upload is refused');
  t.ok(Date.now() - started < 5000, 'at once');

  await fx.vfs.unlink('/locked/gone.txt');
  t.ok(Date.now() - started < 5000, 'unlink does not wait for the upload');
  t.same(fx.uploads.status().map((u) => u.path), ['/locked/stays.txt'], 'its upload is dropped');
  t.same((await fx.vfs.readdir('/locked')).sort(), ['stays.txt']);
  t.equal(journaled(fx).length, 1);

  store.setAccess(folder.id, 1);
  fx.uploads.retryNow('test');
  t.ok(await fx.uploads.drain(20_000));
  t.same(store.itemsIn(folder.id).map((i) => i.name), ['stays.txt'], 'only the file not removed reached Girder');
});
