// The Girder layer under faults: a small proxy between the client and a real Girder answers 5xx,
// cuts bodies, resets uploads, redirects downloads, or hangs, on chosen requests.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { GirderError } from '../../src/errors.js';
import { GirderClient, type ClientOptions } from '../../src/girder/client.js';
import { RestStore } from '../../src/girder/rest-store.js';
import { silentLogger } from '../../src/log.js';
import { startGirder } from '../helpers/girder-server.js';

const MiB = 1024 * 1024;

const girder = await startGirder();
t.teardown(() => girder.stop());
const info = girder.info;
const upstream = new URL(info.apiUrl);
const work = await mkdtemp(path.join(os.tmpdir(), 'girder-faults-test-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

type Action =
  | { kind: 'status'; status: number }
  | { kind: 'cut'; afterBytes: number } // forward, then drop the connection after this many body bytes
  | { kind: 'drop-request' } // read part of the request body, then drop the connection
  | { kind: 'drop-answer' } // forward, then drop the connection instead of answering
  | { kind: 'redirect'; location: string }
  | { kind: 'hang' };

interface Rule {
  match: (method: string, url: string) => boolean;
  action: Action;
  times: number;
}

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

const rules: Rule[] = [];
const seen: Seen[] = [];

function onNext(method: string, pattern: RegExp, action: Action, times = 1): void {
  rules.push({ match: (m, url) => m === method && pattern.test(url), action, times });
}

const proxy = http.createServer((req, res) => {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  seen.push({ method, url, headers: req.headers });
  const rule = rules.find((r) => r.times > 0 && r.match(method, url));
  if (rule !== undefined) rule.times--;
  const action = rule?.action;

  if (action?.kind === 'status') {
    req.resume();
    res.writeHead(action.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message: 'injected failure', type: 'rest' }));
    return;
  }
  if (action?.kind === 'redirect') {
    req.resume();
    res.writeHead(303, { location: action.location });
    res.end();
    return;
  }
  if (action?.kind === 'hang') {
    req.resume();
    return;
  }
  if (action?.kind === 'drop-request') {
    let got = 0;
    req.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got > 64 * 1024) req.socket.destroy();
    });
    req.on('end', () => req.socket.destroy());
    return;
  }
  // "/fake-s3/<rest>" stands for another server: forward it to Girder's API without credentials.
  const target = url.startsWith('/fake-s3/') ? upstream.pathname + url.slice('/fake-s3'.length) : url;
  const headers = { ...req.headers, host: upstream.host };
  const up = http.request({ host: upstream.hostname, port: upstream.port, method, path: target, headers }, (upRes) => {
    if (action?.kind === 'drop-answer') {
      upRes.resume();
      upRes.on('end', () => res.socket?.destroy());
      return;
    }
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    if (action?.kind === 'cut') {
      let sent = 0;
      upRes.on('data', (chunk: Buffer) => {
        const room = action.afterBytes - sent;
        if (room <= 0) return;
        sent += Math.min(room, chunk.length);
        const last = sent >= action.afterBytes;
        // Drop the connection once the bytes are handed to the kernel, so they all arrive.
        res.write(chunk.subarray(0, room), () => {
          if (last) setTimeout(() => res.socket?.destroy(), 20);
        });
      });
      return;
    }
    upRes.pipe(res);
  });
  up.on('error', () => res.socket?.destroy());
  req.pipe(up);
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const proxyPort = (proxy.address() as AddressInfo).port;
const proxyOrigin = `http://127.0.0.1:${proxyPort}`;
t.teardown(() => {
  proxy.closeAllConnections();
  return new Promise<void>((resolve) => proxy.close(() => resolve()));
});

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
const uploaded = await store.uploadFile(item.id, 'src.bin', source);
const ref = { id: uploaded.id, size: uploaded.size };

t.afterEach(() => {
  rules.length = 0;
});

t.test('a 503 on a GET is retried', async (tt) => {
  onNext('GET', /\/folder\//, { kind: 'status', status: 503 }, 2);
  const before = c.stats().retries;
  tt.equal((await store.getFolder(folder.id)).name, 'faults');
  tt.equal(c.stats().retries - before, 2);
});

t.test('a POST is not retried on 5xx', async (tt) => {
  onNext('POST', /\/item\?/, { kind: 'status', status: 502 });
  const err = await store.createItem(folder.id, 'never').catch((e: unknown) => e);
  tt.ok(err instanceof GirderError && err.status === 502 && err.isTransient);
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

t.test('a chunk dropped mid-body is resent from the server offset', async (tt) => {
  const local = await localFile('chunky', 11 * MiB + 3);
  onNext('POST', /\/file\/chunk\?.*offset=5242880/, { kind: 'drop-request' });
  onNext('POST', /\/file\/chunk\?.*offset=10485760/, { kind: 'status', status: 503 });
  seen.length = 0;
  const progress: number[] = [];
  const doc = await store.uploadFile(item.id, 'chunky.bin', local, { onProgress: (sent) => void progress.push(sent) });
  tt.equal(doc.size, local.size);
  tt.equal(doc.sha512, local.sha512);
  tt.ok(seen.filter((s) => s.url.includes('/file/offset')).length >= 2, 'asked the server for its offset');
  tt.equal(progress.at(-1), local.size);
});

t.test('a lost answer to the final chunk still finds the file', async (tt) => {
  const local = await localFile('lost', 2 * MiB);
  onNext('POST', /\/file\/chunk/, { kind: 'drop-answer' });
  const doc = await store.uploadFile(item.id, 'lost.bin', local);
  tt.equal(doc.sha512, local.sha512);
  tt.equal((await store.listFiles(item.id)).filter((f) => f.name === 'lost.bin').length, 1, 'one file, not two');

  const replaced = await localFile('lost2', MiB);
  onNext('POST', /\/file\/chunk/, { kind: 'drop-answer' });
  const again = await store.replaceFile(doc.id, replaced);
  tt.equal(again.id, doc.id);
  tt.equal(again.sha512, replaced.sha512);
});

t.test('an upload gives up after its retries with a transient error', async (tt) => {
  const local = await localFile('doomed', MiB);
  onNext('POST', /\/file\/chunk/, { kind: 'status', status: 503 }, 100);
  const ids: string[] = [];
  const err = await store.uploadFile(item.id, 'doomed.bin', local, { onUploadId: (id) => void ids.push(id) }).catch((e: unknown) => e);
  tt.ok(err instanceof GirderError && err.isTransient, String(err));
  tt.equal(ids.length, 1);
  rules.length = 0;
  const doc = await store.uploadFile(item.id, 'doomed.bin', local, { resumeUploadId: ids[0] });
  tt.equal(doc.sha512, local.sha512, 'resumable afterwards');
});

t.test('a request that gets no answer times out', async (tt) => {
  const quick = client({ timeoutMs: 3_000, retries: 1 });
  await quick.login();
  onNext('GET', /\/folder\//, { kind: 'hang' }, 2);
  const err = await new RestStore(quick, silentLogger()).getFolder(folder.id).catch((e: unknown) => e);
  tt.ok(err instanceof GirderError, String(err));
  tt.equal((err as GirderError).type, 'timeout');
  tt.equal((err as GirderError).status, 0);
  tt.equal(quick.stats().retries, 1);
});
