// The upload queue's policy when Girder refuses (in-memory Girder): uploads wait, they do not give
// up; only a target deleted on the server sends the bytes to lost+found.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { GirderError } from '../../src/girder/girder-error.js';
import type { Logger } from '../../src/log.js';
import { classifyUploadFailure } from '../../src/vfs/writeback/classify-failure.js';
import {
  NameInTheWayError, UploadCancelledError, UploadKeptError, UploadQueue, UploadQueueClosedError,
  type UploadJob, type UploadQueueOptions,
} from '../../src/vfs/writeback/index.js';
import { MemoryStore, type StoreMethod } from '../helpers/memory-store.js';

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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A cache directory (data, journal) shared by the queues made on it, as restarts share one. */
function setup(test: { testdir: typeof t.testdir; teardown: typeof t.teardown }) {
  const dir = test.testdir({ data: {}, journal: {} });
  const journalDir = join(dir, 'journal');
  const log = captureLogger();
  const queues: UploadQueue[] = [];
  let n = 0;
  const queue = (opts: Partial<UploadQueueOptions> & { store: MemoryStore }): UploadQueue => {
    const q = new UploadQueue({ journalDir, logger: log.logger, retryDelayMs: { min: 60_000, max: 60_000 }, ...opts });
    queues.push(q);
    return q;
  };
  test.teardown(async () => { for (const q of queues) await q.close(); });
  const temp = async (data: string): Promise<{ tempPath: string; size: number }> => {
    const tempPath = join(dir, 'data', `${++n}.upload`);
    await writeFile(tempPath, data);
    return { tempPath, size: Buffer.byteLength(data) };
  };
  const journalFiles = (): string[] => readdirSync(journalDir).filter((f) => f.endsWith('.json'));
  /** A started queue on a fresh in-memory Girder. */
  const started = async (opts: Partial<UploadQueueOptions> = {}): Promise<{ store: MemoryStore; q: UploadQueue }> => {
    const store = new MemoryStore();
    const q = queue({ ...opts, store });
    await q.start();
    return { store, q };
  };
  return { dir, journalDir, lostDir: join(dir, 'lost+found'), log, queue, temp, journalFiles, started };
}

const job = (folderId: string, path: string, src: { tempPath: string; size: number }): UploadJob =>
  ({ path, target: { kind: 'folder', folderId, name: path.slice(path.lastIndexOf('/') + 1) }, ...src });

const keyRefused = (): GirderError =>
  new GirderError('the API key was refused by the server (Invalid API key.)', 400, 'auth', undefined, {
    cause: new GirderError('Invalid API key.', 400, 'validation'),
  });

/** Every call an upload makes to its target (listings stay served). */
const UPLOAD_CALLS: StoreMethod[] = ['findItems', 'createItem', 'createFile', 'replaceFile', 'getFile', 'getItem', 'getFolder', 'filesBySha512', 'copyFile'];

t.test('one function sorts failures: what waits, for the server or for one job, and what checks the target', async (t) => {
  const tmp = '/cache/data/x.upload';
  const cases: Array<[string, unknown, Record<string, unknown>]> = [
    ['API key refused at re-login', keyRefused(), { action: 'wait', cause: 'auth', scope: 'server', reason: 'Girder refused the credentials (400: Invalid API key.)' }],
    ['token refused', new GirderError('You must be logged in.', 401, 'access'), { action: 'wait', cause: 'auth', scope: 'server', reason: 'Girder refused the credentials (401: You must be logged in.)' }],
    ['403 after an ACL change', new GirderError('Write access denied for folder f (user u).', 403, 'access'), { action: 'wait', cause: 'access', scope: 'job' }],
    ['5xx', new GirderError('boom', 503, 'rest'), { action: 'wait', cause: 'server', scope: 'server', reason: 'Girder failed (503: boom)' }],
    ['connection refused', new GirderError('cannot reach 127.0.0.1:9 (ECONNREFUSED)', 0, 'network'), { action: 'wait', scope: 'server', reason: 'cannot reach 127.0.0.1:9 (ECONNREFUSED)' }],
    ['timeout', new GirderError('no answer from h within 5 s (UND_ERR_HEADERS_TIMEOUT)', 0, 'timeout'), { action: 'wait', scope: 'server' }],
    ['a socket error as a plain Error', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), { action: 'wait', scope: 'server' }],
    ['assetstore full', new GirderError('Assetstore is unavailable or has insufficient free space.', 400, 'validation'), { action: 'wait', cause: 'storage', scope: 'server' }],
    ['quota at start', new GirderError('Upload would exceed file storage quota (need 3 B, only 1 B available - used 0 B out of 1 B)', 400, 'validation', 'size'), { action: 'wait', cause: 'storage', scope: 'server' }],
    ['quota at finalize', new GirderError('Upload exceeded file storage quota (need 3 B, only 1 B available - used 0 B out of 1 B)', 400, 'validation', 'size'), { action: 'wait', cause: 'storage' }],
    ['a name in the way', new NameInTheWayError('cannot create "a": an item directory of that name is in the way'), { action: 'wait', cause: 'name', scope: 'job', reason: 'cannot create "a": an item directory of that name is in the way; rename or remove it' }],
    ['an unknown 400', new GirderError('Received too many bytes.', 400, 'validation'), { action: 'wait', cause: 'other', scope: 'job' }],
    ['garbled 2xx', new GirderError('POST /file/chunk answered 200 application/json that is not JSON', 200, 'malformed'), { action: 'wait', scope: 'server' }],
    ['a missing folder (route id)', new GirderError('Invalid folder id (f).', 400, 'rest'), { action: 'check-target' }],
    ['a missing folder (loaded by the model: GET /item?folderId=)', new GirderError('No such folder: 6b14cffc7e13a6c264d1c581', 400, 'validation', 'id'), { action: 'check-target' }],
    ['a forgotten upload', new GirderError('Invalid upload id (u).', 400, 'rest'), { action: 'restart-upload' }],
    ['its own data gone', Object.assign(new Error('ENOENT'), { code: 'ENOENT', path: tmp }), { action: 'no-data' }],
    ['another file missing', Object.assign(new Error('ENOENT'), { code: 'ENOENT', path: '/elsewhere' }), { action: 'wait', scope: 'job' }],
  ];
  for (const [what, err, want] of cases) t.match(classifyUploadFailure(err, tmp), want, what);
});

t.test('credentials refused: every upload holds (one probe at a time), status says why, all go on once Girder takes them', async (t) => {
  const { temp, journalFiles, log, started } = setup(t);
  const { store, q } = await started({ retryDelayMs: { min: 40, max: 40 } });
  const refusal = store.refuse(keyRefused(), UPLOAD_CALLS);
  const dones = [];
  for (const name of ['a', 'b', 'c', 'd', 'e']) dones.push((await q.submit(job(store.rootId, `/${name}`, await temp(name)))).done);
  await waitFor(() => q.status().every((s) => s.state === 'waiting'), 'all to wait');
  t.match(q.status()[0], { state: 'waiting', reason: 'Girder refused the credentials (400: Invalid API key.)' });
  t.equal(q.waitingFor('/a'), 'Girder refused the credentials (400: Invalid API key.)');
  const hitsBefore = refusal.hits;
  await sleep(400);
  const probes = refusal.hits - hitsBefore;
  t.ok(probes <= 14, `one upload at a time probes while the server refuses (${probes} refused calls in 400 ms with 40 ms backoff; 5 uploads each retrying would make ~50)`);
  t.equal(journalFiles().length, 5, 'all stay journaled');
  t.equal(log.lines.filter((l) => l.level === 40 && /^uploads wait: Girder refused the credentials/.test(l.msg)).length, 1, 'one warning, not one per try');
  t.notOk(log.lines.some((l) => l.level >= 50), 'no error logged');

  refusal.lift();
  const results = await Promise.all(dones);
  t.same(results.map((r) => store.contentOf(r.file.id).toString()), ['a', 'b', 'c', 'd', 'e']);
  t.same(journalFiles(), []);
  t.ok(log.lines.some((l) => l.msg === 'Girder takes uploads again; the waiting ones go on'));
});

t.test('with a 60 s backoff, a new login tries the uploads waiting for credentials at once (and only those)', async (t) => {
  const { temp, started } = setup(t);
  const { store, q } = await started();
  const locked = store.seedFolder(store.rootId, 'locked');
  store.setAccess(locked.id, 0);
  const { done: denied } = await q.submit(job(locked.id, '/locked/n', await temp('n')));
  await waitFor(() => q.status()[0]?.state === 'waiting', 'the 403 to wait');
  const refusal = store.refuse(keyRefused(), UPLOAD_CALLS);
  const { done } = await q.submit(job(store.rootId, '/k', await temp('k')));
  await waitFor(() => q.status()[1]?.reason?.startsWith('Girder refused the credentials') === true, 'the upload to wait for credentials');
  t.ok((q.status()[1]?.retryInS ?? 0) > 30, 'its next try is far off');
  refusal.lift();
  store.setAccess(locked.id, 1);
  const calls = store.calls.length;
  q.retryNow('a new login to Girder', 'auth');
  t.equal(store.contentOf((await done).file.id).toString(), 'k', 'uploaded at once');
  await sleep(100);
  t.equal(q.status()[0]?.path, '/locked/n', 'the upload waiting on a 403 was not woken by the login');
  t.ok(store.calls.length > calls);
  q.retryNow('SIGHUP');
  t.equal(store.contentOf((await denied).file.id).toString(), 'n', 'SIGHUP wakes every waiting upload');
});

t.test('a 403 on one folder: that upload waits, the others go on; once access is back SIGHUP retries it at once', async (t) => {
  const { temp, journalFiles, started } = setup(t);
  const { store, q } = await started();
  const locked = store.seedFolder(store.rootId, 'locked');
  store.setAccess(locked.id, 0);
  const src = await temp('for the locked folder');
  const { done: blocked } = await q.submit(job(locked.id, '/locked/x.txt', src));
  await waitFor(() => q.status()[0]?.state === 'waiting', 'the upload to wait');
  t.match(q.status()[0], { path: '/locked/x.txt', state: 'waiting', reason: /^Girder denied access \(403: Write access denied for folder/, retryInS: 60 });
  const other = await (await q.submit(job(store.rootId, '/free.txt', await temp('free')))).done;
  t.equal(store.contentOf(other.file.id).toString(), 'free', 'another folder is not held up');
  t.equal(journalFiles().length, 1, 'the waiting one stays journaled');
  t.ok(existsSync(src.tempPath), 'with its data');
  store.setAccess(locked.id, 1);
  q.retryNow('SIGHUP');
  const r = await blocked;
  t.equal(store.contentOf(r.file.id).toString(), 'for the locked folder');
  t.same(journalFiles(), []);
});

t.test('a 5xx window and full storage pass by themselves, with backoff', async (t) => {
  const { temp, started } = setup(t);
  const { store, q } = await started({ retryDelayMs: { min: 20, max: 50 } });
  const full = store.refuse(new GirderError('Assetstore is unavailable or has insufficient free space.', 400, 'validation'), ['createFile']);
  const { done } = await q.submit(job(store.rootId, '/big.bin', await temp('bytes')));
  await waitFor(() => q.status()[0]?.state === 'waiting', 'waiting on full storage');
  t.match(q.status()[0]?.reason, /^Girder's storage is full or unavailable \(400: Assetstore is unavailable/);
  full.lift();
  const bad = store.refuse(new GirderError('Bad Gateway', 502, 'rest'), UPLOAD_CALLS);
  await waitFor(() => q.status()[0]?.reason === 'Girder failed (502: Bad Gateway)', 'waiting on the 502');
  await sleep(150);
  t.ok(bad.hits >= 2, `tried again by itself (${bad.hits} tries)`);
  bad.lift();
  t.equal(store.contentOf((await done).file.id).toString(), 'bytes');
});

t.test('an upload moving to lost+found is never listed both as kept and as an upload', async (t) => {
  const { queue, temp, started } = setup(t);
  const { store, q } = await started();
  const sub = store.seedFolder(store.rootId, 'sub');
  const hold = store.refuse(new GirderError('Service Unavailable', 503, 'rest'), UPLOAD_CALLS);
  const { done } = await q.submit(job(sub.id, '/sub/x.bin', await temp('precious')));
  await waitFor(() => q.status()[0]?.state === 'waiting', 'the upload to wait');
  await store.deleteFolder(sub.id);
  hold.lift();
  let ended = false;
  const ending = done.then(() => undefined, () => undefined).then(() => { ended = true; });
  q.retryNow('test');
  // Read as the daemon's status reads them: lost+found from disk first, then the queue.
  while (!ended) {
    const kept = (await q.kept()).length;
    const uploads = q.status().length;
    t.notOk(kept > 0 && uploads > 0, `kept ${kept}, uploads ${uploads}`);
    if (kept > 0 && uploads > 0) break;
  }
  await ending;
  t.same([(await q.kept()).length, q.status().length], [1, 0], 'then kept only');
});

t.test('a target folder deleted on the server: the bytes go to lost+found (survives a restart); nothing else does', async (t) => {
  const { queue, temp, journalFiles, lostDir, log, started } = setup(t);
  const failed: UploadKeptError[] = [];
  const { store, q } = await started({ onFailed: (_job, err) => failed.push(err) });
  const sub = store.seedFolder(store.rootId, 'sub');
  const hold = store.refuse(new GirderError('Service Unavailable', 503, 'rest'), UPLOAD_CALLS);
  const { done } = await q.submit(job(sub.id, '/sub/x.bin', await temp('precious')));
  const { done: done2 } = await q.submit({ ...job(sub.id, '/sub/x.bin', await temp('precious too')), key: 'other-file' });
  await waitFor(() => q.status().length === 2 && q.status().every((s) => s.state === 'waiting'), 'both to wait');
  await store.deleteFolder(sub.id);
  hold.lift();
  q.retryNow('test');
  const err = await done.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof UploadKeptError, String(err));
  const kept = err as UploadKeptError;
  t.equal(kept.keptAt, join(lostDir, 'sub', 'x.bin'));
  t.equal(kept.reason, 'the folder it was written to was deleted on the server');
  t.equal(readFileSync(kept.keptAt, 'utf8'), 'precious', 'the bytes, exact');
  const err2 = (await done2.then(() => undefined, (e: unknown) => e)) as UploadKeptError;
  t.equal(err2.keptAt, join(lostDir, 'sub', 'x~1.bin'), 'a taken name gets a suffix');
  t.equal(readFileSync(err2.keptAt, 'utf8'), 'precious too');
  t.equal(failed.length, 2);
  t.same(journalFiles(), []);
  t.same(q.status(), []);
  t.ok(log.lines.some((l) => l.level === 40 && l.path === '/sub/x.bin' && l.keptAt === kept.keptAt && String(l.msg).includes(kept.keptAt)),
    'a warning names where the bytes are');

  const next = queue({ store });
  await next.start();
  // both failed in the same retry, in either order: listed oldest first
  t.match((await next.kept()).sort((a, b) => (a.keptAt < b.keptAt ? -1 : 1)), [
    { path: '/sub/x.bin', keptAt: kept.keptAt, size: 8, reason: 'the folder it was written to was deleted on the server' },
    { path: '/sub/x.bin', keptAt: err2.keptAt, size: 12 },
  ], 'a new queue (a restart) still lists them, from disk');
  await rm(kept.keptAt);
  t.same((await next.kept()).map((k) => k.keptAt), [err2.keptAt], 'moving or deleting the file clears it');

  // The file of a replace and its fallback folder both gone; an item directory gone.
  const dir = store.seedFolder(store.rootId, 'dir');
  const { item, file } = store.seedFile(dir.id, 'r.txt', 'old');
  const multi = store.seedItem(dir.id, 'multi');
  const gate = store.refuse(new GirderError('Service Unavailable', 503, 'rest'), UPLOAD_CALLS);
  const r1 = (await next.submit({ path: '/dir/r.txt', target: { kind: 'file', fileId: file.id, fallback: { folderId: dir.id, name: 'r.txt' } }, ...(await temp('new r')) })).done;
  const r2 = (await next.submit({ path: '/dir/multi/m.txt', target: { kind: 'item', itemId: multi.id, name: 'm.txt' }, ...(await temp('m')) })).done;
  await waitFor(() => next.status().every((s) => s.state === 'waiting') && next.status().length === 2, 'both to wait');
  await store.deleteItem(item.id);
  await store.deleteFolder(dir.id);
  gate.lift();
  next.retryNow('test');
  t.match(await r1.then(() => undefined, (e: unknown) => e), { keptAt: join(lostDir, 'dir', 'r.txt'), reason: 'the file and the folder it was in were deleted on the server' });
  t.match(await r2.then(() => undefined, (e: unknown) => e), { keptAt: join(lostDir, 'dir', 'multi', 'm.txt'), reason: 'the item directory it was written to was deleted on the server' });
});

t.test('a deleted file whose folder still exists is created anew, not sent to lost+found', async (t) => {
  const { temp, lostDir, started } = setup(t);
  const { store, q } = await started();
  const { item, file } = store.seedFile(store.rootId, 'f.txt', 'old');
  await store.deleteItem(item.id);
  const r = await (await q.submit({ path: '/f.txt', target: { kind: 'file', fileId: file.id, fallback: { folderId: store.rootId, name: 'f.txt' } }, ...(await temp('new')) })).done;
  t.equal(store.contentOf(r.file.id).toString(), 'new');
  t.notOk(existsSync(join(lostDir, 'f.txt')));
});

t.test('moving to lost+found fails: the job stays journaled and waits; it moves once it can', async (t) => {
  const { temp, journalFiles, lostDir, started } = setup(t);
  const { store, q } = await started();
  const sub = store.seedFolder(store.rootId, 'sub');
  await store.deleteFolder(sub.id);
  await rm(lostDir, { recursive: true });
  await writeFile(lostDir, 'a file where lost+found should be');
  const src = await temp('never lost');
  const { done } = await q.submit(job(sub.id, '/sub/y.txt', src));
  await waitFor(() => q.status()[0]?.state === 'waiting', 'the job to wait');
  t.match(q.status()[0]?.reason, /^the folder it was written to was deleted on the server, and moving its bytes to .*lost\+found failed/);
  t.equal(journalFiles().length, 1, 'still journaled');
  t.equal(readFileSync(src.tempPath, 'utf8'), 'never lost');
  await rm(lostDir);
  await mkdir(lostDir, { mode: 0o700 });
  q.retryNow('test');
  const err = (await done.then(() => undefined, (e: unknown) => e)) as UploadKeptError;
  t.equal(readFileSync(err.keptAt, 'utf8'), 'never lost');
  t.same(journalFiles(), []);
});

t.test('close: one summary line, no failure; the jobs stay journaled', async (t) => {
  const { temp, journalFiles, log, dir, journalDir, started } = setup(t);
  const { store, q } = await started();
  store.refuse(new GirderError('cannot reach h (ECONNREFUSED)', 0, 'network'), UPLOAD_CALLS);
  const dones = [];
  for (const name of ['p', 'q', 'r']) dones.push((await q.submit(job(store.rootId, `/${name}`, await temp(name)))).done);
  await waitFor(() => q.status().every((s) => s.state === 'waiting'), 'all to wait');
  const before = log.lines.length;
  await q.close();
  for (const d of dones) await t.rejects(d, UploadQueueClosedError);
  const lines = log.lines.slice(before);
  t.same(lines.map((l) => l.msg), [`3 uploads pending, journaled in ${journalDir}; they resume at the next start with --cache-dir ${dir}`]);
  t.equal(lines[0]?.level, 40);
  t.notOk(log.lines.some((l) => l.level >= 50), 'nothing logged as an error');
  t.equal(journalFiles().length, 3);
});

t.test('cancel drops waiting uploads with their data; a newer close supersedes a waiting one that left nothing on the server', async (t) => {
  const { temp, journalFiles, started } = setup(t);
  const { store, q } = await started();
  const refusal = store.refuse(keyRefused(), UPLOAD_CALLS);
  const src = await temp('unwanted');
  const { done } = await q.submit({ ...job(store.rootId, '/u', src), key: 'k1' });
  await waitFor(() => q.status()[0]?.state === 'waiting', 'waiting');
  await q.cancel('k1');
  await t.rejects(done, UploadCancelledError);
  t.same(q.status(), []);
  t.same(journalFiles(), []);
  await waitFor(() => !existsSync(src.tempPath), 'its data to go');

  const first = await temp('first');
  const { done: d1 } = await q.submit({ ...job(store.rootId, '/v', first), key: 'k2' });
  await waitFor(() => q.status()[0]?.state === 'waiting', 'waiting');
  const { done: d2 } = await q.submit({ ...job(store.rootId, '/v', await temp('second')), key: 'k2' });
  t.equal(q.status().length, 1, 'the waiting job had nothing on the server: superseded');
  refusal.lift();
  q.retryNow('test');
  const [r1, r2] = await Promise.all([d1, d2]);
  t.equal(r1, r2);
  t.equal(store.contentOf(r2.file.id).toString(), 'second');
  t.equal(store.count('createFile'), 1);
});

t.test('uploads kept in journal/failed/ by an earlier version move to lost+found at start', async (t) => {
  const { queue, journalDir, lostDir } = setup(t);
  const failedDir = join(journalDir, 'failed');
  await mkdir(failedDir, { recursive: true });
  await writeFile(join(failedDir, '0000000001-abcd.data'), 'old failure');
  await writeFile(join(failedDir, '0000000001-abcd.json'), JSON.stringify({
    v: 1, id: '0000000001-abcd', seq: 1, job: { path: '/d/old.txt', tempPath: join(failedDir, '0000000001-abcd.data'), size: 11, target: {} },
    failure: { reason: 'Write access denied', at: '2026-01-01T00:00:00Z' },
  }));
  await writeFile(join(failedDir, 'garbage.json'), '{not json');
  const q = queue({ store: new MemoryStore() });
  await q.start();
  t.equal(readFileSync(join(lostDir, 'd', 'old.txt'), 'utf8'), 'old failure');
  t.same(readdirSync(failedDir), ['garbage.json'], 'only the unreadable record is left there');
  t.match(await q.kept(), [{ path: '/d/old.txt', reason: 'Write access denied' }]);
});

t.test('lost+found is private to the user', async (t) => {
  const { queue, lostDir } = setup(t);
  const q = queue({ store: new MemoryStore() });
  await q.start();
  t.equal(statSync(lostDir).mode & 0o077, 0, 'no access for group or others');
});
