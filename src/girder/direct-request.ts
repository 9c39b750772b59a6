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
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

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
const MAX_TEXT_BYTES = 1024 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** A socket failure with the code networkError() understands. */
function socketError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

type Framing =
  | { kind: 'length'; remaining: number }
  | { kind: 'close' }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer' ; line: string; remaining: number }
  | { kind: 'none' };

/**
 * The body of a DirectResponse. It starts paused: attach listeners, then resume(). A 'data' chunk
 * is a view of a reused buffer: use or copy it before the listener returns, or pause() in the
 * listener, which keeps the chunk (and the rest of its read) intact until resume(). Then 'end'
 * (never while paused), or 'error' (a cut connection, a timeout, an abort). A failure is never
 * lost: it is kept (`errored`); when no 'error' listener heard it as it happened, it is emitted
 * once one is added; and every resume() of a failed body emits it (again). Nothing is emitted
 * after destroy().
 */
export class DirectBody extends EventEmitter {
  private paused = true;
  private ended = false;
  /** The body is complete, but it ended while paused: 'end' waits for resume(). */
  private endPending = false;
  private gone = false;
  /** Why the body failed (null: it did not, or the consumer destroyed it). */
  private failure: Error | null = null;
  /** The failure came when no 'error' listener could hear it: emit it when one can. */
  private failurePending = false;
  private framing: Framing = { kind: 'none' };
  /** Unparsed bytes of a read that arrived while paused, or that a pause interrupted. */
  private held: Buffer[] = [];
  private resuming = false;

  /** @internal */
  constructor(private readonly socket: net.Socket, private readonly timeoutMs: number) {
    super();
    this.on('newListener', (event: string | symbol) => {
      // after on() has added it (newListener comes before), and outside the caller's setup
      if (event === 'error' && this.failurePending) process.nextTick(() => this.reportFailure());
    });
  }

  /** Failed or destroyed: no data or 'end' will come. */
  get destroyed(): boolean {
    return this.gone;
  }

  /** The failure that ended the body (null while it lives, after an 'end', or after destroy()). */
  get errored(): Error | null {
    return this.failure;
  }

  isPaused(): boolean {
    return this.paused;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (this.gone) {
      // A failed body has nothing more to give but its failure: say so, or the consumer waits for ever.
      if (this.failure !== null) this.failurePending = true;
      this.reportFailure();
      return this;
    }
    if (!this.paused) return this;
    this.paused = false;
    if (this.resuming) return this;
    this.resuming = true;
    try {
      while (this.held.length > 0 && !this.paused && !this.gone) {
        const chunk = this.held.shift() as Buffer;
        const rest = this.parse(chunk, 0, chunk.length);
        if (rest !== null) this.held.unshift(rest);
      }
    } finally {
      this.resuming = false;
    }
    if (this.paused || this.gone) return this;
    if (this.endPending) {
      this.endPending = false;
      this.emit('end');
    } else if (!this.ended) {
      this.socket.setTimeout(this.timeoutMs); // the idle time while paused does not count
      this.socket.resume();
    }
    return this;
  }

  /** Close the connection; no event follows. */
  destroy(): this {
    if (this.gone) return this;
    this.gone = true;
    this.held = [];
    this.socket.destroy();
    return this;
  }

  /** Drop the body (the connection is not reused anyway). */
  async dump(): Promise<void> {
    this.destroy();
  }

  /** The whole body as UTF-8 (at most 1 MiB is kept). */
  text(): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      let kept = 0;
      this.on('data', (chunk: Buffer) => {
        if (kept >= MAX_TEXT_BYTES) return;
        const part = Buffer.from(chunk.subarray(0, MAX_TEXT_BYTES - kept));
        parts.push(part);
        kept += part.length;
      });
      this.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
      this.on('error', reject);
      this.resume();
    });
  }

  /** @internal The head was parsed: how the body is framed. */
  setFraming(framing: Framing): void {
    this.framing = framing;
    if (framing.kind === 'none' || (framing.kind === 'length' && framing.remaining === 0)) this.finish();
  }

  /** @internal Bytes read from the socket. False: stop reading (paused, or done). */
  onBytes(buf: Buffer, off: number, end: number): boolean {
    if (this.gone || this.ended) return false;
    if (this.paused || this.resuming) {
      // Arrived while paused (a TLS record may hold more than one read): keep a copy.
      if (end > off) this.held.push(Buffer.from(buf.subarray(off, end)));
      return false;
    }
    const rest = this.parse(buf, off, end);
    if (rest === null) return !this.paused && !this.ended && !this.gone;
    this.held.push(rest);
    return false;
  }

  /** @internal The peer closed the connection. */
  onSocketEnd(): void {
    if (this.gone || this.ended) return;
    if (this.held.length > 0) {
      // Parse what is left first; the end is noticed once it is consumed.
      this.held.push(Buffer.alloc(0));
      return;
    }
    if (this.framing.kind === 'close') this.finish();
    else this.fail(socketError('the connection closed before the end of the body', 'ECONNRESET'));
  }

  /** @internal */
  fail(err: Error): void {
    if (this.gone || this.ended) return;
    this.gone = true;
    this.failure = err;
    this.failurePending = true;
    this.held = [];
    this.socket.destroy();
    this.reportFailure();
  }

  /** Emit the failure not heard yet, if someone listens now. */
  private reportFailure(): void {
    if (!this.failurePending || this.listenerCount('error') === 0) return;
    this.failurePending = false;
    this.emit('error', this.failure as Error);
  }

  private finish(): void {
    if (this.ended || this.gone) return;
    this.ended = true;
    this.socket.destroy();
    if (this.paused) this.endPending = true;
    else this.emit('end');
  }

  /**
   * Emit the body bytes in [off, end) of `buf`; returns what is left unparsed when the consumer
   * paused (a view of `buf`, intact while the socket is stopped), else null.
   */
  private parse(buf: Buffer, off: number, end: number): Buffer | null {
    if (end === off && buf.length === 0) {
      // the end-of-connection marker queued by onSocketEnd
      if (this.framing.kind === 'close') this.finish();
      else this.fail(socketError('the connection closed before the end of the body', 'ECONNRESET'));
      return null;
    }
    const f = this.framing;
    while (off < end && !this.ended && !this.gone) {
      if (this.paused) return buf.subarray(off, end);
      if (f.kind === 'length') {
        const n = Math.min(end - off, f.remaining);
        f.remaining -= n;
        if (n > 0) this.emit('data', buf.subarray(off, off + n));
        if (f.remaining === 0) this.finish();
        return null; // bytes past Content-Length are not ours
      }
      if (f.kind === 'close') {
        this.emit('data', buf.subarray(off, end));
        return null;
      }
      if (f.kind !== 'chunked') return null;
      off = this.parseChunked(f, buf, off, end);
    }
    return null;
  }

  private parseChunked(f: Extract<Framing, { kind: 'chunked' }>, buf: Buffer, off: number, end: number): number {
    if (f.state === 'data') {
      const n = Math.min(end - off, f.remaining);
      f.remaining -= n;
      if (f.remaining === 0) f.state = 'data-end';
      this.emit('data', buf.subarray(off, off + n));
      return off + n;
    }
    // size line, the CRLF after a chunk, or trailer lines: byte by byte (they are short)
    const c = buf[off] as number;
    if (c !== 0x0a) {
      if (c !== 0x0d) f.line += String.fromCharCode(c);
      if (f.line.length > 1024) this.fail(socketError('a chunk header is too long', 'HPE_INVALID_CHUNK_SIZE'));
      return off + 1;
    }
    const line = f.line;
    f.line = '';
    if (f.state === 'data-end') {
      if (line !== '') this.fail(socketError('a chunk does not end with CRLF', 'HPE_INVALID_CHUNK_SIZE'));
      f.state = 'size';
    } else if (f.state === 'size') {
      const hex = (line.split(';')[0] ?? '').trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
        this.fail(socketError(`bad chunk size "${hex.slice(0, 20)}"`, 'HPE_INVALID_CHUNK_SIZE'));
      } else {
        f.remaining = parseInt(hex, 16);
        f.state = f.remaining === 0 ? 'trailer' : 'data';
      }
    } else if (line === '') {
      this.finish(); // the empty line after the trailers
    }
    return off + 1;
  }
}

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

function framingOf(status: number, headers: IncomingHttpHeaders): Framing {
  if (status === 204 || status === 304) return { kind: 'none' };
  const te = headers['transfer-encoding'];
  if (typeof te === 'string' && /(^|,)\s*chunked\s*$/i.test(te)) return { kind: 'chunked', state: 'size', line: '', remaining: 0 };
  const cl = headers['content-length'];
  if (typeof cl === 'string') {
    if (!/^\d{1,15}$/.test(cl)) throw socketError(`bad Content-Length "${cl}"`, 'HPE_INVALID_CONTENT_LENGTH');
    return { kind: 'length', remaining: Number(cl) };
  }
  return { kind: 'close' };
}
