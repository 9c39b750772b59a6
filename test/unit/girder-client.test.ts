// GirderClient without Girder: TLS trust (--ca-file), and document decoding.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { GirderError } from '../../src/girder/girder-error.js';
import { GirderClient } from '../../src/girder/client.js';
import { decodeFile, decodeFolder, decodeItem, parseDate } from '../../src/girder/decode.js';
import { silentLogger } from '../../src/log.js';
import { selfSigned } from '../helpers/self-signed.js';

t.test('a self-signed server: a clear TLS error, then trusted through caFile', async (tt) => {
  const { key, cert } = await selfSigned(tt, 'girder-tls-test-');
  const server = https.createServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"release": "5.0.21"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const apiUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
  const options = { apiUrl, credentials: { kind: 'token' as const, token: 't' }, timeoutMs: 30_000, retries: 2, logger: silentLogger() };

  const untrusting = new GirderClient(options);
  const err = await untrusting.checkServer().catch((e: unknown) => e);
  await untrusting.close();
  tt.ok(err instanceof GirderError, String(err));
  tt.equal((err as GirderError).type, 'tls');
  tt.equal((err as GirderError).status, 0);
  tt.match((err as GirderError).message, /certificate/);
  tt.match((err as GirderError).message, /--ca-file/);
  tt.equal(untrusting.stats().retries, 0, 'certificate problems are not retried');

  const trusting = new GirderClient({ ...options, caFile: cert });
  tt.equal(await trusting.checkServer(), '5.0.21');
  await trusting.close();
});

t.test('dates parse with or without a fraction, UTC when no zone is given', async (tt) => {
  tt.equal(parseDate('2026-11-25T10:00:00+00:00'), Date.UTC(2026, 10, 25, 10, 0, 0));
  tt.equal(parseDate('2026-11-25T10:00:00.123+00:00'), Date.UTC(2026, 10, 25, 10, 0, 0, 123));
  tt.equal(parseDate('2026-11-25T10:00:00.123456+00:00'), Date.UTC(2026, 10, 25, 10, 0, 0, 123));
  tt.equal(parseDate('2026-11-25T10:00:00.5'), Date.UTC(2026, 10, 25, 10, 0, 0, 500));
  tt.equal(parseDate('2026-11-25T12:00:00+02:00'), Date.UTC(2026, 10, 25, 10, 0, 0));
  tt.equal(parseDate('nonsense'), 0);
  tt.equal(parseDate(undefined), 0);
});

t.test('documents decode with safe defaults, and refuse a missing id', async (tt) => {
  const folder = decodeFolder({ _id: 'f1', name: 'x', parentId: 'p', parentCollection: 'user', created: '2026-01-01T00:00:00+00:00' });
  tt.same(folder, { id: 'f1', name: 'x', parentId: 'p', parentType: 'user', created: Date.UTC(2026, 0, 1), updated: Date.UTC(2026, 0, 1), meta: {}, accessLevel: 0 });
  tt.same(decodeItem({ _id: 'i1', meta: [1] }), { id: 'i1', name: '', folderId: '', created: 0, updated: 0, size: 0, meta: {} });
  const file = decodeFile({ _id: 'x', name: 'a', itemId: 'i', size: 3, created: '2026-01-01T00:00:00+00:00', sha512: 'A'.repeat(128) });
  tt.equal(file.sha512, 'a'.repeat(128));
  tt.equal(file.updated, undefined);
  tt.equal(file.mimeType, 'application/octet-stream');
  tt.throws(() => decodeFile({ _id: 5 }), new GirderError('malformed file document from the server: field _id is not an id', 200, 'malformed'));
  tt.throws(() => decodeItem(null), GirderError);
  tt.throws(() => decodeFolder('<html>'), GirderError);
});
