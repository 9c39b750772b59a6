// What `girder-mount status` prints and exits with, from the daemon's answer.
import t from 'tap';
import { describeMemory, describeUpload, formatStatus, statusExitCode, type MountStatus } from '../../src/control/status.js';

function status(over: Partial<MountStatus>): MountStatus {
  return {
    pid: 42, mountpoint: '/mnt/g', apiUrl: 'http://g/api/v1', folderId: 'f'.repeat(24), readOnly: false, uptimeS: 10,
    uploads: [], failedUploads: [], lostAndFound: '/cache/lost+found',
    cache: { hits: 0, misses: 0, bytesCached: 0, maxBytes: 1 },
    requests: { requests: 0, errors: 0, retries: 0, bytesDownloaded: 0, bytesUploaded: 0 },
    ...over,
  };
}

const waiting = { path: '/c.bin', size: 2 << 20, sent: 0, state: 'waiting', reason: 'Girder refused the credentials (401: You must be logged in.)', retryInS: 40 };
const failed = { path: '/S/x.bin', size: 5, reason: 'the folder it was written to was deleted on the server', keptAt: '/cache/lost+found/S/x.bin', failedAt: '2026-12-01T10:00:00.000Z' };

t.test('exit codes: 0 nothing waits or failed, 3 some upload waits, 4 some failed (wins)', async (t) => {
  t.equal(statusExitCode(status({})), 0);
  t.equal(statusExitCode(status({ uploads: [{ path: '/a', size: 1, sent: 0, state: 'uploading' }, { path: '/b', size: 1, sent: 0, state: 'queued' }] })), 0,
    'running and queued uploads are not trouble');
  t.equal(statusExitCode(status({ uploads: [waiting] })), 3);
  t.equal(statusExitCode(status({ failedUploads: [failed] })), 4);
  t.equal(statusExitCode(status({ uploads: [waiting], failedUploads: [failed] })), 4);
});

t.test('each state in words', async (t) => {
  t.equal(describeUpload(waiting), 'waiting: Girder refused the credentials (401: You must be logged in.); retry in 40 s');
  t.equal(describeUpload({ path: '/a', size: 4 << 20, sent: 1 << 20, state: 'uploading' }), 'uploading 1.0 MiB / 4.0 MiB (25%)');
  t.equal(describeUpload({ path: '/b', size: 3 << 20, sent: 0, state: 'queued', resumed: true }), 'queued, 3.0 MiB (resumed from the journal)');
  const text = formatStatus(status({ uploads: [waiting], failedUploads: [failed] }));
  t.match(text, /^uploads {6}2 not on the server: 1 waiting, 1 failed$/m);
  t.match(text, /^ {2}\/c\.bin {2}waiting: Girder refused the credentials \(401: You must be logged in\.\); retry in 40 s$/m);
  t.match(text, /^ {2}\/S\/x\.bin {2}failed: the folder it was written to was deleted on the server, kept at \/cache\/lost\+found\/S\/x\.bin$/m);
  t.match(text, /until you move or delete its file in \/cache\/lost\+found/);
  t.match(formatStatus(status({})), /^uploads {6}all on the server$/m);
});

t.test('removals not yet done on the server: a line while there are any', async (t) => {
  t.match(formatStatus(status({ removals: 12 })), /^removals {5}12 not yet done on the server \(gone from the mount already\)$/m);
  t.notMatch(formatStatus(status({ removals: 0 })), /^removals/m, 'none: no line');
  t.equal(statusExitCode(status({ removals: 12 })), 0, 'queued removals are not trouble');
});

t.test('memory: RSS split into V8 heap, external and the rest', async (t) => {
  const M = 1 << 20;
  const memory = { rss: 120 * M, heapUsed: 40 * M, heapTotal: 60 * M, external: 10 * M, arrayBuffers: 8 * M };
  t.equal(describeMemory(memory), 'RSS 120.0 MiB: heap 40.0 MiB of 60.0 MiB, external 10.0 MiB (buffers 8.0 MiB), other 50.0 MiB');
  t.match(formatStatus(status({ memory })), /^memory {7}RSS 120\.0 MiB: /m);
  t.notMatch(formatStatus(status({})), /^memory/m, 'an older daemon without the figure: no line');
});
