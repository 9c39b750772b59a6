// The random-operations checker (test/tools/fs_exerciser.py) on local disk: a seed replays the
// same run, the file it leaves is the model it reports, and it does catch a file that differs from
// its model (a byte changed behind its back), naming the offset and printing the op log.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/girder-server.js';

const EXERCISER = path.join(repoRoot(), 'test', 'tools', 'fs_exerciser.py');

interface Outcome {
  code: number;
  stdout: string;
}

function exercise(args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile('python3', [EXERCISER, ...args], { timeout: 120_000 }, (err, stdout) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout });
    });
  });
}

interface Report {
  ok: boolean;
  seed: number;
  name: string;
  size: number;
  sha512: string;
  counts: Record<string, number>;
}

function report(out: Outcome): Report {
  return JSON.parse(out.stdout.trim().split('\n').pop() as string) as Report;
}

t.test('a seeded run passes on local disk and leaves the file it reports', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fs-exerciser-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await exercise([path.join(dir, 'a'), '--seed', '7', '--ops', '600']);
  t.equal(first.code, 0, `exit 0\n${first.stdout.slice(-2000)}`);
  const r = report(first);
  t.ok(r.ok);
  for (const op of ['write', 'truncate', 'read', 'mapread', 'mapwrite', 'reopen', 'fsync', 'rename']) {
    t.ok((r.counts[op] ?? 0) > 0, `it ran ${op} (${r.counts[op]} times)`);
  }
  t.same(await readdir(path.join(dir, 'a')), [r.name], 'one file is left, under the name it reports');
  const data = await readFile(path.join(dir, 'a', r.name));
  t.equal(data.length, r.size, 'its size');
  t.equal(createHash('sha512').update(data).digest('hex'), r.sha512, 'its SHA-512');

  const again = report(await exercise([path.join(dir, 'b'), '--seed', '7', '--ops', '600']));
  t.same({ ...again, seconds: 0, path: '' }, { ...r, seconds: 0, path: '' }, 'the same seed replays the same run');
  const other = report(await exercise([path.join(dir, 'c'), '--seed', '8', '--ops', '600']));
  t.not(other.sha512, r.sha512, 'another seed makes another file');
});

t.test('a byte changed behind the model is caught at once, with its offset and the op log', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fs-exerciser-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const check of ['full', 'touched']) {
    const out = await exercise([dir, '--seed', '3', '--ops', '400', '--corrupt-after', '150', '--check', check]);
    t.equal(out.code, 1, `--check ${check}: exit 1`);
    t.match(out.stdout, /MISMATCH after op #151 \(seed 3\)/, `--check ${check}: right after the change`);
    t.match(out.stdout, /first difference at offset 0x[0-9a-f]+ \(\d+\)/, 'it names the first differing offset');
    t.match(out.stdout, /op log:\n {2}#1 .*\n(?: {2}#\d+ .*\n)+ {2}#151 \(test of the checker\)/, 'it prints the op log');
    t.match(out.stdout, /expected from 0x[0-9a-f]+: [0-9a-f ]+\n {2}read {5}from 0x[0-9a-f]+: [0-9a-f ]+/, 'and the bytes expected and read');
  }
});

t.test('without mmap, reopen, fsync and rename only the plain ops run', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fs-exerciser-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = await exercise([dir, '--seed', '5', '--ops', '300', '--no-mmap', '--no-reopen', '--no-fsync', '--no-rename']);
  t.equal(out.code, 0, out.stdout.slice(-2000));
  const counts = report(out).counts;
  t.same([counts.mapread, counts.mapwrite, counts.reopen, counts.fsync, counts.rename], [0, 0, 0, 0, 0]);
  t.ok((counts.write ?? 0) > 0 && (counts.truncate ?? 0) > 0 && (counts.read ?? 0) > 0, 'write, truncate and read did');
});
