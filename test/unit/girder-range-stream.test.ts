// Streamed range reads (src/girder/range-stream.ts) against a small fake Girder: what a real one
// cannot be made to do on cue (a GET sent ahead that dies while parked, a wrong Content-Length).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { GirderError } from '../../src/girder/girder-error.js';
import { GirderClient, type ClientOptions } from '../../src/girder/client.js';
import { readRange } from '../../src/girder/download.js';
import { HttpRangeStream, type RangeStreamOptions } from '../../src/girder/range-stream.js';
import { silentLogger } from '../../src/log.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { selfSigned } from '../helpers/self-signed.js';

const KiB = 1024;
const FILE_ID = '5f0000000000000000000001';

/** What the fake server does with one download GET: serve it (return false), or answer it itself (true). */
type Fault = (req: http.IncomingMessage, res: http.ServerResponse, range: { from: number; to: number }, nth: number, data: Buffer) => boolean;

interface Fake {
  apiUrl: string;
  /** The CA file to trust (https only). */
  caFile?: string;
  data: Buffer;
  /** Range headers of the download GETs, in order. */
  ranges: string[];
  /** Connections open now. */
  openSockets(): number;
}


/** A Girder that knows one user (any token) and one file; over https with `tls`. */
async function fakeGirder(t: Test, size: number, fault: Fault = () => false, tls = false): Promise<Fake> {
  const data = randomBytes(size);
  const ranges: string[] = [];
  const pems = tls ? await selfSigned(t, 'range-stream-tls-') : undefined;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/api/v1/user/me') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ _id: '5f00000000000000000000aa', login: 'me' }));
      return;
    }
    if (url.pathname !== `/api/v1/file/${FILE_ID}/download`) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'No matching route', type: 'rest' }));
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    ranges.push(req.headers.range ?? '');
    const from = Number(m?.[1] ?? 0);
    const to = Math.min(size, Number(m?.[2] ?? size - 1) + 1);
    if (fault(req, res, { from, to }, ranges.length, data)) return;
    res.writeHead(206, { 'content-length': to - from, 'content-range': `bytes ${from}-${to - 1}/${size}`, 'accept-ranges': 'bytes' });
    res.end(data.subarray(from, to));
  };
  const server = pems === undefined
    ? http.createServer(handler)
    : https.createServer({ key: await readFile(pems.key), cert: await readFile(pems.cert) }, handler);
  const sockets = new Set<Socket>();
  server.on(pems === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const scheme = pems === undefined ? 'http' : 'https';
  return { apiUrl: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`, caFile: pems?.cert, data, ranges, openSockets: () => sockets.size };
}

/** A fake whose every GET sends 24 KiB of its answer, then nothing more: its connection stays open. */
function stallingGirder(t: Test, size: number): Promise<Fake> {
  return fakeGirder(t, size, (_req, res, { from, to }, _nth, data) => {
    res.writeHead(206, { 'content-length': to - from, 'content-range': `bytes ${from}-${to - 1}/${size}` });
    res.write(data.subarray(from, from + 24 * KiB));
    return true;
  });
}

function client(t: Test, apiUrl: string, extra: Partial<ClientOptions> = {}): GirderClient {
  const c = new GirderClient({
    apiUrl, credentials: { kind: 'token', token: 'tok' }, timeoutMs: 10_000, retries: 3, retryBaseMs: 10, logger: silentLogger(), ...extra,
  });
  t.teardown(() => c.close().catch(() => undefined)); // a test may have closed it
  return c;
}

/** Read the whole stream in `step`-byte reads, pausing `pauseMs` after the first `pauseAfter` bytes. */
async function pull(rs: HttpRangeStream, size: number, step: number, pauseAfter = -1, pauseMs = 0): Promise<Buffer> {
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += step) {
    if (at === pauseAfter) await sleep(pauseMs);
    const n = await rs.read(out.subarray(at, Math.min(size, at + step)));
    if (n !== Math.min(step, size - at)) throw new Error(`read ${n} bytes at ${at}`);
  }
  return out;
}

/** `promise`, or `what` when it takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(what), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const SMALL: RangeStreamOptions = { firstRequestBytes: 64 * KiB, maxRequestBytes: 64 * KiB, openAheadBytes: 32 * KiB };

t.test('a GET sent ahead that dies while parked is sent again, not waited on for ever', async (t) => {
  // Over TLS the end of a connection is read even while its body is paused: the second GET (sent
  // ahead) answers its head, then its connection ends, before the stream gets to it.
  const size = 256 * KiB;
  const fake = await fakeGirder(t, size, (_req, res, { from, to }, nth) => {
    if (nth !== 2) return false;
    res.writeHead(206, { 'content-length': to - from, 'content-range': `bytes ${from}-${to - 1}/${size}` });
    res.flushHeaders();
    res.socket?.end(); // in the same packet as the head, or nearly
    return true;
  }, true);
  const c = client(t, fake.apiUrl, { caFile: fake.caFile });
  const rs = new HttpRangeStream(c, { id: FILE_ID, size }, 0, size, SMALL);
  // the reader stops for a while once the GET ahead is out: its connection ends meanwhile
  const got = await within(pull(rs, size, 16 * KiB, 48 * KiB, 300), 5_000, 'stuck');
  rs.close();
  t.ok(Buffer.isBuffer(got) && got.equals(fake.data), `every byte, exact (${Buffer.isBuffer(got) ? 'read' : got})`);
  t.same(fake.ranges.slice(0, 3), [`bytes=0-${64 * KiB - 1}`, `bytes=${64 * KiB}-${128 * KiB - 1}`, `bytes=${64 * KiB}-${128 * KiB - 1}`],
    'the dead GET is sent again');
  t.equal(c.stats().retries, 1, 'after a counted retry (its backoff)');
});

t.test('a body that ends while its last bytes wait for a read is not a cut', async (t) => {
  // GETs of 48 KiB, each sent ahead and wholly received (ended) before the stream gets to it, and
  // read 16 KiB at a time: undici emits 'end' while most of the body waits for the next read.
  const size = 192 * KiB;
  const fake = await fakeGirder(t, size);
  for (const direct of [false, true]) {
    const how = direct ? 'direct' : 'undici';
    const c = client(t, fake.apiUrl);
    fake.ranges.length = 0;
    const rs = new HttpRangeStream(c, { id: FILE_ID, size }, 0, size, { firstRequestBytes: 48 * KiB, maxRequestBytes: 48 * KiB, openAheadBytes: 24 * KiB, direct });
    const got = await within(pull(rs, size, 16 * KiB, 32 * KiB, 200), 5_000, 'stuck');
    rs.close();
    t.ok(Buffer.isBuffer(got) && got.equals(fake.data), `${how}: every byte, exact`);
    t.equal(fake.ranges.length, 4, `${how}: four GETs of 48 KiB, none sent again (${fake.ranges.join(', ')})`);
    t.equal(c.stats().retries, 0, `${how}: no retry`);
  }
});

t.test('a 206 whose Content-Length is not the length of its Content-Range is malformed, not retried', async (t) => {
  const size = 128 * KiB;
  // the Content-Range the GET asked for, with a body 1000 bytes long
  const fake = await fakeGirder(t, size, (_req, res, { from, to }, _nth, data) => {
    res.writeHead(206, { 'content-length': 1000, 'content-range': `bytes ${from}-${to - 1}/${size}` });
    res.end(data.subarray(from, from + 1000));
    return true;
  });
  const c = client(t, fake.apiUrl);
  const ref = { id: FILE_ID, size };
  const ranged = await readRange(c, ref, 0, 64 * KiB, Buffer.alloc(64 * KiB)).catch((e: unknown) => e);
  t.ok(ranged instanceof GirderError && ranged.type === 'malformed', `readRange: malformed (${String(ranged)})`);
  for (const direct of [false, true]) {
    const how = direct ? 'direct' : 'undici';
    const rs = new HttpRangeStream(c, ref, 0, size, { ...SMALL, direct });
    const streamed = await within(rs.read(Buffer.alloc(16 * KiB)).catch((e: unknown) => e), 5_000, 'stuck');
    rs.close();
    t.ok(streamed instanceof GirderError && streamed.type === 'malformed', `${how} stream: malformed (${String(streamed)})`);
  }
  t.equal(c.stats().retries, 0, 'no retry');
});

t.test('client.close() ends a streaming and a paused stream at once: their readers get an error, no retry, no socket left', async (t) => {
  const size = 256 * KiB;
  const fake = await stallingGirder(t, size);
  // retrying would take seconds
  const c = client(t, fake.apiUrl, { retries: 5, retryBaseMs: 300 });
  const ref = { id: FILE_ID, size };
  const paused = new HttpRangeStream(c, ref, 0, size, SMALL);
  t.equal(await paused.read(Buffer.alloc(16 * KiB)), 16 * KiB, 'the paused stream read, and now waits with its GET parked');
  const active = new HttpRangeStream(c, ref, 64 * KiB, size - 64 * KiB, SMALL);
  const waiting = active.read(Buffer.alloc(32 * KiB)).catch((e: unknown) => e);
  await waitFor(() => fake.openSockets() === 2, { timeoutMs: 5_000, intervalMs: 10, what: 'both GETs under way' });
  await sleep(50);

  const started = Date.now();
  await c.close();
  const err = await within(waiting, 3_000, 'still waiting');
  t.ok(err instanceof GirderError && err.type === 'aborted', `the waiting read fails (${String(err)})`);
  const later = await within(paused.read(Buffer.alloc(16 * KiB)).catch((e: unknown) => e), 3_000, 'still waiting');
  t.ok(later instanceof GirderError && later.type === 'aborted', `a read of the paused stream fails (${String(later)})`);
  const after = new HttpRangeStream(c, ref, 0, size, SMALL);
  const refused = await within(after.read(Buffer.alloc(16 * KiB)).catch((e: unknown) => e), 3_000, 'still waiting');
  after.close();
  t.ok(refused instanceof GirderError && refused.type === 'aborted', `a stream opened after close() fails (${String(refused)})`);
  t.ok(Date.now() - started < 1_000, `at once (${Date.now() - started} ms)`);
  t.equal(c.stats().retries, 0, 'no retry');
  await waitFor(() => fake.openSockets() === 0, { timeoutMs: 5_000, intervalMs: 10, what: 'no connection left' });
  t.pass('no connection left');
  active.close();
  paused.close();
});

t.test('a dozen streams at once: no MaxListenersExceededWarning', async (t) => {
  const size = 256 * KiB;
  const fake = await stallingGirder(t, size);
  const c = client(t, fake.apiUrl);
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  // each stream reads a little of its GET, whose connection stays open (and listens to the client's closing signal)
  const streams = Array.from({ length: 12 }, () => new HttpRangeStream(c, { id: FILE_ID, size }, 0, size, SMALL));
  await Promise.all(streams.map((rs) => rs.read(Buffer.alloc(KiB))));
  t.ok(fake.openSockets() >= 12, `${fake.openSockets()} connections open`);
  await sleep(50); // warnings are emitted on a later tick
  for (const rs of streams) rs.close();
  t.same(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), [], 'no warning');
});
