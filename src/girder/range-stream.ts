/**
 * One long read of a Girder file, pulled by its consumer: a few long range GETs instead of many
 * short ones, read only as fast as the consumer asks (TCP backpressure), checked and resumed like
 * readRange.
 */
import { GirderError, isQuickFailure } from './girder-error.js';
import type { DownloadClient } from './transfer-client.js';
import { discard, openDirectRange, openRange, type RangeBody } from './download.js';
import { isAbort } from './failure.js';
import { RetryCount } from './retry.js';
import type { FileRef, RangeStream } from './store.js';

const MiB = 1024 * 1024;

export interface RangeStreamOptions {
  /** Bytes of the first GET (default 8 MiB); each next GET asks for twice as many, up to `maxRequestBytes`. */
  firstRequestBytes?: number;
  /**
   * Bytes of the longest GET (default 64 MiB). Girder keeps reading a GET's range from its disk
   * after the client hangs up, so an abandoned GET costs the server up to this much work.
   */
  maxRequestBytes?: number;
  /** Send the next GET when this many bytes of the current one are left (default 4 MiB): its start then costs no wait. */
  openAheadBytes?: number;
  /**
   * Read bodies straight off their own connections (direct-request.ts) rather than through undici
   * (default true): no buffer per socket read, far less garbage collection.
   */
  direct?: boolean;
}

/** A GET's body as the stream uses it: undici's, or a direct connection's. */
interface StreamBody {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  destroy(): unknown;
  /** Failed or destroyed: no more data or 'end' will come. */
  readonly destroyed: boolean;
  /** Why it failed, when it did. */
  readonly errored: Error | null;
}

interface Wanted {
  readonly into: Buffer;
  /** Bytes this read gets (less than into.length only at the end of the range). */
  readonly len: number;
  filled: number;
  readonly resolve: (n: number) => void;
  readonly reject: (err: unknown) => void;
}

/** The GET being read. */
interface Segment {
  readonly body: StreamBody;
  /** File offset of the next body byte to arrive. */
  at: number;
  /** File offset where this GET's useful bytes end. */
  readonly stop: number;
  /** End of the range this GET asked for (a cut GET is resumed up to here). */
  readonly to: number;
  /** File offset after the body's last byte. */
  readonly bodyEnd: number;
  /**
   * Part of a chunk that arrived when no read was waiting (bytes [leftOff, leftEnd)); the body is
   * paused meanwhile, which keeps a direct connection's chunk intact.
   */
  leftover: Buffer | null;
  leftOff: number;
  leftEnd: number;
  done: boolean;
}

/** A GET sent before its bytes are wanted. */
interface Ahead {
  readonly from: number;
  readonly to: number;
  readonly opened: Promise<RangeBody<StreamBody>>;
}

const noop = (): void => {};

export class HttpRangeStream implements RangeStream {
  /** File offset of the next byte handed to a read. */
  private pos: number;
  /** File offset after the bytes the queued reads will take. */
  private queuedEnd: number;
  private readonly end: number;
  private readonly queue: Wanted[] = [];
  private seg: Segment | null = null;
  private ahead: Ahead | null = null;
  /** A GET is being sent (or a retry is waiting). */
  private opening = false;
  /** Resume a cut GET up to here instead of planning a new one. */
  private resumeTo = -1;
  private nextLength: number;
  private readonly maxLength: number;
  private readonly openAheadBytes: number;
  private readonly direct: boolean;
  /**
   * Why the last GET was cut, for openNext() to count and back off. A field, not an argument: a
   * GET can be cut while openNext() attaches it (its body ends or fails as it is resumed), when
   * a second openNext() call would return at once and lose it.
   */
  private cutError: GirderError | null = null;
  /** Consecutive fruitless attempts (a cut or a failed GET) at one position. */
  private readonly retries: RetryCount<GirderError>;
  private failedAt = -1;
  private failure: unknown = null;
  private closed = false;

  constructor(
    private readonly client: DownloadClient,
    private readonly file: FileRef,
    offset: number,
    length: number,
    opts: RangeStreamOptions = {},
  ) {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid range: offset ${offset}, length ${length}`);
    }
    this.pos = offset;
    this.end = Math.max(offset, Math.min(offset + length, file.size));
    this.retries = new RetryCount({
      retries: client.retries,
      isRetryable: isQuickFailure,
      // Progress resets the count: only consecutive fruitless attempts are limited.
      progressed: () => {
        const moved = this.pos > this.failedAt;
        this.failedAt = this.pos;
        return moved;
      },
      pause: (failures, err) => client.pauseBeforeRetry(failures, err),
    });
    this.queuedEnd = this.pos;
    this.maxLength = Math.max(1, opts.maxRequestBytes ?? 64 * MiB);
    this.nextLength = Math.min(this.maxLength, Math.max(1, opts.firstRequestBytes ?? 8 * MiB));
    this.openAheadBytes = Math.max(0, opts.openAheadBytes ?? 4 * MiB);
    this.direct = opts.direct ?? true;
  }

  read(into: Buffer): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    if (this.failure !== null) return Promise.reject(this.failure);
    const len = Math.min(into.length, this.end - this.queuedEnd);
    if (len <= 0) return Promise.resolve(0);
    this.queuedEnd += len;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ into, len, filled: 0, resolve, reject });
      this.pump();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropGets();
    this.rejectAll(closedError());
  }

  /** Get bytes flowing towards the queued reads. */
  private pump(): void {
    const seg = this.seg;
    if (seg !== null) {
      if (seg.leftover !== null) {
        const chunk = seg.leftover;
        seg.leftover = null;
        this.consume(seg, chunk, seg.leftOff, seg.leftEnd);
        if (seg.leftover !== null || this.seg !== seg) return;
      }
      if (seg.body.isPaused()) seg.body.resume();
      return;
    }
    if (!this.opening && this.pos < this.end) void this.openNext();
  }

  private onData(seg: Segment, chunk: Buffer): void {
    if (seg.done) return;
    this.client.countDownloaded(chunk.length);
    const chunkStart = seg.at;
    seg.at += chunk.length;
    // A 200 answer starts at byte 0: skip what was handed out already.
    const off = chunkStart < this.pos ? Math.min(chunk.length, this.pos - chunkStart) : 0;
    const usable = Math.max(0, Math.min(chunk.length, seg.stop - chunkStart));
    if (usable > off) this.consume(seg, chunk, off, usable);
  }

  /** Hand chunk bytes [off, usable) to the queued reads; keep what nobody waits for and pause. */
  private consume(seg: Segment, chunk: Buffer, off: number, usable: number): void {
    const queue = this.queue;
    while (off < usable) {
      const w = queue[0];
      if (w === undefined) {
        seg.leftover = chunk;
        seg.leftOff = off;
        seg.leftEnd = usable;
        seg.body.pause();
        return;
      }
      const n = Math.min(usable - off, w.len - w.filled);
      chunk.copy(w.into, w.filled, off, off + n);
      w.filled += n;
      off += n;
      this.pos += n;
      if (w.filled === w.len) {
        queue.shift();
        w.resolve(w.len);
      }
    }
    if (this.pos >= seg.stop) {
      this.finish(seg);
      return;
    }
    if (this.ahead === null && seg.to < this.end && seg.stop - this.pos <= this.openAheadBytes) {
      const from = seg.to;
      const to = this.plan(from);
      const opened = this.open(from, to);
      // Its socket may fail before anyone reads it: that must not be an unhandled 'error'.
      opened.then((r) => r.body.on('error', noop), noop);
      this.ahead = { from, to, opened };
    }
  }

  /** The GET delivered all it was asked for: go on with the next one. */
  private finish(seg: Segment): void {
    seg.done = true;
    this.seg = null;
    // A 200 answer carries the whole file: drop what is not wanted with the connection.
    if (seg.stop < seg.bodyEnd) discard(seg.body);
    if (this.pos < this.end) void this.openNext();
  }

  /** The GET ended early or failed: resume from the byte reached, or give up. */
  private cut(seg: Segment, err: unknown): void {
    if (seg.done) return;
    seg.done = true;
    discard(seg.body);
    if (this.closed || this.seg !== seg) return;
    this.seg = null;
    this.resumeTo = seg.to;
    this.cutError = this.errorOf(err);
    void this.openNext();
  }

  /** Send the GET for the bytes from `pos` on (after the backoff of a cut, `cutError`), retrying. */
  private async openNext(): Promise<void> {
    if (this.opening) return; // the running loop sees the cut (seg is null again) and its cutError
    this.opening = true;
    try {
      let err: GirderError | null = null;
      while (!this.closed && this.failure === null && this.seg === null && this.pos < this.end) {
        if (err === null && this.cutError !== null) {
          err = this.cutError;
          this.cutError = null;
        }
        if (err !== null) {
          await this.retries.failed(err);
          if (this.closed) return;
          err = null;
        }
        const from = this.pos;
        let to: number;
        let opened: Promise<RangeBody<StreamBody>>;
        const ahead = this.ahead;
        if (this.resumeTo >= 0) {
          to = this.resumeTo; // a cut GET: the one sent ahead (if any) follows it
          opened = this.open(from, to);
        } else if (ahead !== null && ahead.from === from) {
          this.ahead = null;
          ({ to, opened } = ahead);
        } else {
          this.ahead = null;
          if (ahead !== null) void ahead.opened.then((r) => discard(r.body), noop);
          to = this.plan(from);
          opened = this.open(from, to);
        }
        let got: RangeBody<StreamBody>;
        try {
          got = await opened;
        } catch (e) {
          this.resumeTo = to;
          err = this.errorOf(e);
          continue;
        }
        if (this.closed) {
          discard(got.body);
          return;
        }
        this.resumeTo = -1;
        this.attach(got, to);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.opening = false;
    }
  }

  /** A failure as a GirderError; an abort (the client is closing) is one no retry can help. */
  private errorOf(err: unknown): GirderError {
    if (err instanceof GirderError) return err;
    if (isAbort(err)) return new GirderError('the connection was closed: the Girder client is closing', 0, 'aborted', undefined, { cause: err });
    return this.client.transportError(err);
  }

  private open(from: number, to: number): Promise<RangeBody<StreamBody>> {
    return this.direct ? openDirectRange(this.client, this.file, from, to) : openRange(this.client, this.file, from, to);
  }

  private attach(got: RangeBody<StreamBody>, to: number): void {
    const seg: Segment = {
      body: got.body, at: got.start, stop: Math.min(got.end, this.end), to, bodyEnd: got.end, leftover: null, leftOff: 0, leftEnd: 0, done: false,
    };
    this.seg = seg;
    got.body.on('data', (chunk: Buffer) => this.onData(seg, chunk));
    got.body.on('end', () => {
      // Every byte arrived; some may still wait for a read (undici ends a body whose last chunk
      // was handed out, even when the stream paused it): consume() finishes the segment.
      if (seg.done || seg.at >= seg.stop) return;
      this.client.countError();
      this.cut(seg, new GirderError(`${got.where}: the body ended at byte ${seg.at} of ${got.end}`, 0, 'network'));
    });
    got.body.on('error', (err: unknown) => this.cut(seg, err));
    if (got.body.destroyed) {
      // It died before anyone read it (a GET sent ahead whose connection failed while it was
      // parked): its 'error' went to the stand-in listener, and resuming it would wait for ever.
      this.cut(seg, got.body.errored ?? Object.assign(new Error('the connection closed before the body was read'), { code: 'ECONNRESET' }));
      return;
    }
    got.body.resume();
  }

  /** End of the next GET from `from`; GETs grow to the longest as the stream goes on. */
  private plan(from: number): number {
    const to = Math.min(this.end, from + this.nextLength);
    this.nextLength = Math.min(this.maxLength, this.nextLength * 2);
    return to;
  }

  private fail(err: unknown): void {
    if (this.closed || this.failure !== null) return;
    this.failure = err;
    this.dropGets();
    this.rejectAll(err);
  }

  private dropGets(): void {
    const seg = this.seg;
    this.seg = null;
    if (seg !== null) {
      seg.done = true;
      discard(seg.body);
    }
    const ahead = this.ahead;
    this.ahead = null;
    if (ahead !== null) void ahead.opened.then((r) => discard(r.body), noop);
  }

  private rejectAll(err: unknown): void {
    const waiting = this.queue.splice(0);
    for (const w of waiting) w.reject(err);
  }
}

function closedError(): GirderError {
  return new GirderError('the range stream was closed', 0, 'aborted');
}
