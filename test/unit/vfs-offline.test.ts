// The filesystem model while the server cannot be asked: listings and attributes past their TTL are
// served as last seen, cached bytes are read, new files are accepted; what was never seen fails.
// Over the in-memory store (its failEvery hook stands for the server away); through a real mount
// and a real Girder in test/integration/offline.test.ts.
import t from 'tap';
import { toFsError } from '../../src/vfs/fs-error.js';
import { GirderError } from '../../src/girder/girder-error.js';
import { vfsFixture } from '../helpers/vfs-fixture.js';
import { sleep } from '../helpers/wait.js';

const TTL = 30;

/** The errno the kernel would see (the vfs boundary maps errors with toFsError), or 'no error'. */
async function errnoOf(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'no error', (err: unknown) => toFsError(err).errno);
}
const offline = new GirderError('Girder at girder:8080 is unreachable since 2026-01-01T00:00:00.000Z (ECONNREFUSED)', 0, 'offline');

t.test('past the TTL with the server away: listings, attributes and cached bytes as last seen', async (tt) => {
  const fx = await vfsFixture({ ttlMs: TTL });
  tt.teardown(() => fx.close());
  const { store, vfs } = fx;
  const sub = store.seedFolder(store.rootId, 'sub');
  store.seedFile(store.rootId, 'a.txt', 'alpha');
  store.seedFile(sub.id, 'b.txt', 'beta');
  store.seedFile(sub.id, 'never-read.txt', 'gamma');
  const multi = store.seedItem(store.rootId, 'multi');
  store.seedFileInItem(multi.id, 'm1', 'one');
  store.seedFileInItem(multi.id, 'm2', 'two');

  tt.same((await vfs.readdir('/')).sort(), ['a.txt', 'multi', 'sub']);
  tt.same((await vfs.readdir('/sub')).sort(), ['b.txt', 'never-read.txt']);
  tt.same((await vfs.readdir('/multi')).sort(), ['m1', 'm2']);
  tt.equal((await fx.readFile('/a.txt')).toString(), 'alpha');
  tt.equal((await fx.readFile('/sub/b.txt')).toString(), 'beta');
  tt.equal((await fx.readFile('/multi/m2')).toString(), 'two');
  const attrBefore = await vfs.getattr('/sub/b.txt');

  store.failEvery = offline;
  for (let round = 0; round < 3; round++) {
    await sleep(TTL + 10); // every listing and file document is past its TTL
    const calls = store.calls.length;
    tt.same((await vfs.readdir('/')).sort(), ['a.txt', 'multi', 'sub'], `round ${round}: the root as last seen`);
    tt.same((await vfs.readdir('/sub')).sort(), ['b.txt', 'never-read.txt'], `round ${round}: a sub-folder as last seen`);
    tt.same((await vfs.readdir('/multi')).sort(), ['m1', 'm2'], `round ${round}: an item directory as last seen`);
    tt.same(await vfs.getattr('/sub/b.txt'), attrBefore, `round ${round}: attributes as last seen`);
    tt.equal(await errnoOf(vfs.getattr('/sub/nope')), 'ENOENT', `round ${round}: a name the listing lacks is still ENOENT`);
    tt.equal((await fx.readFile('/a.txt')).toString(), 'alpha', `round ${round}: cached bytes read (open asks for the file and is refused)`);
    tt.equal((await fx.readFile('/sub/b.txt')).toString(), 'beta');
    tt.ok(store.calls.length > calls, `round ${round}: the server was asked again (listings are fetched at each lookup past the TTL)`);
  }
  tt.equal(await errnoOf(fx.readFile('/sub/never-read.txt')), 'EIO', 'bytes never cached: EIO');
  tt.equal(await errnoOf(vfs.mkdir('/newdir', 0o755)), 'EIO', 'mkdir needs the server');
  tt.equal(await errnoOf(vfs.rename('/a.txt', '/z.txt')), 'EIO', 'so does rename');
  tt.same((await vfs.readdir('/')).sort(), ['a.txt', 'multi', 'sub'], 'nothing changed by the failed changes');
  tt.equal(await errnoOf(vfs.unlink('/a.txt')), 'no error', 'an unlink is queued: Girder removes the file once it is back');
  tt.same((await vfs.readdir('/')).sort(), ['multi', 'sub'], 'gone from the mount at once');

  // a new file in a folder whose listing expired during the outage: accepted, read back
  await fx.writeFile('/sub/new.txt', 'written while away');
  tt.same((await vfs.readdir('/sub')).sort(), ['b.txt', 'never-read.txt', 'new.txt'], 'listed with the rest');
  tt.equal((await fx.readFile('/sub/new.txt')).toString(), 'written while away', 'read back from the local copy');
  tt.equal(await errnoOf(vfs.create('/sub/b.txt', 0o644, 0o1 | 0o100)), 'EEXIST', 'the last listing still says what exists');

  // back: the next lookup fetches again and sees what changed meanwhile; the new file is uploaded
  store.seedFile(sub.id, 'added-on-server.txt', 'new');
  store.failEvery = undefined;
  await sleep(TTL + 10);
  await fx.uploads.drain(10_000);
  fx.removals.retryNow();
  await fx.removals.drain(10_000);
  tt.same((await vfs.readdir('/sub')).sort(), ['added-on-server.txt', 'b.txt', 'never-read.txt', 'new.txt'], 'fetched again once the server answers');
  tt.notOk(store.itemsIn(store.rootId).some((i) => i.name === 'a.txt'), 'the file removed while away is gone from the server too');
  tt.ok(store.itemsIn(sub.id).some((i) => i.name === 'new.txt'), 'the file written while away reached the server');
});

t.test('only a server that cannot answer is worked around: a refusal of the request is still an error', async (tt) => {
  const fx = await vfsFixture({ ttlMs: TTL });
  tt.teardown(() => fx.close());
  const { store, vfs } = fx;
  store.seedFile(store.rootId, 'a.txt', 'alpha');
  tt.same(await vfs.readdir('/'), ['a.txt']);
  await sleep(TTL + 10);
  store.failNext('listFolders', new GirderError('Read access denied for folder x.', 403, 'access'));
  tt.equal(await errnoOf(vfs.readdir('/')), 'EACCES', 'a 403 is not served from the cache');
  await sleep(TTL + 10);
  store.failNext('listFolders', new GirderError('injected 503', 503, 'rest'));
  tt.same(await vfs.readdir('/'), ['a.txt'], 'a 5xx is');
  const never = store.seedFolder(store.rootId, 'never-listed');
  tt.ok(never.id);
  await sleep(TTL + 10);
  tt.same((await vfs.readdir('/')).sort(), ['a.txt', 'never-listed']);
  store.failEvery = offline;
  tt.equal(await errnoOf(vfs.readdir('/never-listed')), 'EIO', 'a listing never seen: EIO');
});
