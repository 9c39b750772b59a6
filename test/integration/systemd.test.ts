// systemd/girder-mount@.service: `systemd-analyze verify` accepts it, it says what the issue asks
// (notify, drain on stop, restart, network ordering, no secrets, no mount namespace), example.conf
// names real options, and its own ExecStartPre/ExecStart/ExecStop lines run a mount the way systemd
// would: EnvironmentFile variables, the unit's capability bounding set and NoNewPrivileges (through
// setpriv), a NOTIFY_SOCKET that must receive READY=1 only once the mount answers, and ExecStop
// draining an upload before the daemon exits 0. No running systemd is needed.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { stopDaemonsAndUnmount } from '../helpers/daemon-procs.js';
import { rest } from '../helpers/girder-rest.js';
import { repoRoot, startGirder, venvPython } from '../helpers/girder-server.js';
import { cliPath, isMounted, run, shellQuote as q } from '../helpers/mount.js';
import { waitFor, WaitAborted } from '../helpers/wait.js';

const UNIT = path.join(repoRoot(), 'systemd', 'girder-mount@.service');
const EXAMPLE_CONF = path.join(repoRoot(), 'systemd', 'example.conf');
/** The CLI path written in the unit (scripts/install.sh replaces it with the installed one). */
const UNIT_CLI = '/usr/local/bin/girder-mount';
const isRoot = process.getuid?.() === 0;

type Section = [key: string, value: string][];

/** A unit file as sections of key/value pairs, in order (keys may repeat). */
function parseUnit(text: string): Map<string, Section> {
  const sections = new Map<string, Section>();
  let current: Section | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = [];
      sections.set(header[1] as string, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq < 0) throw new Error(`unexpected line in unit: ${line}`);
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return sections;
}

function values(unit: Map<string, Section>, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

function value(unit: Map<string, Section>, section: string, key: string): string | undefined {
  return values(unit, section, key).pop();
}

/** An EnvironmentFile: KEY=value lines, optional quotes, # comments. */
function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`not an environment line: ${line}`);
    env[m[1] as string] = (m[2] as string).replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return env;
}

interface ExecLine {
  ignoreFailure: boolean;
  argv: string[];
}

/** An Exec*= line as systemd runs it: "-" prefix, ${VAR} as one word, split on spaces (no quotes used). */
function expandExec(line: string, env: Record<string, string>, cli: string): ExecLine {
  const prefix = /^[-@:+!]*/.exec(line)?.[0] ?? '';
  const words = line.slice(prefix.length).split(/\s+/).filter(Boolean);
  const argv = words.map((w) => w.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => env[name] ?? ''));
  if (argv[0] === UNIT_CLI) argv[0] = cli;
  return { ignoreFailure: prefix.includes('-'), argv };
}

/** A stand-in for the installed CLI: an executable that runs this checkout's build. */
async function writeShim(dir: string): Promise<string> {
  const shim = path.join(dir, 'girder-mount');
  await writeFile(shim, `#!/bin/sh\nexec ${q(process.execPath)} ${q(cliPath())} "$@"\n`);
  await chmod(shim, 0o755);
  return shim;
}

async function verify(file: string): Promise<{ code: number | null; warnings: string[] }> {
  const r = await run(`systemd-analyze verify ${q(file)}`, { timeoutMs: 120_000 });
  // Only lines about this unit: other units on the machine may have their own complaints.
  const warnings = r.stderr.split('\n').filter((l) => l.includes(path.basename(file)) || l.includes('girder-mount@'));
  return { code: r.code, warnings };
}

t.test('systemd-analyze verify accepts the unit', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'girder-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const shim = await writeShim(dir);
  const text = await readFile(UNIT, 'utf8');
  t.ok(text.includes(UNIT_CLI), `the unit runs ${UNIT_CLI} (what scripts/install.sh replaces)`);

  const copy = path.join(dir, 'girder-mount@.service');
  await writeFile(copy, text.replaceAll(UNIT_CLI, shim));
  const ok = await verify(copy);
  t.equal(ok.code, 0, 'exit code 0');
  t.same(ok.warnings, [], 'no warnings about the unit');

  // The check can fail: a typo in a key and a bad value are reported.
  const broken = path.join(dir, 'broken', 'girder-mount@.service');
  await mkdir(path.dirname(broken));
  await writeFile(broken, text.replaceAll(UNIT_CLI, shim).replace('\nType=notify', '\nType=notifyy').replace('\nNotifyAccess=', '\nNotifyAcess='));
  const bad = await verify(broken);
  t.ok(bad.warnings.some((l) => /notifyy/.test(l)), 'a bad Type= value is reported');
  t.ok(bad.warnings.some((l) => /NotifyAcess/.test(l)), 'an unknown key is reported');
  const missing = await verify(await writeMissing(dir, text));
  t.not(missing.code, 0, 'a missing ExecStart binary fails');
});

async function writeMissing(dir: string, text: string): Promise<string> {
  const file = path.join(dir, 'missing', 'girder-mount@.service');
  await mkdir(path.dirname(file));
  await writeFile(file, text.replaceAll(UNIT_CLI, path.join(dir, 'no-such-girder-mount')));
  return file;
}

t.test('the unit says what the issue asks', async (t) => {
  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  t.equal(value(unit, 'Service', 'Type'), 'notify', 'Type=notify');
  t.equal(value(unit, 'Service', 'NotifyAccess'), 'all', 'NotifyAccess=all: systemd-notify is a child process');
  t.equal(value(unit, 'Service', 'EnvironmentFile'), '/etc/girder-mount/%i.conf', 'settings per instance');
  t.match(value(unit, 'Service', 'ExecStart'), /^\S+ \$\{GIRDER_MOUNT_FOLDER_ID\} \$\{GIRDER_MOUNT_MOUNTPOINT\}$/, 'folder and mountpoint from the conf');
  const stop = value(unit, 'Service', 'ExecStop') ?? '';
  const stopTimeout = /unmount \$\{GIRDER_MOUNT_MOUNTPOINT\} --timeout (\d+)/.exec(stop);
  t.ok(stopTimeout, 'ExecStop drains through girder-mount unmount --timeout');
  t.ok(Number(value(unit, 'Service', 'TimeoutStopSec')) > Number(stopTimeout?.[1]), 'TimeoutStopSec is above the unmount timeout');
  t.equal(value(unit, 'Service', 'Restart'), 'on-failure', 'Restart=on-failure');
  t.equal(value(unit, 'Service', 'RestartPreventExitStatus'), '2', 'but not after a usage error (exit 2): the settings need fixing');
  t.ok(values(unit, 'Unit', 'After').join(' ').split(/\s+/).includes('network-online.target'), 'After=network-online.target');
  t.ok(values(unit, 'Unit', 'Wants').join(' ').split(/\s+/).includes('network-online.target'), 'Wants=network-online.target');
  t.equal(value(unit, 'Install', 'WantedBy'), 'multi-user.target', 'enabled: started at boot');

  const text = await readFile(UNIT, 'utf8');
  const active = text.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
  t.notMatch(active, /GIRDER_API_KEY|GIRDER_PASSWORD|GIRDER_TOKEN|--api-key\b|--password/, 'no secret on a command line or in the unit');
  // Each of these gives the service its own mount namespace (the FUSE mount would be invisible
  // outside) or hides /dev/fuse, or breaks Node's JIT.
  for (const key of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'ReadOnlyPaths', 'ReadWritePaths', 'InaccessiblePaths', 'TemporaryFileSystem', 'BindPaths', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectProc', 'ProtectClock', 'ProtectHostname', 'MountFlags', 'DevicePolicy', 'DeviceAllow', 'MemoryDenyWriteExecute', 'DynamicUser', 'RootDirectory']) {
    t.equal(value(unit, 'Service', key), undefined, `no ${key}=`);
  }
  const caps = (value(unit, 'Service', 'CapabilityBoundingSet') ?? '').split(/\s+/);
  t.ok(caps.includes('CAP_SYS_ADMIN'), 'keeps CAP_SYS_ADMIN for mount(2)');
});

t.test('example.conf names only real options', async (t) => {
  const help = await run(`${q(process.execPath)} ${q(cliPath())} --help`);
  t.equal(help.code, 0, `girder-mount --help ${help.stderr}`);
  const text = await readFile(EXAMPLE_CONF, 'utf8');
  const names = [...text.matchAll(/^#?(GIRDER_MOUNT_[A-Z0-9_]+)=/gm)].map((m) => m[1] as string);
  t.ok(names.length > 10, 'documents the options');
  for (const required of ['GIRDER_MOUNT_FOLDER_ID', 'GIRDER_MOUNT_MOUNTPOINT', 'GIRDER_MOUNT_API_URL', 'GIRDER_MOUNT_API_KEY_FILE']) {
    t.match(text, new RegExp(`^${required}=`, 'm'), `${required} is set`);
  }
  for (const name of names) {
    if (name === 'GIRDER_MOUNT_FOLDER_ID' || name === 'GIRDER_MOUNT_MOUNTPOINT') continue;
    const flag = `--${name.slice('GIRDER_MOUNT_'.length).toLowerCase().replaceAll('_', '-')}`;
    t.match(help.stdout, new RegExp(`${flag}[ ,\n]`), `${name} is the option ${flag}`);
  }
  t.notMatch(text, /^\s*GIRDER_(API_KEY|PASSWORD|TOKEN)=/m, 'no secret in the conf');
});

/** Datagrams sent to a NOTIFY_SOCKET, read by a small Python listener (Node has no AF_UNIX datagrams). */
async function notifyListener(socketPath: string): Promise<{ messages: string[]; stop(): void }> {
  const script = [
    'import json, socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print(json.dumps("listening"), flush=True)',
    'while True:',
    '    print(json.dumps(s.recv(65536).decode(errors="replace")), flush=True)',
  ].join('\n');
  const child = spawn(venvPython(), ['-c', script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => messages.push(JSON.parse(line) as string));
  await waitFor(() => messages.includes('listening'), { timeoutMs: 30_000, what: 'the notify listener' });
  return { messages, stop: () => void child.kill('SIGKILL') };
}

/** setpriv arguments that apply the unit's CapabilityBoundingSet= and NoNewPrivileges=. */
function privilegeArgs(unit: Map<string, Section>): string[] {
  const caps = (value(unit, 'Service', 'CapabilityBoundingSet') ?? '').split(/\s+/).filter(Boolean);
  const args: string[] = [];
  if (caps.length > 0) args.push(`--bounding-set=-all,${caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',')}`);
  if (value(unit, 'Service', 'NoNewPrivileges') === 'yes') args.push('--no-new-privs');
  return args;
}

t.test("the unit's commands mount, notify, and drain on stop", { skip: isRoot ? false : 'needs root (mount(2), setpriv)' }, async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin = rest(server, 'admin');
  const folder = await admin.createFolder(server.info.folders.adminPublic, `systemd-unit-${process.pid}`);
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'hello.txt', Buffer.from('hello\n'));

  const dir = await mkdtemp(path.join(tmpdir(), 'girder-unit-run-'));
  const mnt = path.join(dir, 'mnt', 'girder'); // missing on purpose: ExecStartPre creates it
  t.teardown(async () => {
    await stopDaemonsAndUnmount(mnt);
    await rmdir(mnt).catch(() => undefined);
    if (!(await isMounted(mnt))) await rm(dir, { recursive: true, force: true });
  });
  const shim = await writeShim(dir);
  const keyFile = path.join(dir, 'test.key');
  await writeFile(keyFile, `${server.info.admin.apiKey}\n`, { mode: 0o600 });
  const confFile = path.join(dir, 'test.conf');
  await writeFile(
    confFile,
    [
      '# as in /etc/girder-mount/test.conf',
      `GIRDER_MOUNT_FOLDER_ID=${folder._id}`,
      `GIRDER_MOUNT_MOUNTPOINT=${mnt}`,
      `GIRDER_MOUNT_API_URL=${server.info.apiUrl}`,
      `GIRDER_MOUNT_API_KEY_FILE=${keyFile}`,
      `GIRDER_MOUNT_CACHE_DIR=${path.join(dir, 'cache')}`,
      'GIRDER_MOUNT_LOG_LEVEL=info',
      '',
    ].join('\n'),
  );

  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  // systemd's environment for the commands: its own PATH, the EnvironmentFile, and for ExecStart NOTIFY_SOCKET.
  const conf = parseEnvironmentFile(await readFile(confFile, 'utf8'));
  const baseEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...conf };
  const notifySocket = path.join(dir, 'notify.sock');
  const notify = await notifyListener(notifySocket);
  t.teardown(() => notify.stop());

  for (const line of values(unit, 'Service', 'ExecStartPre')) {
    const pre = expandExec(line, baseEnv, shim);
    const r = await run(pre.argv.map(q).join(' '), { env: baseEnv });
    if (!pre.ignoreFailure) t.equal(r.code, 0, `ExecStartPre ${pre.argv.join(' ')} ${r.stderr}`);
  }

  const start = expandExec(value(unit, 'Service', 'ExecStart') ?? '', baseEnv, shim);
  t.same(start.argv.slice(1), [folder._id, mnt], 'ExecStart passes the folder id and the mountpoint');
  const umask = value(unit, 'Service', 'UMask') ?? '0022';
  const daemon: ChildProcess = spawn(
    'sh',
    ['-c', `umask ${umask} && exec setpriv ${privilegeArgs(unit).map(q).join(' ')} -- "$@"`, 'sh', ...start.argv],
    { env: { ...baseEnv, NOTIFY_SOCKET: notifySocket }, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' },
  );
  let output = '';
  daemon.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  daemon.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  t.teardown(() => void daemon.kill('SIGKILL'));

  const ready = await waitFor(
    () => {
      if (daemon.exitCode !== null) throw new WaitAborted(`the daemon exited with ${daemon.exitCode}:\n${output}`);
      return notify.messages.find((m) => m.split('\n').includes('READY=1'));
    },
    { timeoutMs: 120_000, what: 'READY=1 on NOTIFY_SOCKET' },
  );
  const ls = await run(`ls -1 ${q(mnt)}`);
  t.equal(ls.stdout, 'hello.txt\n', 'at READY=1 the mount answers');
  t.match(ready, new RegExp(`^MAINPID=${daemon.pid}$`, 'm'), 'the notification names the main process');

  const caps = await readFile(`/proc/${daemon.pid}/status`, 'utf8');
  t.match(caps, /^NoNewPrivs:\s+1$/m, 'the daemon ran with NoNewPrivileges');
  t.match(caps, /^CapBnd:\s+0000000000200006$/m, 'and the bounding set CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH');

  const written = await run(`printf 'written through the service\\n' > ${q(path.join(mnt, 'from-service.txt'))}`);
  t.equal(written.code, 0, `a file is written ${written.stderr}`);

  const stopLine = expandExec(value(unit, 'Service', 'ExecStop') ?? '', baseEnv, shim);
  const stop = await run(stopLine.argv.map(q).join(' '), { env: { ...baseEnv, MAINPID: String(daemon.pid) }, timeoutMs: 400_000 });
  t.equal(stop.code, 0, `ExecStop (${stopLine.argv.slice(1).join(' ')}) succeeds with the unit's environment: ${stop.stderr}`);
  // What systemd does next: SIGTERM to whatever is left, SIGKILL after TimeoutStopSec.
  if (daemon.exitCode === null) daemon.kill('SIGTERM');
  const killer = setTimeout(() => daemon.kill('SIGKILL'), Number(value(unit, 'Service', 'TimeoutStopSec') ?? 90) * 1000);
  const code = await exited;
  clearTimeout(killer);
  // systemd counts exit 0 and death by SIGTERM/SIGINT/SIGHUP/SIGPIPE as clean (the SIGTERM may land
  // while the daemon is already exiting): then Restart=on-failure does not restart it.
  const clean = code === 0 || ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGPIPE'].includes(daemon.signalCode ?? '');
  t.ok(clean, `the daemon ends cleanly, no restart; got exit ${code}, signal ${daemon.signalCode}\n${output}`);
  t.notOk(await isMounted(mnt), 'nothing is mounted after stop');
  t.ok(notify.messages.some((m) => m.split('\n').includes('STOPPING=1')), 'STOPPING=1 was sent');

  const item = (await admin.listItems(folder._id)).find((i) => i.name === 'from-service.txt');
  t.ok(item, 'the file written before stop is on the server');
  if (item) {
    const [file] = await admin.listFiles(item._id);
    t.equal(file && (await admin.download(file._id)).toString(), 'written through the service\n', 'with its content');
  }
});
