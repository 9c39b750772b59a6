// Issue 2, "Bad input": each case ends with one line `girder-mount: <the problem>` on stderr, a
// non-zero exit, no stack trace and nothing mounted; a stale (dead) mount is cleared and reused.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest } from '../helpers/girder-rest.js';
import { startGirder, type GirderServerInfo } from '../helpers/girder-server.js';
import { cliPath, forceUnmount, isMounted, readMounts, run, shellQuote as q, startMount, type RunResult } from '../helpers/mount.js';

/** The part of tap's Test these helpers use. */
interface T {
  equal(found: unknown, wanted: unknown, message: string): boolean;
  ok(value: unknown, message: string): boolean;
  notOk(value: unknown, message: string): boolean;
  match(found: unknown, pattern: RegExp, message: string): boolean;
}

/**
 * Unset for the CLI unless a case sets them: every variable it reads credentials from, and the
 * harness's GIRDER_MOUNT_* settings (the CLI reads those as options and rejects unknown ones).
 */
const CLEAN_ENV: NodeJS.ProcessEnv = {
  GIRDER_API_KEY: undefined,
  GIRDER_PASSWORD: undefined,
  GIRDER_TOKEN: undefined,
  ...Object.fromEntries(Object.keys(process.env).filter((name) => name.startsWith('GIRDER_MOUNT_')).map((name) => [name, undefined])),
};

async function freePortThatIsClosed(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A web server that is not Girder: 404 with an HTML page for every path. */
async function notGirder(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Checks a refused start: exit code, exactly one `girder-mount: ` line naming the problem, nothing mounted. */
async function refused(t: T, r: RunResult, mountpoint: string, problem: RegExp): Promise<void> {
  const context = `stderr: ${JSON.stringify(r.stderr)} stdout: ${JSON.stringify(r.stdout.slice(0, 500))}`;
  t.notOk(r.timedOut, 'the CLI ends by itself');
  t.ok(r.code !== null && r.code !== 0, `a non-zero exit code (got ${r.code}, signal ${r.signal}) ${context}`);
  t.ok(/^girder-mount: [^\n]+\n$/.test(r.stderr), `stderr is exactly one line starting "girder-mount: " ${context}`);
  t.match(r.stderr, problem, 'the line names the problem');
  t.notOk(/^\s+at .+:\d+(:\d+)?\)?$/m.test(r.stderr + r.stdout), 'no stack trace');
  t.equal(r.stdout, '', 'nothing on stdout');
  t.notOk(await isMounted(mountpoint), 'nothing is mounted');
}

t.test('bad input: one clear line, a non-zero exit, nothing mounted', async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const info: GirderServerInfo = server.info;
  const user = rest(server, 'user');
  const userFolder = info.folders.userPrivate;
  await user.uploadBytes({ type: 'folder', id: userFolder }, 'hello.txt', Buffer.from('hello\n'));

  const work = await mkdtemp(path.join(tmpdir(), 'girder-bad-input-'));
  const mountpoints: string[] = [];
  t.teardown(async () => {
    for (const mp of mountpoints) await forceUnmount(mp);
    // never recurse into a mount: remove the work dir only when nothing under it is mounted
    const prefix = path.resolve(work) + path.sep;
    if ((await readMounts()).some((m) => m.mountpoint.startsWith(prefix))) return;
    await rm(work, { recursive: true, force: true });
  });
  let serial = 0;
  /** A fresh empty mountpoint and cache dir under the work dir. */
  const place = async (): Promise<{ mnt: string; cache: string }> => {
    const dir = path.join(work, `case-${++serial}`);
    const mnt = path.join(dir, 'mnt');
    await mkdir(mnt, { recursive: true });
    mountpoints.push(mnt);
    return { mnt, cache: path.join(dir, 'cache') };
  };

  /** Runs the CLI (as a child, never touching the mountpoint from here) and collects what it said. */
  const cli = (args: string[], env: NodeJS.ProcessEnv = { GIRDER_API_KEY: info.user.apiKey }): Promise<RunResult> =>
    run(`exec node ${q(cliPath())} ${args.map(q).join(' ')}`, { env: { ...CLEAN_ENV, ...env }, timeoutMs: 180_000 });

  /** `<folderId> <mountpoint> --api-url <url> --cache-dir <dir>` plus `extra`. */
  const mountArgs = (folderId: string, p: { mnt: string; cache: string }, extra: string[] = [], apiUrl = info.apiUrl): string[] => [
    folderId, p.mnt, '--api-url', apiUrl, '--cache-dir', p.cache, ...extra,
  ];

  t.test('a malformed folder id', async (t) => {
    const p = await place();
    await refused(t, await cli(mountArgs('not-a-folder-id', p)), p.mnt, /"not-a-folder-id" is not a Girder folder id/);
  });

  t.test('a folder that does not exist', async (t) => {
    const p = await place();
    const missing = '0123456789abcdef01234567';
    await refused(t, await cli(mountArgs(missing, p)), p.mnt, new RegExp(`folder ${missing} does not exist`));
  });

  t.test('a folder the user cannot read (admin\'s private folder, the normal user\'s key)', async (t) => {
    const p = await place();
    const r = await cli(mountArgs(info.folders.adminPrivate, p));
    await refused(t, r, p.mnt, new RegExp(`folder ${info.folders.adminPrivate} .*cannot read`));
  });

  t.test('an unreachable server (a closed port)', async (t) => {
    const p = await place();
    const port = await freePortThatIsClosed();
    const r = await cli(mountArgs(userFolder, p, [], `http://127.0.0.1:${port}/api/v1`));
    await refused(t, r, p.mnt, new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}`));
  });

  t.test('a URL that is not a Girder API (404 HTML)', async (t) => {
    const web = await notGirder();
    t.teardown(() => web.close());
    const p = await place();
    await refused(t, await cli(mountArgs(userFolder, p, [], web.url)), p.mnt, /does not look like a Girder API/);
  });

  t.test('an invalid API key', async (t) => {
    const p = await place();
    const r = await cli(mountArgs(userFolder, p), { GIRDER_API_KEY: 'x'.repeat(40) });
    await refused(t, r, p.mnt, /API key was refused/);
  });

  t.test('a wrong password', async (t) => {
    const p = await place();
    const r = await cli(mountArgs(userFolder, p, ['--username', info.user.login]), { GIRDER_PASSWORD: 'not-the-password' });
    await refused(t, r, p.mnt, new RegExp(`refused the login of user "${info.user.login}"`));
  });

  t.test('no credentials at all', async (t) => {
    const p = await place();
    await refused(t, await cli(mountArgs(userFolder, p), {}), p.mnt, /no credentials: set GIRDER_API_KEY/);
  });

  t.test('--username with no password and no terminal to ask on', async (t) => {
    const p = await place();
    const r = await cli(mountArgs(userFolder, p, ['--username', info.user.login]), {});
    await refused(t, r, p.mnt, /no password for --username/);
  });

  t.test('a mountpoint that does not exist', async (t) => {
    const p = await place();
    const gone = path.join(p.mnt, 'missing');
    await refused(t, await cli(mountArgs(userFolder, { ...p, mnt: gone })), gone, /mountpoint .*missing does not exist/);
  });

  t.test('a mountpoint that is a file', async (t) => {
    const p = await place();
    const file = path.join(path.dirname(p.mnt), 'a-file');
    await writeFile(file, 'not a directory\n');
    await refused(t, await cli(mountArgs(userFolder, { ...p, mnt: file })), file, /mountpoint .*a-file is not a directory/);
  });

  t.test('a mountpoint that is not empty', async (t) => {
    const p = await place();
    await writeFile(path.join(p.mnt, 'something'), 'x');
    await refused(t, await cli(mountArgs(userFolder, p)), p.mnt, /mountpoint .* is not empty/);
  });

  t.test('a mountpoint where a live girder-mount already is', async (t) => {
    const p = await place();
    const live = await startMount({ server, folderId: userFolder, user: 'user', mountpoint: p.mnt });
    t.teardown(() => live.cleanup());
    const r = await cli(mountArgs(userFolder, { ...p, cache: `${p.cache}-2` }));
    t.notOk(r.timedOut, 'the CLI ends by itself');
    t.ok(r.code !== null && r.code !== 0, `a non-zero exit code (got ${r.code})`);
    t.equal(r.stderr.split('\n').filter(Boolean).length, 1, `stderr is one line: ${JSON.stringify(r.stderr)}`);
    t.match(r.stderr, /^girder-mount: mountpoint .* is already mounted/, 'the line says it is already mounted');
    t.equal((await readMounts()).filter((m) => m.mountpoint === p.mnt).length, 1, 'only the live mount is there');
    const ls = await run(`ls ${q(p.mnt)}`);
    t.equal(ls.stdout, 'hello.txt\n', 'and it still works');
    live.process.kill('SIGTERM');
    t.equal(await live.waitExit(), 0, 'the live mount ends cleanly');
    t.notOk(await isMounted(p.mnt), 'nothing is mounted afterwards');
  });

  t.test('a stale (dead) mount is cleared and the new mount works', async (t) => {
    const p = await place();
    const first = await startMount({ server, folderId: userFolder, user: 'user', mountpoint: p.mnt, cacheDir: p.cache });
    t.teardown(() => first.cleanup());
    await first.kill9();
    t.ok(await isMounted(p.mnt), 'kill -9 leaves a mount behind');
    const dead = await run(`stat -f ${q(p.mnt)}`); // statfs: stat may be answered from the attribute cache
    t.match(dead.stderr, /Transport endpoint is not connected/, 'and it is dead');

    const second = await startMount({ server, folderId: userFolder, user: 'user', mountpoint: p.mnt, cacheDir: p.cache });
    t.teardown(() => second.cleanup());
    t.equal((await readMounts()).filter((m) => m.mountpoint === p.mnt).length, 1, 'one mount at the mountpoint: the dead one is gone');
    const cat = await run(`cat ${q(path.join(p.mnt, 'hello.txt'))}`);
    t.equal(cat.stdout, 'hello\n', 'the new mount serves the folder');
    t.match(second.stderr(), /cleared a dead FUSE mount/, 'the daemon says it cleared the dead mount');
    second.process.kill('SIGTERM');
    t.equal(await second.waitExit(), 0, 'the new mount ends cleanly');
    t.notOk(await isMounted(p.mnt), 'nothing is mounted afterwards');
  });

  const badOptions: Array<[string[], RegExp]> = [
    [['--attr-ttl', '-1'], /--attr-ttl must be a number of seconds >= 0, got -1/],
    [['--cache-max-size', '12Q'], /--cache-max-size "12Q" is not a size/],
    [['--umask', '9'], /--umask "9" is not an octal mask/],
    [['--frobnicate', '3'], /Unknown argument: frobnicate/],
  ];
  for (const [extra, problem] of badOptions) {
    t.test(`a bad option: ${extra.join(' ')}`, async (t) => {
      const p = await place();
      await refused(t, await cli(mountArgs(userFolder, p, extra)), p.mnt, problem);
    });
  }

  t.test('the mountpoints are plain empty directories again', async (t) => {
    for (const mp of mountpoints) {
      t.notOk(await isMounted(mp), `${path.relative(work, mp)} is not mounted`);
      await rmdir(mp).catch(() => undefined);
    }
  });
});
