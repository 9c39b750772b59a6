// Requests on connections of their own (src/girder/direct-request.ts) against local servers: answer
// body framings, pauses that keep a chunk intact, cut connections, timeouts, TLS; request bodies from
// reused buffers, and answers that come before the body is sent.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { DirectBody } from '../../src/girder/direct-body.js';
import { directRequest, type DirectRequestBody } from '../../src/girder/direct-request.js';
import { sleep } from '../helpers/wait.js';
import { selfSigned } from '../helpers/self-signed.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function httpServer(t: Test, handler: Handler): Promise<URL> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

/** A server that writes `answer` (raw bytes) to each connection, then does `then`. */
async function rawServer(t: Test, answer: Buffer | string, then: 'end' | 'hang' | 'destroy'): Promise<URL> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => {
      socket.write(answer);
      if (then === 'end') socket.end();
      else if (then === 'destroy') setTimeout(() => socket.destroy(), 20);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`);
}

/** `promise`, or `what` when it takes longer than `ms` (the timer does not outlive it). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(what), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The whole body; `pauseEvery`: pause in every n-th 'data' for a moment, copying the chunk only after the pause. */
function collect(body: DirectBody, pauseEvery = 0): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    body.on('data', (chunk: Buffer) => {
      if (pauseEvery > 0 && ++n % pauseEvery === 0) {
        body.pause();
        // the chunk stays intact while paused, even though the socket would have more to read
        setTimeout(() => {
          parts.push(Buffer.from(chunk));
          body.resume();
        }, 2);
        return;
      }
      parts.push(Buffer.from(chunk));
    });
    body.on('end', () => resolve(Buffer.concat(parts)));
    body.on('error', reject);
    body.resume();
  });
}

t.test('a Content-Length body, read with pauses, arrives exactly', async (t) => {
  const data = randomBytes(5 * 1024 * 1024 + 3);
  let seen: http.IncomingHttpHeaders = {};
  const url = await httpServer(t, (req, res) => {
    seen = req.headers;
    res.writeHead(206, { 'content-length': data.length, 'content-range': `bytes 0-${data.length - 1}/${data.length}` });
    res.end(data);
  });
  const res = await directRequest({ url: new URL('/file/x/download?a=1', url), headers: { range: 'bytes=0-', 'girder-token': 'tok' }, timeoutMs: 10_000, readBytes: 64 * 1024 });
  t.equal(res.statusCode, 206);
  t.equal(res.headers['content-range'], `bytes 0-${data.length - 1}/${data.length}`);
  t.ok((await collect(res.body, 3)).equals(data), 'same bytes');
  t.equal(seen.range, 'bytes=0-');
  t.equal(seen['girder-token'], 'tok');
  t.equal(seen.connection, 'close');
});

t.test('a chunked body is decoded', async (t) => {
  const parts = [randomBytes(100_000), randomBytes(1), randomBytes(300_000), randomBytes(7)];
  const url = await httpServer(t, async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (const p of parts) {
      res.write(p);
      await sleep(5);
    }
    res.end();
  });
  const res = await directRequest({ url, headers: {}, timeoutMs: 10_000, readBytes: 4096 });
  t.equal(res.headers['transfer-encoding'], 'chunked');
  t.ok((await collect(res.body, 2)).equals(Buffer.concat(parts)), 'same bytes');
});

t.test('a body that ends with the connection; an interim 100 answer is skipped', async (t) => {
  const url = await rawServer(t, 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nX-Thing: a\r\nX-Thing: b\r\n\r\nhello, world', 'end');
  const res = await directRequest({ url, headers: {}, timeoutMs: 10_000 });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['x-thing'], 'a, b');
  t.equal((await collect(res.body)).toString(), 'hello, world');
});

t.test('an error answer reads as text', async (t) => {
  const url = await httpServer(t, (_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end('{"message":"Invalid file id (x).","type":"rest"}');
  });
  const res = await directRequest({ url, headers: {}, timeoutMs: 10_000 });
  t.equal(res.statusCode, 400);
  t.equal(await res.body.text(), '{"message":"Invalid file id (x).","type":"rest"}');
});

t.test('a connection cut mid-body is an error, not an end', async (t) => {
  const url = await rawServer(t, Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'), randomBytes(500)]), 'destroy');
  const res = await directRequest({ url, headers: {}, timeoutMs: 10_000 });
  const err = await collect(res.body).then(() => 'ended', (e: unknown) => e);
  t.match(err, { code: 'ECONNRESET' });
});

t.test('no answer, or a body that stalls: ETIMEDOUT; a paused body does not time out', async (t) => {
  const silent = await rawServer(t, '', 'hang');
  const headless = await directRequest({ url: silent, headers: {}, timeoutMs: 200 }).then(() => 'answered', (e: unknown) => e);
  t.match(headless, { code: 'ETIMEDOUT' });

  const stalls = await rawServer(t, 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc', 'hang');
  const res = await directRequest({ url: stalls, headers: {}, timeoutMs: 200 });
  const errors: unknown[] = [];
  res.body.on('error', (e: unknown) => errors.push(e));
  await sleep(500); // paused (not resumed yet): no timeout
  t.same(errors, [], 'no timeout while paused');
  const got = await collect(res.body).then(() => 'ended', (e: unknown) => e);
  t.match(got, { code: 'ETIMEDOUT' });
});

t.test('a bad answer head is refused', async (t) => {
  const url = await rawServer(t, 'SSH-2.0-OpenSSH\r\n\r\n', 'end');
  await t.rejects(directRequest({ url, headers: {}, timeoutMs: 10_000 }), /not an HTTP\/1\.x answer/);
  const bad = await rawServer(t, 'HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n', 'end');
  await t.rejects(directRequest({ url: bad, headers: {}, timeoutMs: 10_000 }), /Content-Length/);
  await t.rejects(directRequest({ url: bad, headers: { x: 'a\r\nb' }, timeoutMs: 10_000 }), /line break/);
});


t.test('https, with a private certificate authority', async (t) => {
  const { key, cert } = await selfSigned(t, 'direct-get-tls-');
  const data = randomBytes(3 * 1024 * 1024);
  const server = https.createServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) => {
    res.writeHead(200, { 'content-length': data.length });
    res.end(data);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  await t.rejects(directRequest({ url, headers: {}, timeoutMs: 10_000 }), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  const res = await directRequest({ url, headers: {}, timeoutMs: 10_000, ca: [await readFile(cert, 'utf8')] });
  t.ok((await collect(res.body, 5)).equals(data), 'same bytes over TLS');
});

t.test('aborting the signal closes the connection, before or after the answer', async (t) => {
  const silent = await rawServer(t, '', 'hang');
  const early = new AbortController();
  const pending = directRequest({ url: silent, headers: {}, timeoutMs: 10_000, signal: early.signal }).then(() => 'answered', (e: unknown) => e);
  await sleep(50);
  early.abort();
  t.match(await pending, { code: 'ABORT_ERR' }, 'the answer rejects');
  t.match(await directRequest({ url: silent, headers: {}, timeoutMs: 10_000, signal: early.signal }).catch((e: unknown) => e), { code: 'ABORT_ERR' }, 'an aborted signal connects nothing');

  let closed = false;
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const late = new AbortController();
  const res = await directRequest({ url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`), headers: {}, timeoutMs: 10_000, signal: late.signal });
  const events: unknown[] = [];
  res.body.on('end', () => events.push('end'));
  res.body.on('error', (e: unknown) => events.push(e));
  late.abort();
  await new Promise<void>((resolve) => {
    const check = (): void => (closed ? resolve() : void setTimeout(check, 10));
    check();
  });
  t.ok(res.body.destroyed, 'the body is destroyed');
  // the consumer did not ask for it (unlike destroy()): it must hear of it, or it waits for ever
  t.match(events, [{ code: 'ABORT_ERR' }], 'with an error');

  const quiet = await directRequest({ url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`), headers: {}, timeoutMs: 10_000 });
  const after: string[] = [];
  quiet.body.on('error', () => after.push('error'));
  quiet.body.destroy();
  quiet.body.resume();
  await sleep(20);
  t.same(after, [], 'destroy() by the consumer is quiet');
});

t.test('a failure nobody heard is kept: the next error listener or resume() gets it', async (t) => {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
  }));
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);

  // failed with no listener at all (here by an abort), heard by the first 'error' listener added
  const a = new AbortController();
  const first = await directRequest({ url, headers: {}, timeoutMs: 10_000, signal: a.signal });
  a.abort();
  t.ok(first.body.destroyed);
  t.match(first.body.errored, { code: 'ABORT_ERR' });
  const heard = await within(new Promise<unknown>((resolve) => first.body.on('error', resolve)), 1000, 'nothing');
  t.match(heard, { code: 'ABORT_ERR' }, 'the late listener gets the failure');

  // heard by a listener that ignores it; whoever resumes the body later still gets it
  const b = new AbortController();
  const second = await directRequest({ url, headers: {}, timeoutMs: 10_000, signal: b.signal });
  second.body.on('error', () => undefined);
  b.abort();
  const outcome = await within(new Promise<unknown>((resolve) => {
    second.body.on('data', () => resolve('data'));
    second.body.on('end', () => resolve('end'));
    second.body.on('error', resolve);
    second.body.resume();
  }), 1000, 'nothing: it would wait for ever');
  t.match(outcome, { code: 'ABORT_ERR' }, 'resume() of a failed body emits its failure');
});

t.test('over TLS, a connection that ends while the body is paused: the error comes on resume()', async (t) => {
  const { key, cert } = await selfSigned(t, 'direct-get-tls-');
  // the head, no body byte, then the end of the connection: TLS reads the end although the body is paused
  const server = tls.createServer({ key: await readFile(key), cert: await readFile(cert) }, (socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  const res = await directRequest({ url, headers: {}, timeoutMs: 10_000, ca: [await readFile(cert, 'utf8')] });
  await sleep(100); // parked, with no listener
  const outcome = await within(collect(res.body).then(() => 'ended', (e: unknown) => e), 2000, 'nothing: it would wait for ever');
  t.match(outcome, { code: 'ECONNRESET' }, 'an error, not a wait for ever');
});

/** A request body of `data`, sent through one buffer that is overwritten as soon as `send` resolves. */
function reusedBody(data: Buffer, piece: number, log: { sends: number; refused?: unknown }): DirectRequestBody {
  return {
    length: data.length,
    async writeTo(send) {
      const buffer = Buffer.alloc(piece);
      for (let pos = 0; pos < data.length; pos += piece) {
        const n = data.copy(buffer, 0, pos, pos + piece);
        try {
          await send(buffer.subarray(0, n));
        } catch (err) {
          log.refused = err;
          throw err;
        }
        log.sends++;
        buffer.fill(0xee); // the socket has the bytes: reusing the buffer must not change what is sent
      }
    },
  };
}

t.test('a POST body from a reused buffer arrives exactly, with its Content-Length', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  let seen: http.IncomingHttpHeaders = {};
  const url = await httpServer(t, (req, res) => {
    seen = req.headers;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const got = Buffer.concat(parts);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, same: got.equals(data), length: got.length }));
    });
  });
  const log = { sends: 0 };
  const res = await directRequest({ method: 'POST', url: new URL('/file/chunk?offset=0', url), headers: { 'girder-token': 'tok' }, timeoutMs: 10_000, body: reusedBody(data, 64 * 1024, log) });
  t.equal(res.statusCode, 200);
  t.same(JSON.parse(await res.body.text()), { method: 'POST', same: true, length: data.length }, 'the server got every byte as sent');
  t.equal(seen['content-length'], String(data.length));
  t.equal(seen['girder-token'], 'tok');
  t.equal(log.sends, Math.ceil(data.length / (64 * 1024)), 'every piece was taken by the socket');
});

t.test('an answer before the body is sent (a refusal): it is the answer, and the rest of the body is not sent', async (t) => {
  const url = await httpServer(t, (_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json', connection: 'close' });
    res.end('{"message":"Server has received 0 bytes, but client sent offset 5.","type":"rest"}');
  });
  const log: { sends: number; refused?: unknown } = { sends: 0 };
  const big = randomBytes(64 * 1024 * 1024);
  const res = await within(directRequest({ method: 'POST', url, headers: {}, timeoutMs: 10_000, body: reusedBody(big, 1024 * 1024, log) }), 10_000, 'the answer');
  if (typeof res === 'string') return t.fail(res);
  t.equal(res.statusCode, 400);
  t.match(JSON.parse(await res.body.text()), { message: /client sent offset/ });
  await sleep(50);
  t.ok(log.refused !== undefined, 'the body writer was told to stop');
  t.ok(log.sends < 64, `only part of the body was sent (${log.sends} of 64 MiB)`);
});

t.test('a connection cut while the body is sent fails the request; so does the body source failing', async (t) => {
  const cut = net.createServer((socket) => {
    let got = 0;
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got > 1024 * 1024) socket.destroy();
    });
  });
  await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => cut.close(() => resolve())));
  const url = new URL(`http://127.0.0.1:${(cut.address() as AddressInfo).port}/file/chunk`);
  const failed = await directRequest({ method: 'POST', url, headers: {}, timeoutMs: 10_000, body: reusedBody(randomBytes(32 * 1024 * 1024), 256 * 1024, { sends: 0 }) }).then(() => 'answered', (e: unknown) => e);
  t.match(failed, { code: /ECONNRESET|EPIPE/ }, 'a cut connection is a socket error');

  const sink = await httpServer(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  const broken: DirectRequestBody = {
    length: 1000,
    async writeTo(send) {
      await send(Buffer.alloc(100));
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    },
  };
  t.match(await directRequest({ method: 'PUT', url: sink, headers: {}, timeoutMs: 10_000, body: broken }).catch((e: unknown) => e), { code: 'EIO' }, 'the source failing fails the request with its error');
});

t.test('aborting while the body is sent closes the connection', async (t) => {
  const slow = await httpServer(t, (req) => {
    req.pause(); // never reads: the socket fills and the writer waits
  });
  const abort = new AbortController();
  const log: { sends: number; refused?: unknown } = { sends: 0 };
  const pending = directRequest({ method: 'POST', url: slow, headers: {}, timeoutMs: 10_000, signal: abort.signal, body: reusedBody(randomBytes(64 * 1024 * 1024), 1024 * 1024, log) }).then(() => 'answered', (e: unknown) => e);
  await sleep(200);
  abort.abort();
  t.match(await within(pending, 5_000, 'the abort'), { code: 'ABORT_ERR' });
  await sleep(20);
  t.ok(log.refused !== undefined, 'the body writer was told to stop');
});
