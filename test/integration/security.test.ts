// Secrets and exposure of a running mount: the API key and session tokens never show in the process
// list, the logs, or the environment of the daemon and its children; the cache directory is private;
// allow_other is off unless asked; TLS certificates are verified (--ca-file adds a CA); plain http to
// another host is warned about.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { failingMount } from '../helpers/failing-mount.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { rest, type RawFolder } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { cliPath, forceUnmount, isMounted, readMounts, run, shellQuote as q, startMount, type Mount } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { sha512, writeRandomFile } from '../helpers/random-file.js';
import { waitForServerFile } from '../helpers/server-files.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

const girder = await startGirder();
t.teardown(() => girder.stop());
const info = girder.info;
const admin = rest(girder, 'admin');
const work = await mkdtemp(path.join(tmpdir(), 'girder-security-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

let seq = 0;
async function freshFolder(name: string): Promise<RawFolder> {
  const folder = await admin.createFolder(info.folders.adminPrivate, `${name}-${process.pid}-${seq++}`);
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'hello.txt', Buffer.from('hello\n'));
  return folder;
}

type Teardown = { teardown(fn: () => unknown): void };

async function proxyFor(tt: Teardown, extra: { host?: string; tls?: { key: string; cert: string } } = {}): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ upstream: info.apiUrl, ...extra });
  tt.teardown(() => proxy.close());
  return proxy;
}

async function mountVia(tt: Teardown, proxy: FaultProxy, folderId: string, args: string[], extra: { env?: NodeJS.ProcessEnv; cacheDir?: string } = {}): Promise<Mount> {
  const m = await startMount({ server: { ...info, apiUrl: proxy.apiUrl }, folderId, args, ...extra });
  tt.teardown(() => m.cleanup());
  return m;
}


t.test('the API key and the tokens stay secret', async (tt) => {
  const folder = await freshFolder('secrets');
  const proxy = await proxyFor(tt);
  // Stand-ins for the helpers the daemon runs (systemd-notify at readiness, fusermount at unmount,
  // fallocate in the cache): each records its environment.
  const bin = path.join(work, 'bin');
  const dumps = path.join(work, 'child-env');
  await mkdir(bin, { recursive: true });
  await mkdir(dumps, { recursive: true });
  for (const name of ['systemd-notify', 'fusermount', 'fallocate']) {
    const real = (await run(`command -v ${name}`)).stdout.trim();
    const then = name === 'systemd-notify' || real === '' ? 'exit 0' : `exec ${q(real)} "$@"`;
    await writeFile(path.join(bin, name), `#!/bin/sh\ncat /proc/$$/environ > ${q(dumps)}/${name}-$$\n${then}\n`);
    await chmod(path.join(bin, name), 0o755);
  }
  const key = info.admin.apiKey;
  const m = await mountVia(tt, proxy, folder._id, ['--log-level', 'trace', '--attr-ttl', '1'], {
    env: { PATH: `${bin}:${process.env.PATH ?? ''}`, NOTIFY_SOCKET: path.join(work, 'no-such-notify-socket') },
  });
  const M = m.mountpoint;

  // Work that logs in, reads, writes, re-logs in after the token expires.
  const src = path.join(work, 'secret-test.bin');
  const sum = await writeRandomFile(src, 2 * MiB);
  const act = await run(`ls -l ${q(M)} && cat ${q(path.join(M, 'hello.txt'))} && cp ${q(src)} ${q(path.join(M, 'up.bin'))} && mkdir ${q(path.join(M, 'd'))}`);
  tt.equal(act.code, 0, `the mount works ${act.stderr}`);
  await waitForServerFile(admin, folder._id, 'up.bin', sum);
  proxy.expireTokens();
  const again = await run(`ls ${q(path.join(M, 'd'))} && cat ${q(path.join(M, 'up.bin'))} > /dev/null`);
  tt.equal(again.code, 0, `and again after the token expired ${again.stderr}`);
  const tokens = proxy.tokens();
  tt.ok(tokens.length >= 2, `the daemon used ${tokens.length} tokens (one refused, one fresh)`);
  const secrets = [key, ...tokens];
  const leaks = (text: string): string[] => secrets.filter((s) => text.includes(s)).map((s) => (s === key ? 'the API key' : `token ${s.slice(0, 6)}...`));

  const ps = await run('ps -eo pid,args');
  tt.ok(ps.stdout.includes(String(m.pid)), 'ps lists the daemon');
  tt.same(leaks(ps.stdout), [], 'no secret in `ps -eo args`');

  tt.match(m.logs(), /"level":10/, 'the daemon logs at trace level');
  tt.match(m.logs(), /refused the session token/, 'it logged the re-login');
  tt.same(leaks(m.logs()), [], 'no secret in the daemon\'s logs (trace level)');

  const environ = await readFile(`/proc/${m.pid}/environ`, 'utf8');
  tt.notMatch(environ, /GIRDER_API_KEY=/, 'no GIRDER_API_KEY in /proc/<daemon>/environ');
  tt.same(leaks(environ), [], 'no secret in /proc/<daemon>/environ');
  const cmdline = await readFile(`/proc/${m.pid}/cmdline`, 'utf8');
  tt.same(leaks(cmdline), [], 'no secret in /proc/<daemon>/cmdline');

  const status = await run(`${q(process.execPath)} ${q(cliPath())} status ${q(M)} && ${q(process.execPath)} ${q(cliPath())} status --json ${q(M)}`);
  tt.equal(status.code, 0);
  tt.same(leaks(status.stdout + status.stderr), [], 'no secret in `girder-mount status`');

  await m.stop();
  const children = await readdir(dumps);
  tt.ok(children.some((f) => f.startsWith('systemd-notify-')), `the daemon ran children (${children.join(', ')})`);
  for (const f of children) {
    const env = await readFile(path.join(dumps, f), 'utf8');
    tt.ok(env.includes('NOTIFY_SOCKET='), `${f}: its environment was recorded`);
    tt.notMatch(env, /GIRDER_API_KEY=/, `${f}: no GIRDER_API_KEY in the child's environment`);
    tt.same(leaks(env), [], `${f}: no secret in the child's environment`);
  }
  tt.same(leaks(m.logs()), [], 'no secret in the logs of the shutdown either');
});

t.test('the cache directory is 0700 and its files 0600, even with umask 000', async (tt) => {
  const folder = await freshFolder('cache-modes');
  const blob = Buffer.alloc(3 * MiB, 7);
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'blob.bin', blob);
  const proxy = await proxyFor(tt);
  const cacheDir = path.join(work, 'cache-modes');
  await mkdir(cacheDir, { mode: 0o755 });
  await chmod(cacheDir, 0o755);
  const before = process.umask(0);
  let m: Mount;
  try {
    m = await mountVia(tt, proxy, folder._id, ['--attr-ttl', '1'], { cacheDir });
  } finally {
    process.umask(before);
  }
  const M = m.mountpoint;
  // Uploads held at the proxy, so journal and write buffers exist while we look.
  const held = proxy.on('POST', /\/file(\/chunk)?\?/, { kind: 'delay', ms: 4000 }, Infinity); // a chunk, or POST /file with the bytes
  const src = path.join(work, 'cache-modes.bin');
  const sum = await writeRandomFile(src, MiB);
  const act = await run(`cat ${q(path.join(M, 'blob.bin'))} > /dev/null && cp ${q(src)} ${q(path.join(M, 'w1.bin'))} && exec 3> ${q(path.join(M, 'open.txt'))} && echo open >&3 && find ${q(cacheDir)} -type f ! -perm 600 && find ${q(cacheDir)} ! -type f ! -perm 700 && find ${q(cacheDir)} -type f | wc -l`);
  tt.equal(act.code, 0, `read, write, and a file held open ${act.stderr}`);
  const lines = act.stdout.trim().split('\n');
  tt.same(lines.slice(0, -1), [], 'while busy: every file 0600, every directory 0700');
  tt.ok(Number(lines.at(-1)) >= 3, `the cache held files then (${lines.at(-1)})`);
  await waitFor(() => held.hits > 0, { what: 'an upload at the proxy' });
  proxy.clear();
  await waitForServerFile(admin, folder._id, 'w1.bin', sum);
  await waitUploadsDone(M, 120_000);
  const after = await run(`find ${q(cacheDir)} -type f ! -perm 600; find ${q(cacheDir)} ! -type f ! -perm 700; stat -c %a ${q(cacheDir)}`);
  tt.same(after.stdout.trim().split('\n'), ['700'], 'afterwards too, and the cache dir itself is 0700');
});

t.test('allow_other is off unless asked', async (tt) => {
  const folder = await freshFolder('allow-other');
  const proxy = await proxyFor(tt);
  const plain = await mountVia(tt, proxy, folder._id, []);
  const optionsOf = async (mnt: string): Promise<string[]> =>
    ((await readMounts()).filter((e) => e.mountpoint === mnt).pop()?.options ?? '').split(',');
  const plainOptions = await optionsOf(plain.mountpoint);
  tt.ok(plainOptions.includes('default_permissions'), `the mount is listed (${plainOptions.join(',')})`);
  tt.notOk(plainOptions.includes('allow_other'), 'no allow_other by default');
  await plain.stop();
  const asked = await mountVia(tt, proxy, folder._id, ['--allow-other']);
  tt.ok((await optionsOf(asked.mountpoint)).includes('allow_other'), 'allow_other with --allow-other');
});

t.test('https: a self-signed certificate is refused clearly, and accepted with --ca-file', async (tt) => {
  const folder = await freshFolder('tls');
  const dir = path.join(work, 'tls');
  await mkdir(dir, { recursive: true });
  const cert = async (name: string, san: string): Promise<{ key: string; cert: string; certFile: string }> => {
    const keyFile = path.join(dir, `${name}.key`);
    const certFile = path.join(dir, `${name}.pem`);
    const r = await run(`openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=girder-test -addext ${q(`subjectAltName=${san}`)} -keyout ${q(keyFile)} -out ${q(certFile)}`);
    if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    return { key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8'), certFile };
  };
  const good = await cert('good', 'IP:127.0.0.1');
  const proxy = await proxyFor(tt, { tls: { key: good.key, cert: good.cert } });
  tt.match(proxy.apiUrl, /^https:\/\/127\.0\.0\.1:\d+\/api\/v1$/);

  const refused = await failingMount(tt, folder._id, ['--api-url', proxy.apiUrl, '--timeout', '5', '--retries', '2'], info.admin.apiKey);
  tt.notOk(refused.timedOut, 'the daemon gives up by itself');
  tt.not(refused.code, 0, `a non-zero exit (${refused.code})`);
  tt.equal(refused.stderr.trim().split('\n').length, 1, `one line: ${refused.stderr}`);
  tt.match(refused.stderr, /^girder-mount: the TLS certificate of 127\.0\.0\.1:\d+ was not accepted: .*self-signed/, 'it names the TLS problem');
  tt.match(refused.stderr, /--ca-file/, 'and the way out');
  tt.notOk(refused.mounted, 'nothing mounted');

  const m = await mountVia(tt, proxy, folder._id, ['--ca-file', good.certFile]);
  const cat = await run(`cat ${q(path.join(m.mountpoint, 'hello.txt'))}`);
  tt.equal(cat.stdout, 'hello\n', 'with --ca-file the mount works over https');
  const write = await run(`printf 'over tls\\n' > ${q(path.join(m.mountpoint, 'tls.txt'))}`);
  tt.equal(write.code, 0, `and writes ${write.stderr}`);
  await waitForServerFile(admin, folder._id, 'tls.txt', sha512(Buffer.from('over tls\n')));
  await m.stop();

  // A certificate for another name stays refused, CA or not.
  const wrongName = await cert('wrong-name', 'DNS:elsewhere.invalid');
  const other = await proxyFor(tt, { tls: { key: wrongName.key, cert: wrongName.cert } });
  const mismatch = await failingMount(tt, folder._id, ['--api-url', other.apiUrl, '--ca-file', wrongName.certFile, '--timeout', '5', '--retries', '2'], info.admin.apiKey);
  tt.not(mismatch.code, 0, 'a certificate for another host: non-zero exit');
  tt.match(mismatch.stderr, /^girder-mount: the TLS certificate of 127\.0\.0\.1:\d+ was not accepted/, `it says so: ${mismatch.stderr}`);
  tt.notOk(mismatch.mounted, 'nothing mounted');
});

const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;

t.test('plain http to a host other than this one is warned about', {
  skip: outsideAddress === undefined ? 'no non-loopback IPv4 address on this machine to serve plain http on' : false,
}, async (tt) => {
  const address = outsideAddress as string;
  const folder = await freshFolder('plain-http');
  const remote = await proxyFor(tt, { host: address });
  tt.match(remote.apiUrl, new RegExp(`^http://${address.replace(/\./g, '\\.')}:\\d+/api/v1$`));
  const m = await mountVia(tt, remote, folder._id, []);
  tt.equal((await run(`cat ${q(path.join(m.mountpoint, 'hello.txt'))}`)).stdout, 'hello\n', 'the mount works');
  tt.match(m.logs(), /"level":40[^\n]*plain http to a remote host/, 'a warning about plain http');
  await m.stop();

  const local = await proxyFor(tt);
  const quiet = await mountVia(tt, local, folder._id, []);
  tt.notMatch(quiet.logs(), /plain http/, 'no warning for loopback');
  const status = await mountStatus(quiet.mountpoint);
  tt.equal(status.apiUrl, local.apiUrl);
});
