// The test server's stand-in for MongoDB's indexes (scripts/mongomock_index.py): random inserts,
// updates (in place, upserts, replaced, rolled back by a unique index), deletes and drops, each
// query's answer compared with a full scan's, order included (test/tools/mongomock_index_check.py).
import { execFile } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { repoRoot, venvPython } from '../helpers/girder-server.js';

const CHECKER = path.join(repoRoot(), 'test', 'tools', 'mongomock_index_check.py');

interface Stats {
  operations: number;
  queries: number;
  indexedQueries: number;
}

function check(seed: number): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(venvPython(), [CHECKER, String(seed), '4000'], { timeout: 120_000 }, (err, stdout) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout });
    });
  });
}

const seeds = [1, 2, 3, Math.floor(Math.random() * 1_000_000)];
for (const seed of seeds) {
  t.test(`seed ${seed}: every query answers what a scan answers`, async (t) => {
    const out = await check(seed);
    t.equal(out.code, 0, out.stdout.slice(-3000));
    const stats = JSON.parse(out.stdout.trim().split('\n').pop() as string) as Stats;
    t.ok(stats.indexedQueries > stats.queries / 3, `most queries used a map (${stats.indexedQueries} of ${stats.queries})`);
  });
}
