import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { GirderError } from '../../src/girder/girder-error.js';
import type { GirderStore } from '../../src/girder/store.js';
import type { Logger } from '../../src/log.js';
import {
  UploadQueue, UploadQueueClosedError, type UploadJob, type UploadQueueOptions, type UploadResult,
} from '../../src/vfs/writeback/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

type LogLine = { level: number; msg: string } & Record<string, unknown>;

function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as LogLine); } });
  return { logger, lines };
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A Girder that never answers: a queue on it is as good as a killed daemon. */
function deadStore(): GirderStore {
  return new Proxy({} as GirderStore, { get: () => () => new Promise(() => undefined) });
}

/** A temp dir with a data dir and a journal; queues made on it share the journal (like restarts). */
function setup(test: { testdir: typeof t.testdir; teardown: typeof t.teardown }) {
  const dir = test.testdir({ data: {}, journal: {} });
  const journalDir = join(dir, 'journal');
  let n = 0;
  const queues: UploadQueue[] = [];
  const log = captureLogger();
  const queue = (opts: Partial<UploadQueueOptions> & { store: GirderStore }, closeAtEnd = true): UploadQueue => {
    // holdMs 0: these tests follow jobs from the moment they are submitted
    const q = new UploadQueue({ journalDir, logger: log.logger, retryDelayMs: { min: 5, max: 20 }, holdMs: 0, ...opts });
    if (closeAtEnd) queues.push(q);
    return q;
  };
  test.teardown(async () => { for (const q of queues) await q.close(); });
  const temp = async (data: Buffer | string): Promise<{ tempPath: string; size: number }> => {
    const tempPath = join(dir, 'data', `${++n}.upload`);
    await writeFile(tempPath, data);
    return { tempPath, size: Buffer.byteLength(data) };
  };
  const journalFiles = (): string[] => readdirSync(journalDir).filter((f) => f.endsWith('.json'));
  const failedFiles = (): string[] => readdirSync(join(journalDir, 'failed')).sort();
  return { dir, journalDir, queue, log, temp, journalFiles, failedFiles };
}

const folderJob = (store: MemoryStore, name: string, src: { tempPath: string; size: number }): UploadJob =>
  ({ path: `/${name}`, target: { kind: 'folder', folderId: store.rootId, name }, ...src });

t.test('submit before start is refused', async (t) => {
  const { queue, temp } = setup(t);
  const store = new MemoryStore();
  const q = queue({ store });
  await t.rejects(q.submit(folderJob(store, 'a', await temp('a'))), { message: /start\(\) must run before submit/ });
});

t.test('transient failures are retried (status says so) until the upload succeeds', async (t) => {
  const { queue, temp } = setup(t);
  const store = new MemoryStore();
  const q = queue({ store, retryDelayMs: { min: 150, max: 150 } });
  await q.start();
  store.failNext('createFile', new GirderError('Service Unavailable', 503, 'rest'), 3);
  store.failNext('findItems', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  const { done } = await q.submit(folderJob(store, 't.txt', await temp('persist')));
  await waitFor(() => q.status()[0]?.state === 'waiting', 'state waiting');
  t.match(q.status()[0], { path: '/t.txt', state: 'waiting', reason: /cannot reach Girder \(ECONNRESET\)|Girder failed \(503: Service Unavailable\)/ });
  const r = await done;
  t.equal(r.how, 'uploaded');
  t.equal(store.contentOf(r.file.id).toString(), 'persist');
  t.equal(store.count('createFile'), 4, 'three failures, then success');
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['t.txt'], 'the item made on the first try is reused');
  t.equal(store.count('createItem'), 1);
});

t.test('an upload cut off mid-way resumes with its upload id; a forgotten upload id starts afresh', async (t) => {
  const { queue, temp } = setup(t);
  const store = new MemoryStore({ chunkSize: 1000 });
  const q = queue({ store });
  await q.start();
  store.interruptNextUpload(2000, new GirderError('connection reset', 0, 'network'));
  const data = Buffer.alloc(5000, 7);
  const r = await (await q.submit(folderJob(store, 'big', await temp(data)))).done;
  t.ok(store.contentOf(r.file.id).equals(data));
  t.equal(store.bytesUploaded, 5000, 'no byte sent twice');
  t.equal(store.count('createFile'), 2);

  store.failNext('replaceFile', new GirderError('Invalid upload id (aaaaaaaaaaaaaaaaaaaaaaaa).', 400, 'rest'));
  const r2 = await (await q.submit({ path: '/big', target: { kind: 'file', fileId: r.file.id }, ...(await temp('smaller')) })).done;
  t.equal(r2.file.id, r.file.id);
  t.equal(store.contentOf(r.file.id).toString(), 'smaller');
});

t.test('a job journaled by a daemon that died is finished by the next start', async (t) => {
  const { queue, temp, journalFiles } = setup(t);
  const store = new MemoryStore();
  const dead = queue({ store: deadStore() }, false);
  await dead.start();
  const src = await temp('survives kill -9');
  await dead.submit(folderJob(store, 'k.txt', src));
  t.equal(journalFiles().length, 1);
  // `dead` is dropped without close(), as a killed process would be

  const finished: UploadResult[] = [];
  const q = queue({ store, onFinished: (_job, r) => finished.push(r) });
  const resumed = await q.start();
  t.same(resumed.map((j) => j.path), ['/k.txt']);
  t.equal(q.pendingFor('/k.txt')?.tempPath, src.tempPath);
  t.equal(await q.drain(20_000), true);
  t.equal(finished.length, 1);
  t.equal(store.contentOf(finished[0]?.file.id as string).toString(), 'survives kill -9');
  t.same(journalFiles(), []);
  t.notOk(existsSync(src.tempPath));
});

t.test('after a crash mid-upload, the restart continues the same Girder upload', async (t) => {
  const { queue, temp, journalFiles, journalDir } = setup(t);
  const store = new MemoryStore({ chunkSize: 1000 });
  const dying = queue({ store }, false);
  await dying.start();
  const pause = store.pauseNextUpload(2000);
  const data = Buffer.alloc(5000, 3);
  await dying.submit(folderJob(store, 'half', await temp(data)));
  await pause.reached; // 2000 bytes in Girder, then the daemon "dies" (never released)
  const rec = JSON.parse(readFileSync(join(journalDir, journalFiles()[0] as string), 'utf8')) as { resume: { uploadId?: string; itemId?: string } };
  t.ok(rec.resume.uploadId, 'the upload id is journaled');
  t.ok(rec.resume.itemId, 'so is the item made for it');

  const q = queue({ store });
  t.equal((await q.start()).length, 1);
  t.equal(await q.drain(20_000), true);
  const items = store.itemsIn(store.rootId);
  t.same(items.map((i) => i.name), ['half']);
  t.equal(items[0]?.id, rec.resume.itemId);
  const files = store.filesIn(items[0]?.id as string);
  t.equal(files.length, 1);
  t.ok(store.contentOf(files[0]?.id as string).equals(data));
  t.equal(store.bytesUploaded, 5000, 'the restart sent only the missing 3000 bytes');
  t.equal(store.count('createItem'), 1);
});

t.test('at start, only the newest job of a path runs; unreadable records go to journal/failed/', async (t) => {
  const { queue, temp, journalFiles, journalDir, failedFiles } = setup(t);
  const store = new MemoryStore();
  const dead = queue({ store: deadStore(), concurrency: 1 }, false);
  await dead.start();
  const j1 = folderJob(store, 'n', await temp('first'));
  const j2 = folderJob(store, 'n', await temp('second'));
  const j3 = folderJob(store, 'n', await temp('third'));
  await dead.submit(j1); // runs (and hangs)
  await dead.submit(j2); // queued
  await dead.submit(j3); // supersedes j2
  await waitFor(() => !existsSync(j2.tempPath), 'j2 dropped');
  t.equal(journalFiles().length, 2);
  await writeFile(join(journalDir, 'garbage.json'), '{not json');

  const q = queue({ store });
  const resumed = await q.start();
  t.same(resumed.map((j) => j.tempPath), [j3.tempPath]);
  t.notOk(existsSync(j1.tempPath), 'the older job of the path is dropped with its data');
  t.same(failedFiles(), ['garbage.json']);
  t.equal(await q.drain(20_000), true);
  const items = store.itemsIn(store.rootId);
  t.equal(items.length, 1);
  t.equal(store.contentOf(store.filesIn(items[0]?.id as string)[0]?.id as string).toString(), 'third');
});

t.test('at start, an older job of a path that left state on Girder keeps its turn; the newest then replaces its file', async (t) => {
  const { queue, temp, journalFiles } = setup(t);
  const store = new MemoryStore({ chunkSize: 1000 });
  const dying = queue({ store, concurrency: 1 }, false);
  await dying.start();
  const pause = store.pauseNextUpload(2000);
  const j1 = folderJob(store, 'n', await temp(Buffer.alloc(5000, 1)));
  const j2 = folderJob(store, 'n', await temp('second'));
  await dying.submit(j1);
  await pause.reached; // its item is made and 2000 bytes are in; then the daemon "dies"
  await dying.submit(j2);
  t.equal(journalFiles().length, 2);

  const q = queue({ store });
  const resumed = await q.start();
  t.same(resumed.map((j) => j.tempPath), [j1.tempPath, j2.tempPath], 'both run, the older first');
  t.equal(await q.drain(20_000), true, 'neither waits for ever behind the other');
  const items = store.itemsIn(store.rootId);
  t.same(items.map((i) => i.name), ['n'], 'one item, no "n (1)"');
  const files = store.filesIn(items[0]?.id as string);
  t.equal(files.length, 1);
  t.equal(store.contentOf(files[0]?.id as string).toString(), 'second', 'the last close wins');
  t.same(journalFiles(), []);
});

t.test('close interrupts: pending jobs reject as closed and stay journaled for the next start', async (t) => {
  const { queue, temp, journalFiles } = setup(t);
  const store = new MemoryStore();
  const q = queue({ store, concurrency: 1, retryDelayMs: { min: 60_000, max: 60_000 } });
  await q.start();
  store.failNext('findItems', new GirderError('Bad Gateway', 502, 'rest'));
  const a = folderJob(store, 'a', await temp('A'));
  const b = folderJob(store, 'b', await temp('B'));
  const { done: da } = await q.submit(a);
  const { done: db } = await q.submit(b);
  await waitFor(() => q.status()[0]?.state === 'waiting', 'a waiting');
  t.same(q.status().map((s) => s.state), ['waiting', 'waiting'], 'a 502 holds every upload');
  const drained = q.drain(60_000);
  await q.close();
  t.equal(await drained, false, 'a drain waiting at close says "not empty"');
  await t.rejects(da, UploadQueueClosedError);
  await t.rejects(db, UploadQueueClosedError);
  await t.rejects(q.submit(folderJob(store, 'c', await temp('C'))), UploadQueueClosedError);
  t.equal(journalFiles().length, 2);
  t.ok(existsSync(a.tempPath) && existsSync(b.tempPath), 'temp files kept');

  const next = queue({ store });
  t.equal((await next.start()).length, 2);
  t.equal(await next.drain(20_000), true);
  t.same(store.itemsIn(store.rootId).map((i) => i.name), ['a', 'b']);
});
