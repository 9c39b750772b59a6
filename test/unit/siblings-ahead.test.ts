// Work ahead of a walker (src/vfs/siblings-ahead.ts): once a walker reads two siblings one after
// the other, the siblings that follow are acted on in the background, a few at a time, at most
// maxAhead ahead and only as far as the walker gets in half a TTL; nothing for an `ls`, a `cd` or a
// `cat`. First on directories listed ahead (tree.ts), then through the filesystem model over the
// in-memory store: a walk lists each folder once; a reader of a directory's files one after the
// other finds the next small files fetched ahead (files-ahead.ts), each downloaded once.
import t, { type Test } from 'tap';
import type { FolderDoc } from '../../src/girder/types.js';
import { silentLogger } from '../../src/log.js';
import { FILES_AHEAD } from '../../src/vfs/files-ahead.js';
import { dirKey, isDir, type DirNode, type FolderNode, type Node } from '../../src/vfs/nodes.js';
import { SiblingsAhead } from '../../src/vfs/siblings-ahead.js';
import { LISTINGS_AHEAD } from '../../src/vfs/tree.js';
import { vfsFixture, type VfsFixture } from '../helpers/vfs-fixture.js';
import { sleep, waitFor } from '../helpers/wait.js';

const TTL = 10_000;
const MAX_AHEAD = LISTINGS_AHEAD.maxAhead;
const AHEAD_IN_FLIGHT = LISTINGS_AHEAD.inFlight;

function folder(id: string, name: string): FolderNode {
  const doc: FolderDoc = { id, name, parentId: 'p', parentType: 'folder', created: 0, updated: 0, meta: {}, accessLevel: 2 };
  return { kind: 'folder', folder: doc };
}

/** A parent whose listing holds `names` as folders, in this (readdir) order, and a file. */
function parentOf(names: string[]): { parent: FolderNode; entries: Map<string, Node> } {
  const entries = new Map<string, Node>(names.map((n, i) => [n, folder(`id-${i}`, n)]));
  entries.set('a-file.txt', { kind: 'file', item: { id: 'i', name: 'a-file.txt', folderId: 'p', created: 0, updated: 0, size: 1, meta: {} }, file: { id: 'f', name: 'a-file.txt', itemId: 'i', size: 1, created: 0, mimeType: 'text/plain' }, inItemDir: false, access: 2 });
  return { parent: folder('p', 'parent'), entries };
}

/** Directories listed ahead as tree.ts does it, held until released, recording which ran and how many at once. */
function rig(fresh: Set<string> = new Set()) {
  const listed: string[] = [];
  const waiting: Array<() => void> = [];
  let running = 0;
  let most = 0;
  const ahead = new SiblingsAhead<DirNode>({
    what: 'listing',
    ttlMs: TTL,
    ...LISTINGS_AHEAD,
    walks: isDir,
    keyOf: dirKey,
    logger: silentLogger(),
    done: (dir) => fresh.has(dirKey(dir)),
    act: async (dir: DirNode) => {
      listed.push(dir.kind === 'folder' ? dir.folder.name : dir.item.name);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => waiting.push(resolve));
      fresh.add(dirKey(dir));
      running--;
    },
  });
  const releaseAll = async (): Promise<void> => {
    while (waiting.length > 0) {
      for (const release of waiting.splice(0)) release();
      await sleep(1);
    }
    await ahead.idle();
  };
  return { ahead, listed, releaseAll, most: () => most };
}

const names = Array.from({ length: 30 }, (_, i) => `dir-${String(i).padStart(2, '0')}`);

t.test('two siblings read one after the other: the next MAX_AHEAD are listed, AHEAD_IN_FLIGHT at a time', async (t) => {
  const { parent, entries } = parentOf(names);
  const r = rig(new Set([dirKey(entries.get('dir-00') as DirNode), dirKey(entries.get('dir-01') as DirNode)]));
  r.ahead.entered(parent, entries, 'dir-00', 1000);
  t.same(r.listed, [], 'one directory read: nothing listed ahead');
  r.ahead.entered(parent, entries, 'dir-01', 1010);
  t.equal(r.listed.length, AHEAD_IN_FLIGHT, `${AHEAD_IN_FLIGHT} listings at once`);
  await r.releaseAll();
  t.same(r.listed, names.slice(2, 2 + MAX_AHEAD), `the ${MAX_AHEAD} that follow, in order`);
  t.equal(r.most(), AHEAD_IN_FLIGHT, `never more than ${AHEAD_IN_FLIGHT} in flight`);

  r.ahead.entered(parent, entries, 'dir-02', 1020);
  await r.releaseAll();
  t.same(r.listed.slice(MAX_AHEAD), [names[2 + MAX_AHEAD]], 'the walk goes on: the window slides by one, what is fresh is not listed again');
});

t.test('the order of readdir (find, du) is followed as well as the order of names (ls -R)', async (t) => {
  const shuffled = [...names].sort((a, b) => (a.split('').reverse().join('') < b.split('').reverse().join('') ? -1 : 1));
  const { parent, entries } = parentOf(shuffled);
  const r = rig();
  r.ahead.entered(parent, entries, shuffled[3] as string, 1000);
  r.ahead.entered(parent, entries, shuffled[4] as string, 1010);
  await r.releaseAll();
  t.same(r.listed, shuffled.slice(5, 5 + MAX_AHEAD), 'readdir order');
  t.notSame(shuffled.slice(5, 5 + MAX_AHEAD), names.slice(5, 5 + MAX_AHEAD), 'which differs from name order here');
});

t.test('no walk, no listing ahead: siblings out of order, the same one twice, a slow walker', async (t) => {
  const { parent, entries } = parentOf(names);
  const r = rig();
  r.ahead.entered(parent, entries, 'dir-05', 1000);
  r.ahead.entered(parent, entries, 'dir-05', 1001);
  r.ahead.entered(parent, entries, 'dir-09', 1002);
  r.ahead.entered(parent, entries, 'dir-03', 1003);
  t.same(r.listed, [], 'a cd here and there lists nothing else');
  r.ahead.entered(parent, entries, 'dir-04', 1003 + TTL);
  t.same(r.listed, [], 'a walker taking half a TTL per directory would reach nothing listed ahead in time');
  r.ahead.entered(parent, entries, 'dir-05', 1003 + TTL + TTL / 8);
  await r.releaseAll();
  t.same(r.listed, names.slice(6, 10), 'one taking an eighth of a TTL: four ahead (it reaches them within half a TTL)');
});

t.test('clear() drops what waits', async (t) => {
  const { parent, entries } = parentOf(names);
  const r = rig();
  r.ahead.entered(parent, entries, 'dir-00', 1000);
  r.ahead.entered(parent, entries, 'dir-01', 1001);
  r.ahead.clear();
  await r.releaseAll();
  t.equal(r.listed.length, AHEAD_IN_FLIGHT, 'only those already running ran');
});

t.test('through the filesystem model: a walk lists each folder once, an ls of the parent none ahead', async (t) => {
  const fx = await vfsFixture({ ttlMs: 60_000 });
  t.teardown(() => fx.close());
  const { store, vfs } = fx;
  const count = 20;
  for (const n of names.slice(0, count)) {
    const sub = store.seedFolder(store.rootId, n);
    store.seedFile(sub.id, 'f.txt', n);
  }
  t.equal((await vfs.readdir('/')).length, count);
  t.same(await vfs.readdir('/dir-15'), ['f.txt']);
  await sleep(50);
  t.equal(store.count('listFolders'), 2, 'ls of the root and of one folder: two listings, none ahead');

  await vfs.readdir('/dir-00');
  await vfs.readdir('/dir-01');
  await waitFor(() => store.count('listFolders') === 4 + MAX_AHEAD, { timeoutMs: 5000, intervalMs: 5, what: 'the listings ahead' });
  for (const n of names.slice(2, count)) t.same(await vfs.readdir(`/${n}`), ['f.txt'], n);
  await sleep(50);
  t.equal(store.count('listFolders'), count + 1, 'the whole walk: one listing per folder');
});

t.test('files: a reader of a directory\'s files one after the other finds the next small ones fetched ahead, each once', async (t) => {
  const fx = await vfsFixture({ ttlMs: 60_000 });
  t.teardown(() => fx.close());
  const { store, vfs } = fx;
  const d = store.seedFolder(store.rootId, 'd');
  const files = Array.from({ length: 40 }, (_, i) => `f-${String(i).padStart(2, '0')}`);
  const content = (n: string): string => `${n} `.repeat(100);
  for (const n of files) {
    if (n === 'f-05') store.seedFile(d.id, n, Buffer.alloc(2 << 20, 7)); // too big to fetch whole
    else if (n === 'f-07') store.seedFile(d.id, n, '');
    else store.seedFile(d.id, n, content(n));
  }
  const small = files.filter((n) => n !== 'f-05' && n !== 'f-07');
  t.equal((await vfs.readdir('/d')).length, files.length);

  t.equal((await fx.readFile('/d/f-20')).toString(), content('f-20'));
  t.equal((await fx.readFile('/d/f-30')).toString(), content('f-30'));
  await sleep(50);
  t.equal(store.count('readRange'), 2, 'a cat here and there: nothing fetched ahead');

  t.equal((await fx.readFile('/d/f-00')).toString(), content('f-00'));
  t.equal((await fx.readFile('/d/f-01')).toString(), content('f-01'));
  // f-02 to f-17 follow; f-05 (2 MiB) and f-07 (empty) are not fetched whole
  const ahead = FILES_AHEAD.maxAhead - 2;
  await waitFor(() => store.count('readRange') === 4 + ahead, { timeoutMs: 5000, intervalMs: 5, what: 'the files fetched ahead' });
  await sleep(50);
  t.equal(store.count('readRange'), 4 + ahead, `${ahead} files fetched ahead, no more`);

  for (const n of small.slice(2)) t.equal((await fx.readFile(`/d/${n}`)).toString(), content(n), n);
  await sleep(50);
  t.equal(store.count('readRange'), small.length, 'the whole walk: each small file downloaded once');
});

/**
 * A fixture of TTL_MS whose folder /d holds f-0 to f-7 ("old N"), listed, then half a TTL later:
 * its listing turns stale half a TTL from now. Returns the fixture and each file's id.
 */
async function eightFilesListed(t: Test, ttlMs: number): Promise<{ fx: VfsFixture; ids: Map<string, string> }> {
  const fx = await vfsFixture({ ttlMs });
  t.teardown(() => fx.close());
  const d = fx.store.seedFolder(fx.store.rootId, 'd');
  const ids = new Map<string, string>();
  for (let i = 0; i < 8; i++) ids.set(`f-${i}`, fx.store.seedFile(d.id, `f-${i}`, `old ${i}`).file.id);
  t.equal((await fx.vfs.readdir('/d')).length, 8);
  await sleep(ttlMs / 2);
  return { fx, ids };
}

t.test('files: one fetched ahead counts as checked when it was fetched; past a TTL from then, its open checks it again', async (t) => {
  const TTL_MS = 600;
  const { fx, ids } = await eightFilesListed(t, TTL_MS);
  const { store } = fx;
  await fx.readFile('/d/f-0');
  await fx.readFile('/d/f-1');
  await waitFor(() => store.count('readRange') === 8, { timeoutMs: 5000, intervalMs: 5, what: 'the files fetched ahead' });
  store.replaceContents(ids.get('f-7') as string, 'new 7');
  await sleep(TTL_MS / 2 + 50); // the listing is older than the TTL now; what was fetched ahead is not
  const checks = store.count('getFile');
  t.equal((await fx.readFile('/d/f-2')).toString(), 'old 2');
  t.equal(store.count('getFile'), checks, 'a file fetched ahead less than a TTL ago: no check at its open');
  await sleep(TTL_MS / 2);
  t.equal((await fx.readFile('/d/f-7')).toString(), 'new 7', 'fetched ahead more than a TTL ago: its open checks it, and a replaced content is read anew');
  t.ok(store.count('getFile') > checks, 'with a check');
});

t.test('files: one opened while its fetch ahead is on its way counts as checked when that fetch started', async (t) => {
  const TTL_MS = 600;
  const { fx } = await eightFilesListed(t, TTL_MS);
  const { store } = fx;
  await fx.readFile('/d/f-0');
  for (let i = 0; i < 7; i++) store.delayNext('readRange', TTL_MS); // f-1's read, and f-2 to f-7 fetched ahead
  const first = fx.readFile('/d/f-1');
  await sleep(TTL_MS / 2 + 50); // the listing is older than the TTL; the fetches ahead are still on their way
  const checks = store.count('getFile');
  t.equal((await fx.readFile('/d/f-2')).toString(), 'old 2');
  t.equal(store.count('getFile'), checks, 'no check at its open');
  t.equal((await first).toString(), 'old 1');
  t.equal(store.count('readRange'), 8, 'and each file downloaded once');
});
