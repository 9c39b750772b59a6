// The test harness helpers that need no Girder: run(), isMounted(), shellQuote(), waitFor(), writeRandomFile().
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { isMounted, readMounts, run, shellQuote } from '../helpers/mount.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';
import { WaitAborted, waitFor } from '../helpers/wait.js';

t.test('run() collects output and exit codes', async (t) => {
  const ok = await run('echo out; echo err >&2; exit 3');
  t.same({ code: ok.code, stdout: ok.stdout, stderr: ok.stderr, timedOut: ok.timedOut }, {
    code: 3,
    stdout: 'out\n',
    stderr: 'err\n',
    timedOut: false,
  });
  const cwd = await run('pwd');
  t.equal(cwd.stdout.trim(), path.resolve(tmpdir()), 'runs outside any mount by default');
  const input = await run('tr a-z A-Z', { input: 'abc' });
  t.equal(input.stdout, 'ABC');
});

t.test('run() kills the whole command on timeout', async (t) => {
  const started = Date.now();
  const res = await run('sleep 60 & sleep 60; echo never', { timeoutMs: 300 });
  t.equal(res.timedOut, true);
  t.equal(res.code, null);
  t.notMatch(res.stdout, /never/);
  t.ok(Date.now() - started < 30_000, 'did not wait for the sleeps');
});

t.test('isMounted() reads /proc/mounts', async (t) => {
  t.equal(await isMounted('/proc'), true);
  t.equal(await isMounted('/proc/'), true, 'trailing slash');
  t.equal(await isMounted('/no/such/mountpoint'), false);
  t.ok((await readMounts()).some((m) => m.mountpoint === '/proc' && m.fstype === 'proc'));
});

t.test('shellQuote() survives quotes and spaces', async (t) => {
  const odd = `it's a "name" with $dollar and \\ back`;
  const res = await run(`printf %s ${shellQuote(odd)}`);
  t.equal(res.stdout, odd);
});

t.test('waitFor()', async (t) => {
  let n = 0;
  t.equal(await waitFor(() => (++n >= 3 ? n : 0), { intervalMs: 1 }), 3);
  await t.rejects(waitFor(() => false, { timeoutMs: 50, intervalMs: 5, what: 'never' }), /never/);
  await t.rejects(
    waitFor(() => {
      throw new WaitAborted('gave up');
    }, { timeoutMs: 60_000 }),
    /gave up/,
  );
});

t.test('writeRandomFile() writes the bytes it hashes', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'random-file-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'r.bin');
  const size = 3 * 1024 * 1024 + 17;
  const hash = await writeRandomFile(file, size);
  const data = await readFile(file);
  t.equal(data.length, size);
  t.equal(sha512(data), hash);
  t.equal(await writeRandomFile(path.join(dir, 'empty'), 0), sha512(Buffer.alloc(0)));
});
