// How an upload is cut into chunks, from what Girder answered (src/girder/chunk-plan.ts).
import t from 'tap';
import { isMultipartWithoutParts, isSingleChunkRefusal, multipart, planFromOffset, planFromUpload } from '../../src/girder/chunk-plan.js';

const MiB = 1024 * 1024;
const s3Upload = (chunked: boolean): unknown => ({ _id: 'u', received: 0, size: 1, behavior: 's3', s3: { chunked, chunkLength: 64 * MiB, key: 'k' } });

t.test('planFromUpload', async (t) => {
  t.same(planFromUpload({ _id: 'u', received: 0, size: 10 * MiB }, 10 * MiB, 5 * MiB), { single: false, chunkSize: 5 * MiB }, 'filesystem: the configured chunks');
  t.same(planFromUpload(s3Upload(false), 10 * MiB, 5 * MiB), { single: true, chunkSize: 5 * MiB }, 'S3 up to its chunk length: one chunk');
  t.same(planFromUpload(s3Upload(true), 100 * MiB, 64 * MiB), { single: false, chunkSize: 64 * MiB }, 'S3 multipart: the configured parts');
  t.same(planFromUpload(s3Upload(true), 100 * MiB, MiB), { single: false, chunkSize: 5 * MiB }, 'never parts under 5 MiB');
});

t.test('multipart keeps to 10,000 parts of at most 5 GiB', async (t) => {
  t.equal(multipart(1024 * 1024 * MiB, 64 * MiB).chunkSize, Math.ceil((1024 * 1024 * MiB) / 10_000), '1 TiB: 64 MiB parts would be 16,384; larger ones make 10,000');
  t.equal(multipart(100 * 1024 * MiB, 64 * MiB).chunkSize, 64 * MiB, '100 GiB: 1,600 parts of 64 MiB');
  t.equal(multipart(Number.MAX_SAFE_INTEGER, 64 * MiB).chunkSize, 5 * 1024 * MiB, 'never past 5 GiB');
});

t.test('planFromOffset and the refusals', async (t) => {
  t.same(planFromOffset({ offset: 64 * MiB }, 5 * MiB), { offset: 64 * MiB }, 'a count: go on as planned');
  t.same(planFromOffset({ method: 'PUT', url: 'http://s3/b/k?X-Amz-Signature=1', headers: {}, offset: 0 }, 5 * MiB),
    { offset: 0, plan: { single: true, chunkSize: 5 * MiB } }, 'the presigned PUT plan of a one-chunk S3 upload');
  t.equal(planFromOffset({ nothing: 1 }, 5 * MiB), undefined);
  t.ok(isMultipartWithoutParts('You should not call requestOffset on a chunked direct-to-S3 upload.'));
  t.ok(isSingleChunkRefusal('Uploads of this length must be sent in a single chunk.'));
  t.notOk(isSingleChunkRefusal('Chunk is smaller than the minimum size.'));
});
