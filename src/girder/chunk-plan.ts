/**
 * How an upload's bytes must be cut into chunks, learned from Girder's answers, never from
 * configuration. A filesystem assetstore takes chunks of any size (non-final ones of at least 5 MiB).
 * An S3 assetstore says so in the upload document (`behavior: "s3"`, girder-api.md section 4):
 * - `s3.chunked: false` (size up to its `chunkLength`, 64 MiB): the whole file must come as ONE
 *   chunk, else 400 "Uploads of this length must be sent in a single chunk.";
 * - `s3.chunked: true`: each chunk becomes one part of an S3 multipart upload, which S3 refuses at
 *   the very end (Girder: 500 EntityTooSmall, the upload stuck at its full size) if any part but the
 *   last is under 5 MiB, or if there are more than 10,000 parts. Girder does not check this itself.
 * After a restart only the upload id is known; `GET /file/offset` then tells the same apart.
 */
import { isObject } from './decode.js';

const MiB = 1024 * 1024;
/** S3's smallest part but the last (and Girder's own minimum chunk). */
export const S3_MIN_PART = 5 * MiB;
/** S3's largest part. */
export const S3_MAX_PART = 5 * 1024 * MiB;
/** S3's most parts in one upload. */
export const S3_MAX_PARTS = 10_000;

export interface ChunkPlan {
  /** Every byte from the upload's offset in one chunk. */
  readonly single: boolean;
  /** Bytes per chunk otherwise. */
  readonly chunkSize: number;
}

/** The plan for an upload of `size` bytes, from its upload document (or none known). */
export function planFromUpload(doc: unknown, size: number, configured: number): ChunkPlan {
  if (!isObject(doc) || doc.behavior !== 's3' || !isObject(doc.s3)) return { single: false, chunkSize: configured };
  if (doc.s3.chunked === false) return { single: true, chunkSize: configured };
  return multipart(size, configured);
}

/** Parts S3 accepts: at least 5 MiB, at most 10,000 of them (as far as 5 GiB parts allow). */
export function multipart(size: number, configured: number): ChunkPlan {
  const fewEnough = Math.ceil(size / S3_MAX_PARTS);
  return { single: false, chunkSize: Math.min(S3_MAX_PART, Math.max(configured, S3_MIN_PART, fewEnough)) };
}

/**
 * What `GET /file/offset` says of an upload: where to go on, and how, when it tells. On S3, an
 * upload that must come in one chunk and has none yet answers the presigned PUT Girder would use
 * (`method`, `url`, `offset: 0`); a multipart one with no part yet answers 400 (see offsetRefusal).
 */
export function planFromOffset(answer: unknown, configured: number): { offset: number; plan?: ChunkPlan } | undefined {
  if (!isObject(answer) || typeof answer.offset !== 'number' || !Number.isSafeInteger(answer.offset) || answer.offset < 0) return undefined;
  if (typeof answer.method === 'string' && typeof answer.url === 'string') return { offset: answer.offset, plan: { single: true, chunkSize: configured } };
  return { offset: answer.offset };
}

/** Girder's refusal of `GET /file/offset` for an S3 multipart upload that has no part yet: resume at 0. */
export function isMultipartWithoutParts(message: string): boolean {
  return /^You should not call requestOffset on a chunked direct-to-S3 upload/.test(message);
}

/** Girder's refusal of a partial chunk for an upload S3 wants in one piece. */
export function isSingleChunkRefusal(message: string): boolean {
  return /^Uploads of this length must be sent in a single chunk/.test(message);
}
