/**
 * The answer body of a request on a connection of its own (direct-request.ts): how it is framed
 * (Content-Length, chunked encoding, or the end of the connection), the chunked decoder, and the
 * paused-by-default event stream its reader consumes through reused buffers.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type net from 'node:net';

const MAX_TEXT_BYTES = 1024 * 1024;

/** A socket failure with the code networkError() understands. */
export function socketError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export type Framing =
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

/** How the body of an answer with this status and these headers ends. */
export function framingOf(status: number, headers: IncomingHttpHeaders): Framing {
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
