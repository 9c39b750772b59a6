// scripts/mount.fuse.girder-mount through mount(8) and umount(8), as root, against the real Girder:
// `mount -t fuse.girder-mount`, an fstab line (also through systemd-fstab-generator), bad options,
// and a dead mount left by a killed daemon.
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, rmdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { daemonsServing, stopDaemonsAndUnmount, waitGone, waitReaped } from '../helpers/daemon-procs.js';
import { rest, type Rest } from '../helpers/girder-rest.js';
import { repoRoot, startGirder, type GirderServer } from '../helpers/girder-server.js';
import { cliPath, isMounted, readMounts, run, shellQuote as q, type RunResult } from '../helpers/mount.js';
import { waitFor } from '../helpers/wait.js';

/** The part of tap's Test these helpers use. */
interface T {
  teardown(fn: () => unknown): void;
  equal(found: unknown, wanted: unknown, message: string): boolean;
  ok(value: unknown, message: string): boolean;
  notOk(value: unknown, message: string): boolean;
}

const HELPER = path.join(repoRoot(), 'scripts', 'mount.fuse.girder-mount');
const isRoot = process.getuid?.() === 0;

/**
 * Makes the helper findable by mount(8), which looks for /sbin/mount.<type>. The real name when it
 * is free; else (an installed copy, or another run of this test) a name of our own, so nothing of
 * anyone else's is replaced. Resolves with the type to pass to `mount -t`.
 */
async function installHelper(t: T): Promise<string> {
  let name = 'girder-mount';
  const taken = await lstat(`/sbin/mount.fuse.${name}`).then(() => true, () => false);
  if (taken) name = `girder-mount-test${process.pid}`;
  const link = `/sbin/mount.fuse.${name}`;
  await symlink(HELPER, link);
  t.teardown(() => unlink(link).catch(() => undefined));
  return `fuse.${name}`;
}

interface Place {
  dir: string;
  mnt: string;
  keyFile: string;
  cacheDir: string;
  logFile: string;
}

/** A mountpoint, a 0600 key file, a cache dir and a log file in a fresh temp dir; cleaned up after. */
async function place(t: T, server: GirderServer): Promise<Place> {
  const dir = await mkdtemp(path.join(tmpdir(), 'girder-mh-'));
  const p: Place = {
    dir,
    mnt: path.join(dir, 'mnt'),
    keyFile: path.join(dir, 'api.key'),
    cacheDir: path.join(dir, 'cache'),
    logFile: path.join(dir, 'girder-mount.log'),
  };
  await mkdir(p.mnt);
  await writeFile(p.keyFile, `${server.info.admin.apiKey}\n`, { mode: 0o600 });
  await chmod(p.keyFile, 0o600);
  t.teardown(async () => {
    await stopDaemonsAndUnmount(p.mnt);
    await rmdir(p.mnt).catch(() => undefined); // rmdir only: never recurse into a mount
    if (!(await isMounted(p.mnt))) await rm(dir, { recursive: true, force: true });
  });
  return p;
}

function baseOptions(server: GirderServer, p: Place): string {
  return `api_url=${server.info.apiUrl},api_key_file=${p.keyFile},cache_dir=${p.cacheDir},log_file=${p.logFile}`;
}

/** Runs mount(8) (or anything) with the helper pointed at this checkout's CLI. */
function sh(cmd: string): Promise<RunResult> {
  return run(cmd, { env: { GIRDER_MOUNT_CLI: cliPath() }, timeoutMs: 180_000 });
}

/** The assertion message: short when mount(8) succeeded, everything it and the daemon said when not. */
async function explain(r: RunResult, p: Place): Promise<string> {
  if (r.code === 0) return 'mount succeeds';
  const log = await readFile(p.logFile, 'utf8').catch(() => '(no log)');
  return `mount exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n--- daemon log ---\n${log}`;
}

async function fuseTypeAt(mnt: string): Promise<string | undefined> {
  return (await readMounts()).filter((m) => m.mountpoint === mnt).pop()?.fstype;
}

/** The one daemon serving `mnt`. */
async function theDaemon(mnt: string): Promise<number> {
  const pids = await daemonsServing(mnt);
  if (pids.length !== 1) throw new Error(`expected one daemon serving ${mnt}, found ${JSON.stringify(pids)}`);
  return pids[0] as number;
}

async function umountAndWaitForExit(t: T, mnt: string, pid: number): Promise<void> {
  const r = await sh(`umount ${q(mnt)}`);
  t.equal(r.code, 0, `umount succeeds ${r.stderr}`);
  t.notOk(await isMounted(mnt), 'nothing is mounted after umount');
  t.ok(await waitGone(pid, 120_000), 'the daemon exits after umount');
}

t.test('mount.fuse.girder-mount', { skip: isRoot ? false : 'needs root (mount(8) and /sbin)' }, async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin: Rest = rest(server, 'admin');
  const folder = await admin.createFolder(server.info.folders.adminPublic, `mount-helper-${process.pid}`);
  const hello = Buffer.from('hello from girder\n');
  await admin.uploadBytes({ type: 'folder', id: folder._id }, 'hello.txt', hello);
  const type = await installHelper(t);

  t.test('mount -t fuse.girder-mount mounts; umount unmounts and the daemon ends', async (t) => {
    const p = await place(t, server);
    const r = await sh(`mount -t ${type} ${folder._id} ${q(p.mnt)} -o ${q(baseOptions(server, p))}`);
    t.equal(r.code, 0, await explain(r, p));
    t.equal(await fuseTypeAt(p.mnt), 'fuse.girder-mount', 'mounted as fuse.girder-mount');

    const ls = await sh(`ls -1 ${q(p.mnt)}`);
    t.equal(ls.code, 0, `ls works ${ls.stderr}`);
    t.same(ls.stdout.split('\n').filter(Boolean), ['hello.txt'], 'the folder is listed');
    const cat = await sh(`cat ${q(path.join(p.mnt, 'hello.txt'))}`);
    t.equal(cat.stdout, hello.toString(), 'a file reads back');

    const pid = await theDaemon(p.mnt);
    const status = await run(`node ${q(cliPath())} status --json ${q(p.mnt)}`, { env: { GIRDER_MOUNT_CLI: undefined } });
    t.equal(status.code, 0, `girder-mount status answers ${status.stderr}`);
    if (status.code === 0) t.equal((JSON.parse(status.stdout) as { pid: number }).pid, pid, 'status reports the daemon the helper started');

    // Written just before umount: the daemon finishes the upload after the unmount, then exits.
    const written = await sh(`printf 'written before umount\\n' > ${q(path.join(p.mnt, 'late.txt'))}`);
    t.equal(written.code, 0, `a file is written ${written.stderr}`);
    await umountAndWaitForExit(t, p.mnt, pid);
    const items = await admin.listItems(folder._id);
    const late = items.find((i) => i.name === 'late.txt');
    t.ok(late, 'the file written before umount reached Girder');
    if (late) {
      const [file] = await admin.listFiles(late._id);
      t.equal(file && (await admin.download(file._id)).toString(), 'written before umount\n', 'with its content');
      await admin.delete(`/item/${late._id}`);
    }
  });

  t.test('an fstab line with _netdev,x-systemd.automount', async (t) => {
    const p = await place(t, server);
    const options = `_netdev,x-systemd.automount,nofail,noauto,${baseOptions(server, p)},ro,uid=1234,gid=2345,umask=027`;
    const fstab = path.join(p.dir, 'fstab');
    await writeFile(fstab, `# test fstab\n${folder._id}  ${p.mnt}  ${type}  ${options}  0 0\n`);

    t.test('mount <mountpoint> reads the line', async (t) => {
      const r = await sh(`mount -T ${q(fstab)} ${q(p.mnt)}`);
      t.equal(r.code, 0, await explain(r, p));
      const st = await sh(`stat -c '%u %g %a' ${q(path.join(p.mnt, 'hello.txt'))}`);
      t.equal(st.stdout.trim(), '1234 2345 440', 'uid, gid, umask and ro apply');
      const touch = await sh(`touch ${q(path.join(p.mnt, 'new.txt'))}`);
      t.not(touch.code, 0, 'a read-only mount refuses writes');
      t.match(touch.stderr, /read-only/i, 'EROFS');
      const again = await sh(`mount -T ${q(fstab)} ${q(p.mnt)}`);
      t.not(again.code, 0, 'mounting twice fails');
      t.match(again.stderr, /already mounted/, 'says it is already mounted');
      t.equal((await daemonsServing(p.mnt)).length, 1, 'no second daemon stays behind');
      await umountAndWaitForExit(t, p.mnt, await theDaemon(p.mnt));
    });

    t.test('systemd-fstab-generator makes valid units, and their mount command works', async (t) => {
      const gen = path.join(p.dir, 'generator');
      await mkdir(gen);
      const g = await run(
        `/lib/systemd/system-generators/systemd-fstab-generator ${q(gen)} ${q(gen)} ${q(gen)}`,
        { env: { SYSTEMD_FSTAB: fstab, SYSTEMD_LOG_LEVEL: 'warning' } },
      );
      t.equal(g.code, 0, `generator ran ${g.stderr}`);
      const unit = (await run(`systemd-escape --path --suffix=mount ${q(p.mnt)}`)).stdout.trim();
      const automount = unit.replace(/\.mount$/, '.automount');
      const mountUnit = await readFile(path.join(gen, unit), 'utf8');
      t.match(mountUnit, `Type=${type}`, 'a .mount unit of our type');
      await t.resolves(lstat(path.join(gen, 'remote-fs.target.wants', automount)), '_netdev: a remote automount');
      const verify = await run(`systemd-analyze verify ${q(path.join(gen, unit))} ${q(path.join(gen, automount))}`);
      t.equal(verify.code, 0, `systemd-analyze verify accepts them ${verify.stderr}`);
      t.notMatch(verify.stderr, new RegExp(`${unit}|${automount}`), 'no warnings about the generated units');

      // What systemd runs for the .mount unit: mount <What> <Where> -t <Type> -o <Options>
      const field = (key: string): string => new RegExp(`^${key}=(.*)$`, 'm').exec(mountUnit)?.[1] ?? '';
      const r = await sh(`mount ${q(field('What'))} ${q(field('Where'))} -t ${q(field('Type'))} -o ${q(field('Options'))}`);
      t.equal(r.code, 0, await explain(r, p));
      const ls = await sh(`ls -1 ${q(p.mnt)}`);
      t.match(ls.stdout, /^hello\.txt$/m, 'the folder is listed');
      await umountAndWaitForExit(t, p.mnt, await theDaemon(p.mnt));
    });
  });

  t.test('mount -a with a girder:<folderId> source is idempotent', async (t) => {
    const p = await place(t, server);
    const fstab = path.join(p.dir, 'fstab');
    // /proc/mounts shows the source as girder:<folderId>: with the same text in fstab, mount -a sees
    // the line is mounted already instead of mounting it again (which would fail).
    await writeFile(fstab, `girder:${folder._id} ${p.mnt} ${type} _netdev,nofail,${baseOptions(server, p)} 0 0\n`);
    const first = await sh(`mount -a -T ${q(fstab)}`);
    t.equal(first.code, 0, await explain(first, p));
    t.equal(await fuseTypeAt(p.mnt), 'fuse.girder-mount', 'mounted');
    const second = await sh(`mount -a -T ${q(fstab)}`);
    t.equal(second.code, 0, `a second mount -a does nothing ${second.stderr}`);
    t.equal((await readMounts()).filter((m) => m.mountpoint === p.mnt).length, 1, 'one mount');
    await umountAndWaitForExit(t, p.mnt, await theDaemon(p.mnt));
  });

  t.test('bad options: a clear error and nothing mounted', async (t) => {
    const p = await place(t, server);
    const cases: { what: string; options: string; code: number; message: RegExp }[] = [
      { what: 'an unknown option', options: `${baseOptions(server, p)},bogus=1`, code: 1, message: /unknown option "bogus"/ },
      { what: 'a secret in the options', options: `${baseOptions(server, p)},api_key=abc`, code: 1, message: /api_key_file/ },
      { what: 'no server', options: `api_key_file=${p.keyFile}`, code: 1, message: /api_url/ },
      {
        what: 'a missing key file',
        options: baseOptions(server, p).replace(p.keyFile, `${p.keyFile}.missing`),
        code: 32,
        message: /girder-mount: cannot read --api-key-file/,
      },
      { what: 'a bad uid', options: `${baseOptions(server, p)},uid=alice`, code: 32, message: /--uid/ },
    ];
    for (const c of cases) {
      const r = await sh(`mount -t ${type} ${folder._id} ${q(p.mnt)} -o ${q(c.options)}`);
      t.equal(r.code, c.code, `${c.what}: exit code ${c.code}`);
      t.match(r.stderr, c.message, `${c.what}: says why`);
      t.notOk(await isMounted(p.mnt), `${c.what}: nothing mounted`);
    }
    const wrongKey = path.join(p.dir, 'wrong.key');
    await writeFile(wrongKey, 'not-a-valid-key\n', { mode: 0o600 });
    const r = await sh(`mount -t ${type} ${folder._id} ${q(p.mnt)} -o ${q(baseOptions(server, p).replace(p.keyFile, wrongKey))}`);
    t.equal(r.code, 32, 'a refused key: mount failure');
    t.match(r.stderr, /girder-mount: .*(API key|refused)/i, 'the daemon says the key was refused');
    const badFolder = await sh(`mount -t ${type} 0123456789abcdef01234567 ${q(p.mnt)} -o ${q(baseOptions(server, p))}`);
    t.equal(badFolder.code, 32, 'a folder that does not exist: mount failure');
    t.match(badFolder.stderr, /folder 0123456789abcdef01234567 does not exist/, 'says so');
    const notAnId = await sh(`mount -t ${type} not-a-folder ${q(p.mnt)} -o ${q(baseOptions(server, p))}`);
    t.equal(notAnId.code, 1, 'not a folder id: usage error');
    t.match(notAnId.stderr, /not a Girder folder id/, 'says so');
    t.notOk(await isMounted(p.mnt), 'nothing mounted');
    t.same(await daemonsServing(p.mnt), [], 'no daemon left running');
  });

  t.test('a dead mount left by a killed daemon is cleared by the next mount', async (t) => {
    const p = await place(t, server);
    const command = `mount -t ${type} girder:${folder._id} ${q(p.mnt)} -o ${q(baseOptions(server, p))}`;
    const first = await sh(command);
    t.equal(first.code, 0, await explain(first, p));
    const pid = await theDaemon(p.mnt);
    process.kill(pid, 'SIGKILL');
    // Reaped, not only dead: the daemon's cache-dir lock takes a zombie for a live daemon.
    t.ok(await waitReaped(pid, 60_000), 'the daemon is gone');
    t.ok(await isMounted(p.mnt), 'its mount stays behind, dead');
    const second = await sh(command);
    t.equal(second.code, 0, await explain(second, p));
    const ls = await sh(`ls -1 ${q(p.mnt)}`);
    t.equal(ls.code, 0, `ls works ${ls.stderr}`);
    t.match(ls.stdout, /^hello\.txt$/m, 'the new mount answers');
    await waitFor(async () => (await readMounts()).filter((m) => m.mountpoint === p.mnt).length === 1, {
      what: 'exactly one mount at the mountpoint',
    });
    await umountAndWaitForExit(t, p.mnt, await theDaemon(p.mnt));
  });
});
