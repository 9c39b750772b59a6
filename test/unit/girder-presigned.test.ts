// Presigned download URLs kept per file version (src/girder/presigned.ts): how long, for whom.
import t from 'tap';
import { RedirectTargets, expiryOf, storageErrorOf } from '../../src/girder/presigned.js';

const signedAt = Date.UTC(2026, 11, 6, 2, 27, 37);
const v4 = (expires: number): string =>
  `http://127.0.0.1:9000/bucket/ab/cd/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261206T022737Z&X-Amz-Expires=${expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=00`;

t.test('expiryOf reads the validity a presigned URL carries', async (t) => {
  t.equal(expiryOf(v4(3600)), signedAt + 3600_000, 'AWS signature v4: X-Amz-Date + X-Amz-Expires');
  t.equal(expiryOf('https://storage.example/b/k?X-Goog-Date=20261206T022737Z&X-Goog-Expires=60&X-Goog-Signature=1'), signedAt + 60_000, 'Google');
  t.equal(expiryOf('https://s3.example/b/k?AWSAccessKeyId=a&Expires=1796524057&Signature=s'), 1796524057_000, 'v2: Expires');
  t.equal(expiryOf('https://cdn.example/file'), undefined, 'no validity: unknown');
  t.equal(expiryOf('http://h/k?X-Amz-Date=yesterday&X-Amz-Expires=60'), undefined, 'unreadable date');
  t.equal(expiryOf('not a url'), undefined);
});

t.test('RedirectTargets keeps a URL per file version, until shortly before it expires', async (t) => {
  const targets = new RedirectTargets();
  const file = { id: 'f1', size: 10, version: 'v1' };
  targets.remember(file, v4(3600), signedAt);
  t.equal(targets.get(file, signedAt + 1000), v4(3600), 'the same version reads from the URL');
  t.equal(targets.get({ ...file, version: 'v2' }, signedAt + 1000), undefined, 'another version does not');
  t.equal(targets.get({ id: 'f1', size: 10 }, signedAt + 1000), undefined, 'nor a read that does not know the version');
  t.equal(targets.get(file, signedAt + 9 * 60_000), v4(3600), 'kept for at most 10 minutes');
  t.equal(targets.get(file, signedAt + 10 * 60_000), undefined, 'then asked of Girder again');

  targets.remember(file, v4(120), signedAt);
  t.equal(targets.get(file, signedAt + 59_000), v4(120), 'a 120 s URL is used for its first minute');
  t.equal(targets.get(file, signedAt + 60_000), undefined, 'not in its last minute');
  targets.remember(file, v4(30), signedAt);
  t.equal(targets.get(file, signedAt), undefined, 'a URL about to expire is not kept');

  targets.remember(file, v4(3600), signedAt);
  targets.forget(file, 'http://other/url');
  t.equal(targets.get(file, signedAt), v4(3600), 'forgetting another URL changes nothing');
  targets.forget(file, v4(3600));
  t.equal(targets.get(file, signedAt), undefined, 'a refused URL is forgotten');
  targets.remember({ id: 'f2', size: 1 }, v4(3600), signedAt);
  t.equal(targets.get({ id: 'f2', size: 1 }, signedAt), undefined, 'nothing is kept without a version');
  targets.remember({ ...file, id: 'f3' }, 'https://cdn.example/file', signedAt);
  t.equal(targets.get({ ...file, id: 'f3' }, signedAt), undefined, 'nor a URL that does not say how long it is valid');
});

t.test('storageErrorOf reads an S3 error body', async (t) => {
  const expired = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>1</X-Amz-Expires></Error>';
  t.equal(storageErrorOf(expired), 'AccessDenied: Request has expired');
  t.equal(storageErrorOf('<Error><Code>NoSuchKey</Code></Error>'), 'NoSuchKey');
  t.equal(storageErrorOf('{"message":"no"}'), undefined);
});
