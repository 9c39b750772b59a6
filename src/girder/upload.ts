/** Chunked, resumable uploads from a local file: new files (POST /file) and new contents (PUT /file/{id}/contents). */
import { GirderError, isTransient } from './girder-error.js';
import { retrying } from './retry.js';
import type { UploadClient } from './transfer-client.js';
import { isMultipartWithoutParts, isSingleChunkRefusal, multipart, planFromOffset, planFromUpload, type ChunkPlan } from './chunk-plan.js';
import { asArray, decodeFile, decodeItem, decodeUpload, isFileDocument } from './decode.js';
import { isAbort } from './failure.js';
import { guessMimeType } from './mime.js';
import { SourceFile } from './source-file.js';
import type { FileDoc, UploadHooks, UploadSource } from './types.js';

/** girder_client's chunk size: safe on filesystem and S3 assetstores (girder-api.md section 4). */
export const CHUNK_SIZE = 64 * 1024 * 1024;
/**
 * A new file under Girder's minimum chunk size (5 MiB) goes as the body of POST /file: one request.
 * Larger ones start an upload first, whose id lets a cut transfer resume from the bytes Girder has
 * (a body cut on POST /file leaves an upload nobody knows the id of: it starts over).
 */
export const ONE_REQUEST_MAX = 5 * 1024 * 1024;
/** Report progress at least this often while a chunk streams. */
const PROGRESS_STEP = 4 * 1024 * 1024;

export type UploadTarget =
  /** A new file in an item, or in a folder (Girder then makes an item of the file's name for it). */
  | { kind: 'new'; parentType: 'folder' | 'item'; parentId: string; name: string; mimeType?: string }
  | { kind: 'replace'; fileId: string };

export interface UploadOptions {
  /**
   * Bytes per chunk; Girder refuses non-final chunks under 5 MiB. Default CHUNK_SIZE. An S3
   * assetstore may want other cuts, and says so (chunk-plan.ts).
   */
  chunkSize?: number;
}

/**
 * Upload `source` to `target` and resolve with the file document. Chunks stream from disk (memory
 * stays bounded). A failed chunk is resent from the server's offset, with backoff, up to the
 * client's retries; then a transient GirderError is thrown (the upload id stays resumable).
 */
export async function upload(
  client: UploadClient,
  target: UploadTarget,
  source: UploadSource,
  hooks: UploadHooks = {},
  options: UploadOptions = {},
): Promise<FileDoc> {
  const signal = hooks.signal;
  signal?.throwIfAborted();
  const chunkSize = options.chunkSize ?? CHUNK_SIZE;
  const file = source.size > 0 ? await SourceFile.open(source) : undefined;
  try {
    let uploadId: string | undefined;
    let offset = 0;
    let plan: ChunkPlan = { single: false, chunkSize };
    if (hooks.resumeUploadId !== undefined && source.size > 0) {
      const resumed = await serverOffset(client, hooks.resumeUploadId, source.size, chunkSize, signal);
      if (resumed !== null && resumed.offset < source.size) {
        uploadId = hooks.resumeUploadId;
        offset = resumed.offset;
        plan = resumed.plan ?? plan;
        client.log.info({ uploadId, offset, size: source.size }, 'resuming an upload');
      } else {
        client.log.info({ uploadId: hooks.resumeUploadId }, 'the server no longer knows the upload; starting over');
      }
    }
    if (uploadId === undefined && target.kind === 'new' && file !== undefined && source.size < Math.min(chunkSize, ONE_REQUEST_MAX)) {
      // The whole file as the body of POST /file: Girder makes the file (and its item) in one request.
      const answer = await postWithBody(client, target, file, source, hooks);
      if (isFileDocument(answer)) {
        hooks.onProgress?.(source.size, source.size);
        return decodeFile(answer);
      }
      // Taken as a first chunk only (a server that wants other cuts): go on from what it counted.
      const started = decodeUpload(answer);
      uploadId = started.id;
      offset = started.received;
      plan = planFromUpload(answer, source.size, chunkSize);
      await hooks.onUploadId?.(uploadId);
    }
    if (uploadId === undefined) {
      const started = await startUpload(client, target, source.size, signal);
      if (isFileDocument(started)) return decodeFile(started);
      uploadId = decodeUpload(started).id;
      plan = planFromUpload(started, source.size, chunkSize);
      await hooks.onUploadId?.(uploadId);
    }
    if (file === undefined) throw new GirderError('the server did not finish a 0-byte upload at once', 200, 'malformed');
    return await sendChunks(client, target, file, source, uploadId, offset, plan, hooks);
  } finally {
    await file?.close();
  }
}

/** POST /file or PUT /file/{id}/contents. Re-sending is harmless (an unused upload is left behind). */
async function startUpload(client: UploadClient, target: UploadTarget, size: number, signal?: AbortSignal): Promise<unknown> {
  if (target.kind === 'replace') {
    return client.put(`/file/${encodeURIComponent(target.fileId)}/contents`, { size }, { idempotent: true, signal });
  }
  const mimeType = target.mimeType ?? guessMimeType(target.name);
  return client.post(
    '/file',
    { parentType: target.parentType, parentId: target.parentId, name: target.name, size, mimeType },
    { idempotent: true, signal },
  );
}

/**
 * POST /file with the file's bytes as its body (girder's initUpload takes a non-form body as the
 * first chunk). Not retried here: a lost answer may have made the file, which only the caller can
 * check.
 */
async function postWithBody(
  client: UploadClient, target: UploadTarget & { kind: 'new' }, file: SourceFile, source: UploadSource, hooks: UploadHooks,
): Promise<unknown> {
  const mimeType = target.mimeType ?? guessMimeType(target.name);
  const upload = file.body(0, source.size, (bytes) => client.countUploaded(bytes));
  return client.post('/file', { parentType: target.parentType, parentId: target.parentId, name: target.name, size: source.size, mimeType }, {
    upload,
    headers: { 'content-type': 'application/octet-stream' },
    idempotent: false,
    signal: hooks.signal,
  });
}

/**
 * The server's byte count for an upload (and how to send the rest, when the answer tells), or null
 * when it does not know the upload id.
 */
async function serverOffset(
  client: UploadClient, uploadId: string, size: number, chunkSize: number, signal?: AbortSignal,
): Promise<{ offset: number; plan?: ChunkPlan } | null> {
  try {
    const resumed = planFromOffset(await client.get('/file/offset', { uploadId }, { signal }), chunkSize);
    if (resumed === undefined) throw new GirderError('GET /file/offset answered without an offset', 200, 'malformed');
    return resumed;
  } catch (err) {
    if (err instanceof GirderError && err.kind === 'lost-upload') return null;
    // S3 multipart with no part received yet: Girder counted nothing.
    if (err instanceof GirderError && err.status === 400 && isMultipartWithoutParts(err.message)) return { offset: 0, plan: multipart(size, chunkSize) };
    throw err;
  }
}

async function sendChunks(
  client: UploadClient,
  target: UploadTarget,
  file: SourceFile,
  source: UploadSource,
  uploadId: string,
  startOffset: number,
  startPlan: ChunkPlan,
  hooks: UploadHooks,
): Promise<FileDoc> {
  const { size } = source;
  const signal = hooks.signal;
  let offset = startOffset;
  let plan = startPlan;
  for (;;) {
    let length = 0;
    /** Found by the recovery of a failed last chunk: the upload finished after all. */
    let finished: FileDoc | undefined;
    const answer = await retrying<unknown, GirderError>({
      retries: client.retries,
      // Not a certificate problem: the server may take the chunk (or tell its offset) next time.
      isRetryable: (err): err is GirderError => err instanceof GirderError && !isAbort(err, signal) &&
        (err.kind === 'offset-mismatch' || (isTransient(err) && err.kind !== 'tls')),
      exhausted: (err, failures) => new GirderError(
        `upload ${uploadId} stopped at byte ${offset} of ${size} after ${failures} failed attempts: ${err.message}`,
        err.status >= 500 ? err.status : 0,
        err.type,
        undefined,
        { cause: err },
      ),
      pause: async (failures, err) => {
        await client.pauseBeforeRetry(failures, err, signal);
        // Where to go on from: the offset Girder named, else the one it reports now.
        if (err.received !== undefined) {
          offset = err.received;
          return;
        }
        let known: { offset: number; plan?: ChunkPlan } | null;
        try {
          known = await serverOffset(client, uploadId, size, plan.chunkSize, signal);
        } catch (offsetErr) {
          if (isTransient(offsetErr)) return; // try the chunk again
          throw offsetErr;
        }
        if (known === null) {
          // The upload is gone: if the last chunk went through and only its answer was lost, the file exists.
          finished = (offset + length === size ? await findFinished(client, target, size) : null) ?? undefined;
          if (finished !== undefined) return;
          throw new GirderError(`the server forgot upload ${uploadId} at byte ${offset} of ${size}`, 400, 'rest', undefined, { cause: err });
        }
        offset = Math.min(known.offset, size);
        plan = known.plan ?? plan;
      },
    }, async () => {
      for (;;) {
        if (finished !== undefined) return finished;
        signal?.throwIfAborted();
        length = plan.single ? size - offset : Math.min(plan.chunkSize, size - offset);
        try {
          return await sendChunk(client, file, uploadId, offset, length, size, hooks);
        } catch (err) {
          if (!(err instanceof GirderError) || isAbort(err, signal) || err.status !== 400 || plan.single || !isSingleChunkRefusal(err.message)) throw err;
          // An S3 upload of up to its chunk length, resumed without knowing it: all of it at once.
          client.log.info({ uploadId, size }, 'the server wants this upload in one chunk');
          plan = { ...plan, single: true };
        }
      }
    });
    if (finished !== undefined) return finished;
    if (isFileDocument(answer)) {
      hooks.onProgress?.(size, size);
      return decodeFile(answer);
    }
    const received = decodeUpload(answer).received;
    if (received <= offset || received >= size) {
      throw new GirderError(`upload ${uploadId}: the server reports ${received} bytes after a chunk at ${offset}`, 200, 'malformed');
    }
    offset = received;
    hooks.onProgress?.(offset, size);
  }
}

/** POST /file/chunk with `length` bytes of the file from `offset`. */
async function sendChunk(
  client: UploadClient,
  source: SourceFile,
  uploadId: string,
  offset: number,
  length: number,
  size: number,
  hooks: UploadHooks,
): Promise<unknown> {
  let reported = 0;
  const upload = source.body(offset, length, (bytes, sent) => {
    client.countUploaded(bytes);
    if (sent < reported) reported = 0; // sent again after a re-login
    if (hooks.onProgress !== undefined && sent - reported >= PROGRESS_STEP && sent < length) {
      reported = sent;
      hooks.onProgress(offset + sent, size);
    }
  });
  return client.post('/file/chunk', { uploadId, offset }, {
    upload,
    headers: { 'content-type': 'application/octet-stream' },
    idempotent: false,
    signal: hooks.signal,
  });
}

/** After a lost answer to the final chunk: the finished file, if it is there. */
async function findFinished(client: UploadClient, target: UploadTarget, size: number): Promise<FileDoc | null> {
  if (target.kind === 'replace') {
    const file = decodeFile(await client.get(`/file/${encodeURIComponent(target.fileId)}`));
    return file.size === size ? file : null;
  }
  const items = target.parentType === 'item'
    ? [target.parentId]
    : asArray(await client.get('/item', { folderId: target.parentId, name: target.name, limit: 0 }), 'item list').map((i) => decodeItem(i).id);
  const candidates: FileDoc[] = [];
  for (const itemId of items) {
    const listed = await client.get(`/item/${encodeURIComponent(itemId)}/files`, { limit: 0 });
    candidates.push(...asArray(listed, 'file list').map(decodeFile).filter((f) => f.name === target.name && f.size === size));
  }
  return candidates.sort((a, b) => b.created - a.created)[0] ?? null;
}
