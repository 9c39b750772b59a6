// The Girder layer under faults: the fault proxy (test/helpers/fault-proxy.ts) between the client and a real Girder answers 5xx,
// cuts bodies, resets uploads, redirects downloads, or hangs, on chosen requests.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GirderError, isTransient } from '../../src/girder/girder-error.js';
import { GirderClient, type ClientOptions } from '../../src/girder/client.js';
import { RestStore } from '../../src/girder/rest-store.js';
import type { FileRef } from '../../src/girder/store.js';
import { silentLogger } from '../../src/log.js';
import { startFaultProxy, type FaultAction } from '../helpers/fault-proxy.js';
import { startGirder } from '../helpers/girder-server.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

const girder = await startGirder();
t.teardown(() => girder.stop());
const info = girder.info;
const upstream = new URL(info.apiUrl);
const work = await mkdtemp(path.join(os.tmpdir(), 'girder-faults-test-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

const proxy = await startFaultProxy({
  upstream: info.apiUrl,
  // "/fake-s3/<rest>" stands for another server: forward it to Girder's API without credentials.
  rewritePath: (url) => (url.startsWith('/fake-s3/') ? upstream.pathname + url.slice('/fake-s3'.length) : url),
});
t.teardown(() => proxy.close());
const proxyOrigin = proxy.origin;
const seen = proxy.seen;

function onNext(method: string, pattern: RegExp, action: FaultAction, times = 1): void {
  proxy.on(method, pattern, action, times);
}

const clients: GirderClient[] = [];
t.teardown(async () => {
  for (const c of clients) await c.close();
});
function client(extra: Partial<ClientOptions> = {}): GirderClient {
  const c = new GirderClient({
    apiUrl: `${proxyOrigin}${upstream.pathname}`,
    credentials: { kind: 'apiKey', key: info.admin.apiKey },
    timeoutMs: 60_000,
    retries: 3,
    retryBaseMs: 10,
    logger: silentLogger(),
    ...extra,
  });
  clients.push(c);
  return c;
}

const c = client();
const store = new RestStore(c, silentLogger(), { chunkSize: 5 * MiB });
const folder = await store.createFolder(info.folders.adminPublic, 'faults');
const item = await store.createItem(folder.id, 'data');

async function localFile(name: string, size: number): Promise<{ path: string; size: number; sha512: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const file = path.join(work, name);
  await writeFile(file, bytes);
  return { path: file, size, sha512: createHash('sha512').update(bytes).digest('hex'), bytes };
}

const source = await localFile('src', 3 * MiB + 17);
const uploaded = await store.createFile({ itemId: item.id }, 'src.bin', source);
const ref = { id: uploaded.id, size: uploaded.size };

t.afterEach(() => {
  proxy.clear();
});


/** Read [offset, offset+length) of `file` through one streamRange, in 256 KiB reads queued at once. */
async function pullStream(store: RestStore, file: FileRef, offset: number, length: number): Promise<Buffer> {
  const rs = store.streamRange(file, offset, length);
  const into = Buffer.alloc(length);
  const reads: Array<Promise<number>> = [];
  for (let at = 0; at < length; at += 256 * 1024) reads.push(rs.read(into.subarray(at, Math.min(length, at + 256 * 1024))));
  await Promise.all(reads);
  rs.close();
  return into;
}
t.test('a 503 on a GET is retried', async (tt) => {
  onNext('GET', /\/folder\//, { kind: 'status', status: 503 }, 2);
  const before = c.stats().retries;
  tt.equal((await store.getFolder(folder.id)).name, 'faults');
  tt.equal(c.stats().retries - before, 2);
});

t.test('a POST is not retried on 5xx', async (tt) => {
  onNext('POST', /\/item\?/, { kind: 'status', status: 502 });
  const err = await store.createItem(folder.id, 'never').catch((e: unknown) => e);
  tt.ok(err instanceof GirderError && err.status === 502 && isTransient(err));
  tt.same((await store.findItems(folder.id, 'never')).length, 0);
});

t.test('a download cut mid-body resumes from the byte reached', async (tt) => {
  onNext('GET', /\/download/, { kind: 'cut', afterBytes: 100_000 });
  seen.length = 0;
  const into = Buffer.alloc(2 * MiB);
  tt.equal(await store.readRange(ref, 1001, 2 * MiB, into), 2 * MiB);
  tt.ok(into.equals(source.bytes.subarray(1001, 1001 + 2 * MiB)), 'bytes match');
  const ranges = seen.filter((s) => s.url.includes('/download')).map((s) => s.headers.range);
  tt.same(ranges, [`bytes=1001-${1001 + 2 * MiB - 1}`, `bytes=${101_001}-${1001 + 2 * MiB - 1}`]);
});

t.test('a whole file is asked for without a Range; cut, it resumes with one from the byte reached', async (tt) => {
  // Girder's range handling cost its single process 1-1.7 s of CPU over 10,000 small files.
  onNext('GET', /\/download/, { kind: 'cut', afterBytes: 100_000 });
  seen.length = 0;
  const into = Buffer.alloc(ref.size);
  tt.equal(await store.readRange(ref, 0, ref.size, into), ref.size);
  tt.ok(into.equals(source.bytes), 'bytes match');
  const ranges = seen.filter((s) => s.url.includes('/download')).map((s) => s.headers.range);
  tt.same(ranges, [undefined, `bytes=100000-${ref.size - 1}`]);
  seen.length = 0;
  tt.equal(await store.readRange(ref, 0, ref.size - 1, into), ref.size - 1);
  tt.same(seen.filter((s) => s.url.includes('/download')).map((s) => s.headers.range), [`bytes=0-${ref.size - 2}`], 'all but the last byte: a Range');
});

t.test('a 5xx download is retried', async (tt) => {
  onNext('GET', /\/download/, { kind: 'status', status: 500 });
  const into = Buffer.alloc(10);
  tt.equal(await store.readRange(ref, 5, 10, into), 10);
  tt.ok(into.equals(source.bytes.subarray(5, 15)));
});

t.test('a redirected download re-sends the Range and not the token', async (tt) => {
  onNext('GET', /\/file\/[0-9a-f]+\/download/, { kind: 'redirect', location: `${proxyOrigin}/fake-s3/file/${ref.id}/download` });
  seen.length = 0;
  const into = Buffer.alloc(300);
  tt.equal(await store.readRange(ref, 77, 300, into), 300);
  tt.ok(into.equals(source.bytes.subarray(77, 377)));
  const s3 = seen.find((s) => s.url.startsWith('/fake-s3/'));
  tt.ok(s3 !== undefined, 'the Location was followed');
  tt.equal(s3?.headers.range, 'bytes=77-376');
  tt.equal(s3?.headers['girder-token'], undefined, 'no token sent to the redirect target');
});

t.test('a streamed read: a cut body resumes from the byte reached, a 5xx is retried, a redirect followed', async (tt) => {
  for (const direct of [true, false]) {
    const how = direct ? 'direct' : 'undici';
    const s = new RestStore(c, silentLogger(), { stream: { firstRequestBytes: MiB, maxRequestBytes: MiB, openAheadBytes: 0, direct } });
    const pull = (offset: number, length: number): Promise<Buffer> => pullStream(s, ref, offset, length);
    const downloads = (): Array<string | undefined> => seen.filter((x) => x.url.includes('/download')).map((x) => x.headers.range as string | undefined);

    onNext('GET', /\/download/, { kind: 'cut', afterBytes: 100_000 });
    seen.length = 0;
    tt.ok((await pull(1001, 2 * MiB)).equals(source.bytes.subarray(1001, 1001 + 2 * MiB)), `${how}: bytes match after a cut`);
    tt.same(downloads(), [
      `bytes=1001-${1001 + MiB - 1}`,
      `bytes=${101_001}-${1001 + MiB - 1}`,
      `bytes=${1001 + MiB}-${1001 + 2 * MiB - 1}`,
    ], `${how}: resumed from the byte reached, then the next GET`);

    onNext('GET', /\/download/, { kind: 'status', status: 503 });
    const retries = c.stats().retries;
    tt.ok((await pull(5, MiB + 10)).equals(source.bytes.subarray(5, MiB + 15)), `${how}: bytes match after a 503`);
    tt.equal(c.stats().retries - retries, 1, `${how}: one retry`);

    onNext('GET', /\/file\/[0-9a-f]+\/download/, { kind: 'redirect', location: `${proxyOrigin}/fake-s3/file/${ref.id}/download` });
    seen.length = 0;
    tt.ok((await pull(77, 300)).equals(source.bytes.subarray(77, 377)), `${how}: bytes match through a redirect`);
    const s3 = seen.find((x) => x.url.startsWith('/fake-s3/'));
    tt.equal(s3?.headers.range, 'bytes=77-376', `${how}: the Range is sent again`);
    tt.equal(s3?.headers['girder-token'], undefined, `${how}: no token sent to the redirect target`);
  }
});

t.test('a streamed read: a 401 logs in again; a cut or a 5xx on the GET sent ahead is resumed', async (tt) => {
  for (const direct of [true, false]) {
    const how = direct ? 'direct' : 'undici';
    // GETs of 1 MiB, the next one sent when 512 KiB of the current one are left
    const s = new RestStore(c, silentLogger(), { stream: { firstRequestBytes: MiB, maxRequestBytes: MiB, openAheadBytes: MiB / 2, direct } });
    const pull = (offset: number, length: number): Promise<Buffer> => pullStream(s, ref, offset, length);
    const downloads = (): string[] => seen.filter((x) => x.url.includes('/download')).map((x) => String(x.headers.range));
    const logins = (): number => seen.filter((x) => x.url.includes('/api_key/token')).length;

    // Girder forgot the token (it expired): 401, then a new login and the same GET again
    proxy.expireTokens();
    seen.length = 0;
    tt.ok((await pull(0, MiB + 5)).equals(source.bytes.subarray(0, MiB + 5)), `${how}: bytes match after a 401`);
    tt.equal(logins(), 1, `${how}: logged in again once`);
    tt.equal(seen.filter((x) => x.fault === 'expired-token').length, 1, `${how}: one GET refused`);
    proxy.clear();

    // the second GET (sent ahead) is cut after 100 000 bytes: resumed from the byte reached, or
    // from its start when its body died while parked
    onNext('GET', /\/download/, { kind: 'delay', ms: 0 });
    onNext('GET', /\/download/, { kind: 'cut', afterBytes: 100_000 });
    seen.length = 0;
    tt.ok((await pull(0, 3 * MiB)).equals(source.bytes.subarray(0, 3 * MiB)), `${how}: bytes match after a cut of the GET sent ahead`);
    const ranges = downloads();
    tt.same(ranges.slice(0, 2), [`bytes=0-${MiB - 1}`, `bytes=${MiB}-${2 * MiB - 1}`], `${how}: two GETs, the second sent ahead`);
    const resumed = /^bytes=(\d+)-(\d+)$/.exec(ranges[2] ?? '');
    tt.ok(resumed !== null && Number(resumed[1]) >= MiB && Number(resumed[1]) <= MiB + 100_000 && Number(resumed[2]) === 2 * MiB - 1,
      `${how}: the cut GET is resumed (${ranges.join(', ')})`);
    tt.equal(ranges.at(-1), `bytes=${2 * MiB}-${3 * MiB - 1}`, `${how}: then the last GET`);

    // the second GET answers 503: sent again after a backoff
    onNext('GET', /\/download/, { kind: 'delay', ms: 0 });
    onNext('GET', /\/download/, { kind: 'status', status: 503 });
    seen.length = 0;
    const retries = c.stats().retries;
    tt.ok((await pull(0, 3 * MiB)).equals(source.bytes.subarray(0, 3 * MiB)), `${how}: bytes match after a 503 on the GET sent ahead`);
    tt.same(downloads(), [`bytes=0-${MiB - 1}`, `bytes=${MiB}-${2 * MiB - 1}`, `bytes=${MiB}-${2 * MiB - 1}`, `bytes=${2 * MiB}-${3 * MiB - 1}`],
      `${how}: the refused GET is sent again`);
    tt.equal(c.stats().retries - retries, 1, `${how}: one retry`);
  }
});

t.test('onLogin listeners hear each successful login, and not a refused one', async (tt) => {
  const own = client();
  let heard = 0;
  const off = own.onLogin(() => { heard++; });
  await own.login();
  tt.equal(heard, 1, 'the first login');
  const privateFolder = `/folder/${info.folders.adminPrivate}`;
  proxy.expireTokens();
  await own.get(privateFolder);
  tt.equal(heard, 2, 'a new login after Girder refused the token (401)');
  proxy.clear();
  // the API key deactivated: Girder refuses the token, then the key
  onNext('POST', /\/api_key\/token/, { kind: 'status', status: 400, body: JSON.stringify({ message: 'Invalid API key.', type: 'validation' }) });
  proxy.expireTokens();
  const err = await own.get(privateFolder).then(() => undefined, (e: unknown) => e);
  tt.match(err, { status: 400, type: 'auth' }, 'the refused login fails the request');
  tt.equal(heard, 2, 'and is not heard');
  await own.get(privateFolder); // the token is still refused; the key is taken again
  tt.equal(heard, 3, 'the next successful login is heard');
  off();
  proxy.expireTokens();
  await own.get(privateFolder);
  proxy.clear();
  tt.equal(heard, 3, 'a removed listener hears nothing');
});

t.test('a chunk dropped mid-body is resent from the server offset', async (tt) => {
  const local = await localFile('chunky', 11 * MiB + 3);
  onNext('POST', /\/file\/chunk\?.*offset=5242880/, { kind: 'drop-request' });
  onNext('POST', /\/file\/chunk\?.*offset=10485760/, { kind: 'status', status: 503 });
  seen.length = 0;
  const progress: number[] = [];
  const doc = await store.createFile({ itemId: item.id }, 'chunky.bin', local, { onProgress: (sent) => void progress.push(sent) });
  tt.equal(doc.size, local.size);
  tt.equal(doc.sha512, local.sha512);
  tt.ok(seen.filter((s) => s.url.includes('/file/offset')).length >= 2, 'asked the server for its offset');
  tt.equal(progress.at(-1), local.size);
});

t.test('a chunk refused with 401 (token expired) is sent again, whole, after a new login', async (tt) => {
  const local = await localFile('relogin', 7 * MiB + 5);
  onNext('POST', /\/file\/chunk\?.*offset=5242880/, { kind: 'unauthorized' });
  seen.length = 0;
  const doc = await store.createFile({ itemId: item.id }, 'relogin.bin', local);
  tt.equal(doc.size, local.size);
  tt.equal(doc.sha512, local.sha512, 'Girder holds exactly the bytes: the chunk was written again from its start');
  tt.equal(seen.filter((x) => x.url.includes('/api_key/token')).length, 1, 'logged in again once');
  tt.equal(seen.filter((x) => x.url.includes('/file/chunk') && x.url.includes('offset=5242880')).length, 2, 'the refused chunk was sent twice');
});

t.test('a lost answer to the final chunk still finds the file', async (tt) => {
  const local = await localFile('lost', 2 * MiB);
  onNext('POST', /\/file\/chunk/, { kind: 'drop-answer' });
  const doc = await store.createFile({ itemId: item.id }, 'lost.bin', local);
  tt.equal(doc.sha512, local.sha512);
  tt.equal((await store.listFiles(item.id)).filter((f) => f.name === 'lost.bin').length, 1, 'one file, not two');

  const replaced = await localFile('lost2', MiB);
  onNext('POST', /\/file\/chunk/, { kind: 'drop-answer' });
  const again = await store.replaceFile(doc.id, replaced);
  tt.equal(again.id, doc.id);
  tt.equal(again.sha512, replaced.sha512);
});

t.test('an upload gives up after its retries with a transient error', async (tt) => {
  const local = await localFile('doomed', 6 * MiB); // past ONE_REQUEST_MAX: an upload id, then chunks
  onNext('POST', /\/file\/chunk/, { kind: 'status', status: 503 }, 100);
  const ids: string[] = [];
  const err = await store.createFile({ itemId: item.id }, 'doomed.bin', local, { onUploadId: (id) => void ids.push(id) }).catch((e: unknown) => e);
  tt.ok(err instanceof GirderError && isTransient(err), String(err));
  tt.equal(ids.length, 1);
  proxy.clear();
  const doc = await store.createFile({ itemId: item.id }, 'doomed.bin', local, { resumeUploadId: ids[0] });
  tt.equal(doc.sha512, local.sha512, 'resumable afterwards');
});

t.test('a new file under 5 MiB is one POST /file with its bytes; a failed one is not sent again', async (tt) => {
  const local = await localFile('at-once', MiB);
  const mark = proxy.seen.length;
  const doc = await store.createFile({ itemId: item.id }, 'at-once.bin', local);
  tt.equal(doc.sha512, local.sha512);
  tt.same(proxy.seen.slice(mark).map((r) => `${r.method} ${r.url.split('?')[0]?.replace(/.*\/api\/v1/, '')}`), ['POST /file'], 'one request');
  onNext('POST', /\/file\?/, { kind: 'status', status: 503 }, 5);
  const before = proxy.seen.length;
  const err = await store.createFile({ itemId: item.id }, 'refused.bin', local).catch((e: unknown) => e);
  tt.ok(err instanceof GirderError && err.status === 503, String(err));
  tt.equal(proxy.seen.length - before, 1, 'sent once: a lost answer may have made the file, which the caller checks');
  proxy.clear();
});

t.test('a request that gets no answer times out, once: it is not sent again', async (tt) => {
  const quick = client({ timeoutMs: 3_000, retries: 1 });
  await quick.login();
  onNext('GET', /\/folder\//, { kind: 'hang' }, 2);
  const started = Date.now();
  const err = await new RestStore(quick, silentLogger()).getFolder(folder.id).catch((e: unknown) => e);
  const ms = Date.now() - started;
  tt.ok(err instanceof GirderError, String(err));
  tt.equal((err as GirderError).type, 'timeout');
  tt.equal((err as GirderError).status, 0);
  tt.equal(quick.stats().retries, 0, 'a retry would wait the whole timeout again');
  tt.ok(ms >= 2_900 && ms < 4_000, `given up after --timeout (${ms} ms)`);
});

/** The rejection of `promise`, which must be a GirderError. */
async function girderError(promise: Promise<unknown>): Promise<GirderError> {
  const err = await promise.then(() => new Error('expected a rejection'), (e: unknown) => e);
  if (!(err instanceof GirderError)) throw new Error(`expected a GirderError, got ${String(err)}`, { cause: err });
  return err;
}

t.test('Girder away: a probe decides; then nothing is sent or retried until a probe finds it back', async (tt) => {
  const watched = client({ retries: 5, retryBaseMs: 200 });
  await watched.login();
  watched.health.watch();
  const s = new RestStore(watched, silentLogger());
  const back: number[] = [];
  watched.health.onReachable(() => back.push(Date.now()));
  tt.teardown(() => proxy.up());
  const nonProbes = (): string[] => seen.filter((x) => !x.url.includes('/system/version')).map((x) => x.url.replace(/\?.*/, ''));
  const probes = (): number => seen.filter((x) => x.url.includes('/system/version')).length;

  await proxy.down('reset'); // accepts, resets every request, and records it
  seen.length = 0;
  let started = Date.now();
  const first = await girderError(s.getFolder(folder.id));
  tt.equal(first.type, 'network', `the request that meets the outage fails as it did (${first.message})`);
  tt.ok(Date.now() - started < 1_000, `at once: the probe failed too, so no retry (${Date.now() - started} ms)`);
  tt.equal(watched.stats().retries, 0, 'no retry');
  tt.equal(watched.health.state, 'down');
  tt.same(nonProbes(), [`${upstream.pathname}/folder/${folder.id}`], 'one request sent');
  tt.equal(probes(), 1, 'and one probe');
  tt.equal(seen.find((x) => x.url.includes('/system/version'))?.headers['girder-token'], undefined, 'the probe carries no token');

  started = Date.now();
  const offline = await girderError(s.getFolder(folder.id));
  tt.equal(offline.type, 'offline');
  tt.equal(offline.status, 0);
  tt.match(offline.message, new RegExp(`^Girder at ${proxy.origin.replace(/^http:\/\//, '').replace(/\./g, '\\.')} is unreachable since \\d{4}-`));
  const into = Buffer.alloc(100);
  tt.equal((await girderError(s.readRange(ref, 0, 100, into))).type, 'offline', 'a download too');
  const stream = s.streamRange(ref, 0, MiB);
  tt.equal((await girderError(stream.read(Buffer.alloc(1000)))).type, 'offline', 'and a streamed read');
  stream.close();
  tt.ok(Date.now() - started < 200, `while down, requests fail at once (${Date.now() - started} ms)`);
  tt.equal(nonProbes().length, 1, 'none of them was sent');

  await waitFor(() => probes() >= 3, { timeoutMs: 10_000, what: 'probes while down' });
  tt.equal(nonProbes().length, 1, 'only probes go out while down');
  await proxy.up();
  await waitFor(() => watched.health.state === 'up', { timeoutMs: 15_000, what: 'a probe to find Girder back' });
  tt.equal(back.length, 1, 'onReachable listeners told once');
  tt.equal((await s.getFolder(folder.id)).name, 'faults', 'requests work again');
});

t.test('one request without an answer is not an outage: the probe answers, the rest goes on', async (tt) => {
  const watched = client({ timeoutMs: 1_500, retries: 0 });
  await watched.login();
  watched.health.watch();
  const s = new RestStore(watched, silentLogger());
  onNext('GET', /\/folder\//, { kind: 'hang' }, 1);
  seen.length = 0;
  const err = await girderError(s.getFolder(folder.id));
  tt.equal(err.type, 'timeout');
  tt.equal(await watched.health.settled(), 'up', 'the probe answered');
  tt.equal(seen.filter((x) => x.url.includes('/system/version')).length, 1, 'one probe');
  tt.equal((await s.getFolder(folder.id)).name, 'faults', 'the next request is sent and answered');
});
