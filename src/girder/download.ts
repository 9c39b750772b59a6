/** Range reads of a Girder file straight into the caller's buffer, checked and resumed. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { GirderError, isQuickFailure } from './girder-error.js';
import type { DownloadClient } from './transfer-client.js';
import type { DirectBody } from './direct-body.js';
import { responseError } from './failure.js';
import { retrying } from './retry.js';
import { redirectTargetsOf, storageErrorOf } from './presigned.js';
import type { FileRef } from './store.js';

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Read bytes [offset, offset+length) of `file` (clamped to its size) into `into` at `intoOffset`.
 * Resolves with the number of bytes read. A body cut mid-way is resumed from the byte reached;
 * quick failures (socket errors, 5xx) are retried with backoff, timeouts are not (failure.ts); an answer that does not match the request
 * (another size, another range) is an error, never data.
 */
export async function readRange(
  client: DownloadClient,
  file: FileRef,
  offset: number,
  length: number,
  into: Buffer,
  intoOffset = 0,
  onProgress?: (filled: number) => void,
): Promise<number> {
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0) {
    throw new RangeError(`invalid range: offset ${offset}, length ${length}`);
  }
  if (intoOffset < 0 || intoOffset + Math.min(length, Math.max(0, file.size - offset)) > into.length) {
    throw new RangeError('the buffer is too small for the range');
  }
  const end = Math.min(offset + length, file.size);
  if (offset >= end) return 0;
  const state: ReadState = { pos: offset, end, into, shift: intoOffset - offset, report: onProgress === undefined ? undefined : () => onProgress(state.pos - offset) };
  let before = state.pos;
  await retrying({
    retries: client.retries,
    isRetryable: isQuickFailure,
    // Progress resets the count: only consecutive fruitless attempts are limited.
    progressed: () => state.pos > before,
    pause: (failures, err) => client.pauseBeforeRetry(failures, err),
  }, async () => {
    while (state.pos < end) {
      before = state.pos;
      await fetchOnce(client, file, state);
    }
  });
  return state.pos - offset;
}

interface ReadState {
  /** Next file offset wanted. */
  pos: number;
  /** File offset to stop at (exclusive). */
  readonly end: number;
  readonly into: Buffer;
  /** Buffer index = file offset + shift. */
  readonly shift: number;
  /** Tells the caller that more bytes have landed. */
  readonly report: (() => void) | undefined;
}

/** One GET (following redirects), copying what arrives; advances state.pos as bytes land. */
async function fetchOnce(client: DownloadClient, file: FileRef, state: ReadState): Promise<void> {
  const { body, start, end: bodyEnd, where } = await openRange(client, file, state.pos, state.end);
  const stopAt = Math.min(bodyEnd, state.end);

  let at = start;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      client.countDownloaded(chunk.length);
      const from = Math.max(at, state.pos);
      const to = Math.min(at + chunk.length, stopAt);
      if (to > from) {
        chunk.copy(state.into, from + state.shift, from - at, to - at);
        state.pos = to;
        state.report?.();
      }
      at += chunk.length;
      // The rest is not wanted: drop it with the connection. A body that has all arrived is read to
      // its end instead: destroying it first made an AbortError, with its stack, per small file.
      if (state.pos >= stopAt && at < bodyEnd) break;
    }
  } catch (err) {
    // Every wanted byte landed: what broke after them (the end of a chunked body) costs nothing.
    if (state.pos < stopAt) throw client.transportError(err);
  } finally {
    if (!body.destroyed && at < bodyEnd) discard(body);
  }
  if (state.pos < stopAt) {
    client.countError();
    throw new GirderError(`${where}: the body ended at byte ${at} of ${bodyEnd}`, 0, 'network');
  }
}

/** What openRange needs of an answer's body: undici's, or a direct connection's (direct-request.ts). */
interface AnswerBody {
  dump(): Promise<unknown>;
  text(): Promise<string>;
  destroy(): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

interface Answer<B extends AnswerBody> {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: B;
}

/** An answer to a range GET whose headers were checked: its body carries bytes [start, end) of the file. */
export interface RangeBody<B = Dispatcher.ResponseData['body']> {
  readonly body: B;
  /** File offset of the body's first byte: the one asked for, or 0 when the server sent the whole file (200). */
  readonly start: number;
  /** File offset after the body's last byte. */
  readonly end: number;
  /** `GET /file/{id}/download`, for messages. */
  readonly where: string;
}

/**
 * Send one GET for bytes [from, to) of `file` (following redirects, resending the Range) and check
 * the answer's headers: another size is a 'stale' error, another range a 'malformed' one; either
 * way the body is dropped, never used. Non-2xx answers become GirderErrors.
 */
export function openRange(client: DownloadClient, file: FileRef, from: number, to: number): Promise<RangeBody> {
  return openWith(client, file, from, to, (path, headers) => client.send({ method: 'GET', path, headers }));
}

/** openRange on a connection of its own, read without a buffer per socket read (for long streams). */
export function openDirectRange(client: DownloadClient, file: FileRef, from: number, to: number): Promise<RangeBody<DirectBody>> {
  return openWith(client, file, from, to, (path, headers) => client.sendDirect({ path, headers }));
}

async function openWith<B extends AnswerBody>(
  client: DownloadClient, file: FileRef, from: number, to: number,
  send: (path: string, headers: Record<string, string>) => Promise<Answer<B>>,
): Promise<RangeBody<B>> {
  const range = `bytes=${from}-${to - 1}`;
  // A whole file is asked for without a Range: the server answers 200, and has no range to handle.
  const headers: Record<string, string> = from === 0 && to >= file.size ? { accept: '*/*' } : { range, accept: '*/*' };
  const apiPath = `/file/${encodeURIComponent(file.id)}/download`;
  const targets = redirectTargetsOf(client);

  // A URL Girder redirected this version to before (a presigned S3 URL): straight there.
  const kept = targets.get(file);
  if (kept !== undefined) {
    const res = await send(kept, headers).catch((err: unknown) => {
      targets.forget(file, kept);
      throw err;
    });
    if (res.statusCode === 200 || res.statusCode === 206) return checkAnswer(client, file, from, range, res, `GET ${apiPath} (redirected)`);
    // Expired, or the object is gone: Girder gives a new URL.
    await res.body.dump().catch(() => undefined);
    targets.forget(file, kept);
    client.log.debug({ fileId: file.id, status: res.statusCode }, 'the storage server refused a kept download URL; asking Girder again');
  }

  for (let round = 1; ; round++) {
    let target = apiPath;
    let res = await send(target, headers);
    for (let hops = 0; REDIRECTS.has(res.statusCode); hops++) {
      const location = header(res.headers, 'location');
      await res.body.dump().catch(() => undefined);
      const next = location === undefined ? undefined : new URL(location, hops === 0 ? client.apiUrl + apiPath : target);
      if (next === undefined || hops >= MAX_REDIRECTS || (next.protocol !== 'http:' && next.protocol !== 'https:')) {
        client.countError();
        const why = next === undefined ? 'without a Location' : hops >= MAX_REDIRECTS ? 'too often' : `to a ${next.protocol} URL`;
        throw new GirderError(`GET ${apiPath} redirected ${why}`, res.statusCode, 'malformed');
      }
      // The Range goes along; the Girder token does not (absolute URLs are sent without it).
      target = next.href;
      res = await send(target, headers);
    }
    const redirected = target !== apiPath;
    const where = redirected ? `GET ${apiPath} (redirected)` : `GET ${apiPath}`;
    if (res.statusCode === 200 || res.statusCode === 206) {
      const answer = checkAnswer(client, file, from, range, res, where);
      if (redirected) targets.remember(file, target);
      return answer;
    }
    const text = await client.readText(res, undefined);
    const contentType = header(res.headers, 'content-type') ?? '';
    if (!redirected) {
      client.countError();
      throw responseError('GET', apiPath, res.statusCode, contentType, text);
    }
    if (res.statusCode === 416) {
      // S3 answers a range past the object's end with 416 (Girder itself sends the whole file).
      client.countError();
      throw new GirderError(`${where}: file ${file.id} is now shorter than ${file.size} bytes (416 for ${range})`, 416, 'stale');
    }
    // The storage server refused the URL Girder just gave (it expired on the way, say): ask once more.
    if (round < 2 && res.statusCode >= 400 && res.statusCode < 500) {
      client.log.debug({ fileId: file.id, status: res.statusCode }, 'the storage server refused a new download URL; asking Girder again');
      continue;
    }
    client.countError();
    const why = storageErrorOf(text) ?? `${res.statusCode} ${contentType || 'without a content type'}`;
    throw new GirderError(`${where}: the storage server answered ${res.statusCode} (${why})`, res.statusCode, 'storage');
  }
}

/**
 * Check a 200 or 206 answer's headers against the range asked for: another size is a 'stale'
 * error, another range a 'malformed' one; either way the body is dropped, never used.
 */
function checkAnswer<B extends AnswerBody>(
  client: DownloadClient, file: FileRef, from: number, range: string, res: Answer<B>, where: string,
): RangeBody<B> {
  const body = res.body;
  const fail = (message: string, type: string): never => {
    discard(body);
    client.countError();
    throw new GirderError(`${where}: ${message}`, res.statusCode, type);
  };

  if (res.statusCode === 206) {
    const contentRange = header(res.headers, 'content-range') ?? '';
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange.trim());
    if (m === null) return fail(`unusable Content-Range "${contentRange}" for ${range}`, 'malformed');
    const [first, last, total] = [Number(m[1]), Number(m[2]), m[3] === '*' ? file.size : Number(m[3])];
    if (total !== file.size) return fail(`file ${file.id} is now ${total} bytes, not ${file.size}`, 'stale');
    if (first !== from || last < first) return fail(`Content-Range "${contentRange}" does not match ${range}`, 'malformed');
    // A body shorter than its range would look like a cut connection, and be retried in vain.
    const declared = header(res.headers, 'content-length');
    if (declared !== undefined && Number(declared) !== last - first + 1) {
      return fail(`Content-Length ${declared} does not match Content-Range "${contentRange}"`, 'malformed');
    }
    return { body, start: first, end: Math.min(last + 1, file.size), where };
  }
  // 200: the whole file (Girder does this for empty files; a server may ignore Range).
  const declared = header(res.headers, 'content-length');
  if (declared !== undefined && Number(declared) !== file.size) {
    return fail(`file ${file.id} is now ${declared} bytes, not ${file.size}`, 'stale');
  }
  return { body, start: 0, end: file.size, where };
}

/** Drop a body we will not read (closing its connection) without an unhandled 'error' event. */
export function discard(body: { destroy(): unknown; on(event: 'error', listener: (err: Error) => void): unknown }): void {
  body.on('error', () => undefined);
  body.destroy();
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
