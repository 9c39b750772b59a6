// Write beside, then `mv -f` over the file (what the soak's writer, rsync and editors do), again
// and again while the earlier uploads of the path are held, running or done: Girder ends with one
// item of the name holding the last bytes, never a `name (1)`, and the mount reads them.
import t from 'tap';
import { vfsFixture, type VfsFixture } from '../helpers/vfs-fixture.js';
import { sleep } from '../helpers/wait.js';

async function settled(fx: VfsFixture): Promise<void> {
  if (!(await fx.uploads.drain(20_000))) throw new Error('uploads did not drain');
  if (!(await fx.removals.drain(20_000))) throw new Error('removals did not drain');
}

function onServer(fx: VfsFixture): Array<[string, string[]]> {
  return fx.store.itemsIn(fx.store.rootId).map((i) => [i.name, fx.store.filesIn(i.id).map((f) => fx.store.contentOf(f.id).toString())]);
}

async function writeThenMove(fx: VfsFixture, temp: string, data: string): Promise<void> {
  await fx.writeFile(temp, data);
  await fx.vfs.rename(temp, '/f.bin');
}

for (const seeded of [false, true]) {
  const start = seeded ? 'over a file already on Girder' : 'of a new name';
  t.test(`${start}: a second mv -f while the first upload is held`, async (t) => {
    const fx = await vfsFixture();
    t.teardown(() => fx.close());
    if (seeded) fx.store.seedFile(fx.store.rootId, 'f.bin', 'on the server');
    await writeThenMove(fx, '/.f.1', 'first');
    await writeThenMove(fx, '/.f.2', 'second');
    t.equal((await fx.readFile('/f.bin')).toString(), 'second', 'the mount reads the last bytes');
    await settled(fx);
    t.same(onServer(fx), [['f.bin', ['second']]], 'one item, the last bytes');
  });

  t.test(`${start}: a second mv -f while the first upload runs`, async (t) => {
    const fx = await vfsFixture();
    t.teardown(() => fx.close());
    if (seeded) fx.store.seedFile(fx.store.rootId, 'f.bin', 'on the server');
    const gate = fx.store.gate('createFile'); // the temp file replaces the item: a new one is made
    await writeThenMove(fx, '/.f.1', 'first');
    fx.uploads.hurry('/f.bin');
    await gate.reached;
    const second = writeThenMove(fx, '/.f.2', 'second');
    await sleep(50);
    gate.release();
    await second;
    t.equal((await fx.readFile('/f.bin')).toString(), 'second', 'the mount reads the last bytes');
    await settled(fx);
    t.same(onServer(fx), [['f.bin', ['second']]], 'one item, the last bytes');
    t.equal((await fx.readFile('/f.bin')).toString(), 'second', 'and reads them after the uploads');
  });

  t.test(`${start}: twenty mv -f at random moments against slow uploads`, async (t) => {
    const fx = await vfsFixture();
    t.teardown(() => fx.close());
    if (seeded) fx.store.seedFile(fx.store.rootId, 'f.bin', 'on the server');
    let seed = seeded ? 7 : 11;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    let last = '';
    for (let i = 0; i < 20; i++) {
      for (const m of ['createFile', 'replaceFile', 'deleteItem', 'updateItem'] as const) fx.store.delayNext(m, random(300));
      last = `version ${i}`;
      await writeThenMove(fx, `/.f.${i}`, last);
      await sleep(random(800));
      t.equal((await fx.readFile('/f.bin')).toString(), last, `after mv ${i}: the mount reads it`);
    }
    await settled(fx);
    t.same(onServer(fx), [['f.bin', [last]]], 'one item, the last bytes');
  });
}
