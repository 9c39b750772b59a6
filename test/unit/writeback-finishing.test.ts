// A file closed twice has two uploads: the first runs, the second waits behind it. While the first
// ends (Girder has its file, the local copy does not know yet), an rm or an `mv -f` over the file,
// or a rename of it, must wait for it: one that went on took the file for one never uploaded, left
// its item on Girder, and the file moved over it became `name (1)` (the soak's `f2217.bin (1)`).
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { LocalFile } from '../../src/vfs/local-file.js';
import { OpenFiles } from '../../src/vfs/open-files.js';
import type { UploadClaim } from '../../src/vfs/ports.js';
import { UploadQueue, type UploadJob } from '../../src/vfs/writeback/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

/** The bits of a tap test the fixture needs. */
interface TestLike {
  testdir: typeof t.testdir;
  teardown: typeof t.teardown;
}

/** A queue whose `whileEnding` runs when a job is done on Girder, before its caller learns of the file. */
async function endingQueue(t: TestLike, holdMs = 0) {
  const dir = t.testdir({ data: {}, journal: {} });
  const store = new MemoryStore();
  const probe: { whileEnding?: () => void } = {};
  const queue = new UploadQueue({
    store, journalDir: join(dir, 'journal'), logger: silentLogger(), holdMs, retryDelayMs: { min: 5, max: 20 },
    // the moment another operation on the file may come in
    onFinished: () => {
      const run = probe.whileEnding;
      probe.whileEnding = undefined;
      run?.();
    },
  });
  t.teardown(() => queue.close());
  await queue.start();
  let n = 0;
  const job = async (data: string): Promise<UploadJob> => {
    const tempPath = join(dir, 'data', `${++n}.upload`);
    await writeFile(tempPath, data);
    return { path: '/f.bin', key: 'k', target: { kind: 'folder', folderId: store.rootId, name: 'f.bin' }, tempPath, size: data.length, nameFree: true };
  };
  return { store, queue, probe, job };
}

t.test('a job that is ending still holds its file: claim() of a later job refuses', async (t) => {
  const { store, queue, probe, job } = await endingQueue(t);
  const gate = store.gate('createFile');
  const first = await queue.submit(await job('first'));
  await gate.reached;
  await queue.submit(await job('first and second')); // queued behind the running one
  let claim: UploadClaim | undefined;
  probe.whileEnding = () => { claim = queue.claim('k'); };
  gate.release();
  await first.done;
  claim?.release();
  t.equal(claim, undefined, 'refused: a rename would move the later job, which then replaces the first one\'s file under the old name');
  t.ok(await queue.drain(20_000), 'the later job runs');
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['f.bin'], 'one item');
});

t.test('a later job not started yet replaces the file an earlier one made: claim() refuses', async (t) => {
  const { store, queue, job } = await endingQueue(t, 60_000);
  const gate = store.gate('createFile');
  const first = await queue.submit(await job('first'));
  queue.hurry('k');
  await gate.reached;
  await queue.submit(await job('first and second')); // held: not started
  gate.release();
  await first.done;
  const claim = queue.claim('k');
  claim?.release();
  t.equal(claim, undefined, 'refused: the later job goes to the file the first one made');
  queue.hurry('k');
  t.ok(await queue.drain(20_000), 'the later job runs');
  t.same(store.itemsIn(store.rootId).map((i) => [i.name, store.filesIn(i.id).map((f) => store.contentOf(f.id).toString())]), [['f.bin', ['first and second']]], 'into that file');
});

t.test('a job that is ending still holds its file: cancel() waits for its outcome', async (t) => {
  const { store, queue, probe, job } = await endingQueue(t);
  const gate = store.gate('createFile');
  const first = await queue.submit(await job('first'));
  await gate.reached;
  let firstKnown = false;
  void first.done.then(() => { firstKnown = true; });
  let knownWhenCancelled: boolean | undefined;
  let cancelled: Promise<void> | undefined;
  probe.whileEnding = () => { cancelled = queue.cancel('k').then(() => { knownWhenCancelled = firstKnown; }); };
  gate.release();
  await first.done;
  await cancelled;
  t.equal(knownWhenCancelled, true, 'resolved only once the caller knows the file it made (an rm then removes it)');
});

t.test('uploadsSettled waits for every hand-off, not only the newest', async (t) => {
  const dir = t.testdir({});
  const openFiles = new OpenFiles(silentLogger());
  const local = await LocalFile.create(dir, '/f.bin', { kind: 'folder', folderId: 'f', name: 'f.bin' });
  openFiles.add(local);
  let endFirst!: () => void;
  openFiles.trackUpload(local, new Promise<void>((resolve) => { endFirst = resolve; }));
  openFiles.trackUpload(local, Promise.resolve()); // the newer one: dropped at once (cancelled)
  let settled = false;
  const waiting = openFiles.uploadsSettled(local).then(() => { settled = true; });
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(settled, false, 'not while the first upload is still ending');
  endFirst();
  await waiting;
  t.equal(settled, true, 'once it has ended');
  await openFiles.disposeIfIdle(local);
});
