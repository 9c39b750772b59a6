// Packaging: `npm pack` output holds what a machine needs, installs with `npm install -g` into a
// fresh prefix, and the installed `girder-mount` runs; scripts/install.sh (staged with DESTDIR)
// puts the unit and the mount helper in place pointing at the installed CLI.
import { access, constants, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/girder-server.js';
import { run, shellQuote as q } from '../helpers/mount.js';

interface PackResult {
  filename: string;
  files: { path: string; mode: number }[];
}

const REQUIRED = [
  'package.json',
  'dist/src/cli.js',
  'dist/src/daemon.js',
  'scripts/mount.fuse.girder-mount',
  'scripts/install.sh',
  'scripts/build-fuse-native.sh',
  'systemd/girder-mount@.service',
  'systemd/example.conf',
];

const { version } = JSON.parse(await readFile(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string };

t.test('npm pack, npm install -g <tarball>, girder-mount --help', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'girder-pack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const pack = await run(`npm pack --json --pack-destination ${q(dir)}`, { cwd: repoRoot(), timeoutMs: 300_000 });
  t.equal(pack.code, 0, `npm pack ${pack.stderr}`);
  const [result] = JSON.parse(pack.stdout) as PackResult[];
  if (!result) throw new Error(`npm pack printed no result: ${pack.stdout}`);
  const files = new Map(result.files.map((f) => [f.path, f.mode]));
  for (const f of REQUIRED) t.ok(files.has(f), `the package holds ${f}`);
  for (const f of ['scripts/mount.fuse.girder-mount', 'scripts/install.sh']) {
    t.ok(((files.get(f) ?? 0) & 0o111) !== 0, `${f} is executable in the package`);
  }
  const strays = [...files.keys()].filter((f) => /^(test|bench|src|dist\/test|dist\/bench|\.venv|node_modules)\//.test(f) || f.endsWith('.ts'));
  t.same(strays, [], 'no sources, tests or benchmarks in the package');

  const prefix = path.join(dir, 'prefix');
  const tarball = path.join(dir, result.filename);
  const install = await run(`npm install -g --no-audit --no-fund --prefix ${q(prefix)} ${q(tarball)}`, { cwd: dir, timeoutMs: 900_000 });
  t.equal(install.code, 0, `npm install -g ${install.stderr}`);

  const bin = path.join(prefix, 'bin', 'girder-mount');
  const help = await run(`${q(bin)} --help`, { cwd: dir });
  t.equal(help.code, 0, `girder-mount --help exits 0 ${help.stderr}`);
  t.match(help.stdout, /mount a Girder folder/, 'shows the mount command');
  t.match(help.stdout, /status <mountpoint>/, 'shows status');
  t.match(help.stdout, /unmount <mountpoint>/, 'shows unmount');
  const v = await run(`${q(bin)} --version`, { cwd: dir });
  t.equal(v.stdout.trim(), version, '--version is the package version');
  // Every module and dependency loads (cli.js imports the whole daemon, fuse-native's addon included).
  const status = await run(`${q(bin)} status ${q(dir)}`, { cwd: dir, env: { GIRDER_MOUNT_CLI: undefined } });
  t.equal(status.code, 1, 'status of a directory nobody serves fails');
  t.match(status.stderr, /no girder-mount is serving/, 'with a clear message');
  const usage = await run(`${q(bin)} not-a-folder ${q(dir)} --api-url http://127.0.0.1:9/api/v1`, {
    cwd: dir,
    env: { GIRDER_API_KEY: 'x', GIRDER_MOUNT_CLI: undefined },
  });
  t.not(usage.code, 0, 'a bad folder id is refused');
  t.match(usage.stderr, /not a Girder folder id/, 'with a clear message');

  t.test('scripts/install.sh stages the unit and the mount helper for the installed CLI', async (t) => {
    const root = path.join(dir, 'root');
    const inst = await run(`bash ${q(path.join(repoRoot(), 'scripts', 'install.sh'))} ${q(tarball)}`, {
      cwd: dir,
      env: { DESTDIR: root, NPM_PREFIX: prefix, SKIP_FUSE_PATCH: '1' },
      timeoutMs: 900_000,
    });
    t.equal(inst.code, 0, `install.sh ${inst.stderr}`);

    const unitFile = path.join(root, 'etc', 'systemd', 'system', 'girder-mount@.service');
    const unit = await readFile(unitFile, 'utf8');
    t.match(unit, new RegExp(`^ExecStart=${escapeRe(bin)} \\$\\{GIRDER_MOUNT_FOLDER_ID\\}`, 'm'), 'ExecStart runs the installed CLI');
    t.match(unit, new RegExp(`^ExecStop=-?${escapeRe(bin)} unmount `, 'm'), 'so does ExecStop');
    t.notMatch(unit, /\/usr\/local\/bin\/girder-mount/, 'no other path is left');
    const verify = await run(`systemd-analyze verify ${q(unitFile)}`);
    t.equal(verify.code, 0, `systemd-analyze verify accepts the installed unit ${verify.stderr}`);
    t.notMatch(verify.stderr, /girder-mount@/, 'without warnings');

    const helper = path.join(root, 'sbin', 'mount.fuse.girder-mount');
    t.equal((await stat(helper)).mode & 0o777, 0o755, 'the mount helper is installed executable');
    await t.resolves(access(path.join(root, 'etc', 'girder-mount', 'example.conf.sample'), constants.R_OK), 'example conf installed');
    await t.resolves(access(path.join(root, 'var', 'log', 'girder-mount'), constants.W_OK), 'log directory made');
    // -f (fake) -v: show the command mount(8) would run, without running it.
    const fake = await run(`${q(helper)} 0123456789abcdef01234567 ${q(dir)} -fv -o api_url=http://girder.example/api/v1,ro,_netdev`, {
      env: { GIRDER_MOUNT_CLI: undefined },
    });
    t.equal(fake.code, 0, `the helper runs ${fake.stderr}`);
    t.match(fake.stderr, `running ${bin} 0123456789abcdef01234567 ${dir} --api-url http://girder.example/api/v1 --read-only`, 'and runs the installed CLI');
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
