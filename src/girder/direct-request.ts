/**
 * A request on a connection of its own whose bodies move through reused buffers, for long
 * downloads and uploads. The answer is read straight off the socket (the `onread` option of net
 * and tls sockets); a request body is written from buffers its source reuses once the socket has
 * taken them. undici, like node's socket streams, hands out a new 64 KiB buffer for every socket
 * read, and an upload body stream makes a new buffer for every piece: at hundreds of MB/s that
 * churn of external memory sets off a full garbage collection every few tens of milliseconds,
 * which costs more CPU than the transfer itself (`npm run bench -- --only transport-read` measures
 * both transports on the same read). Only what such a transfer needs: one request per
 * connection (`Connection: close`), a request body of known length, an answer body framed by
 * Content-Length, by chunked encoding or by the end of the connection.
 */
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { DirectBody, framingOf, socketError } from './direct-body.js';

/** A request body of known length, written by its source through reused buffers. */
export interface DirectRequestBody {
  /** Bytes of the body (its Content-Length). */
  readonly length: number;
  /**
   * Write exactly `length` bytes through `send`, one buffer at a time; `send` resolves once the
   * socket has taken the buffer, which may then be reused. It rejects once the answer has come
   * or the connection failed: stop then.
   */
  writeTo(send: (bytes: Buffer) => Promise<void>): Promise<void>;
}

export interface DirectRequestOptions {
  /** Default GET. */
  method?: 'GET' | 'POST' | 'PUT';
  url: URL;
  headers: Record<string, string>;
  /** No byte for this long (connecting, waiting for the head, or reading an unpaused body): an ETIMEDOUT error. */
  timeoutMs: number;
  /** Trusted certificates for https (default: node's). */
  ca?: string[];
  /** Size of each read buffer (default 256 KiB). */
  readBytes?: number;
  /** Aborting it closes the connection: the answer rejects, or the body fails with an ABORT_ERR error. */
  signal?: AbortSignal;
  body?: DirectRequestBody;
}

export interface DirectResponse {
  readonly statusCode: number;
  /** Lower-case names. */
  readonly headers: IncomingHttpHeaders;
  readonly body: DirectBody;
}

const MAX_HEAD_BYTES = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Send one request on a new connection; resolves once the answer's head is in, which may come
 * before the whole request body is sent (a refusal): the rest of the body is then not sent.
 */
export function directRequest(opts: DirectRequestOptions): Promise<DirectResponse> {
  const { url } = opts;
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') return Promise.reject(new Error(`not an http(s) URL: ${url.href}`));
  const lines = [`${opts.method ?? 'GET'} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [name, value] of Object.entries(opts.headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) return Promise.reject(new Error(`header ${name} holds a line break`));
    lines.push(`${name}: ${value}`);
  }
  if (opts.body !== undefined) lines.push(`Content-Length: ${opts.body.length}`);
  lines.push('Connection: close', '', '');
  const request = lines.join('\r\n');

  const size = opts.readBytes ?? 256 * 1024;
  const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  let current = 0;
  let heldBuffer = -1;
  let head: Buffer | null = Buffer.alloc(0);
  let body: DirectBody | null = null;
  /** A request body is being written and is not all sent. */
  let bodyUnsent = false;

  return new Promise<DirectResponse>((resolve, reject) => {
    let settled = false;
    const failHead = (err: Error): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(err);
    };

    const onread = (nread: number, buf: Buffer): boolean => {
      if (body === null) return readHead(buf, nread);
      const wasPaused = body.isPaused();
      const more = body.onBytes(buf, 0, nread);
      // A pause while this read was handed out keeps views of it: the next read goes to the other
      // buffer. (Bytes that arrive while paused are copied: they pin nothing.)
      if (!wasPaused) heldBuffer = more ? -1 : current;
      return more;
    };
    const nextBuffer = (): Buffer => {
      if (heldBuffer === current) current = 1 - current;
      return buffers[current] as Buffer;
    };

    const readHead = (buf: Buffer, nread: number): boolean => {
      head = Buffer.concat([head as Buffer, buf.subarray(0, nread)]);
      for (;;) {
        const at = head.indexOf(CRLFCRLF);
        if (at < 0) {
          if (head.length > MAX_HEAD_BYTES) failHead(socketError('the answer head is too long', 'HPE_HEADER_OVERFLOW'));
          return true;
        }
        let parsed: { statusCode: number; headers: IncomingHttpHeaders };
        try {
          parsed = parseHead(head.subarray(0, at).toString('latin1'));
        } catch (err) {
          failHead(err as Error);
          return false;
        }
        const rest = head.subarray(at + 4);
        if (parsed.statusCode >= 100 && parsed.statusCode < 200) {
          head = rest; // an interim answer (100 Continue): the real one follows
          continue;
        }
        head = null;
        const b = new DirectBody(socket, opts.timeoutMs);
        try {
          b.setFraming(framingOf(parsed.statusCode, parsed.headers));
        } catch (err) {
          failHead(err as Error);
          return false;
        }
        body = b;
        settled = true;
        resolve({ ...parsed, body: b });
        // The body starts paused: what came with the head waits (a copy) for resume().
        b.onBytes(rest, 0, rest.length);
        return false;
      }
    };

    const onreadOpts: net.OnReadOpts = { buffer: nextBuffer, callback: onread };
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (secure ? 443 : 80));
    // node's tls takes `onread` as net does; @types/node 20 does not say so
    const tlsOpts: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host, port, servername: net.isIP(host) === 0 ? host : undefined, ca: opts.ca, onread: onreadOpts,
    };
    if (opts.signal?.aborted === true) {
      reject(socketError('the connection was closed before it was made', 'ABORT_ERR'));
      return;
    }
    const socket: net.Socket = secure ? tls.connect(tlsOpts) : net.connect({ host, port, onread: onreadOpts });
    const onAbort = (): void => {
      // The consumer did not ask for this (as it does with destroy()): it must hear of it.
      if (body === null) failHead(socketError('the connection was closed', 'ABORT_ERR'));
      else body.fail(socketError('the connection was closed', 'ABORT_ERR'));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => opts.signal?.removeEventListener('abort', onAbort));
    socket.setNoDelay(true);
    socket.setTimeout(opts.timeoutMs);
    socket.on('timeout', () => {
      if (body === null) failHead(socketError(`no answer within ${opts.timeoutMs} ms`, 'ETIMEDOUT'));
      else if (!body.isPaused()) body.fail(socketError(`no data within ${opts.timeoutMs} ms`, 'ETIMEDOUT'));
    });
    socket.on('error', (err: Error) => {
      if (body === null) failHead(err);
      // The answer came while the request body was still going out (a refusal) and the peer then
      // closed: our write failing is that close, and the answer's bytes already in count.
      else if (bodyUnsent && /^(EPIPE|ECONNRESET)$/.test((err as NodeJS.ErrnoException).code ?? '')) body.onSocketEnd();
      else body.fail(err);
    });
    socket.on('end', () => {
      if (body === null) failHead(socketError('the connection closed before an answer', 'ECONNRESET'));
      else body.onSocketEnd();
    });
    socket.on('close', () => {
      if (body === null) failHead(socketError('the connection closed before an answer', 'ECONNRESET'));
    });
    socket.write(request);
    const requestBody = opts.body;
    if (requestBody === undefined) return;
    const send = (bytes: Buffer): Promise<void> => new Promise<void>((done, refuse) => {
      if (settled || socket.destroyed) {
        refuse(socketError('the request body is no longer wanted', 'ABORT_ERR'));
        return;
      }
      socket.write(bytes, (err) => (err ? refuse(err) : done()));
    });
    bodyUnsent = true;
    requestBody.writeTo(send).then(
      () => {
        bodyUnsent = false;
      },
      (err: unknown) => failHead(err instanceof Error ? err : new Error(String(err))),
    );
  });
}

function parseHead(text: string): { statusCode: number; headers: IncomingHttpHeaders } {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (m === null) throw socketError(`not an HTTP/1.x answer: "${(lines[0] ?? '').slice(0, 80)}"`, 'HPE_INVALID_CONSTANT');
  const headers: IncomingHttpHeaders = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw socketError(`bad header line "${line.slice(0, 80)}"`, 'HPE_INVALID_HEADER_TOKEN');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers[name];
    if (before === undefined) headers[name] = value;
    else if (name === 'set-cookie') headers[name] = [...(Array.isArray(before) ? before : [before]), value];
    else headers[name] = `${String(before)}, ${value}`;
  }
  return { statusCode: Number(m[1]), headers };
}
