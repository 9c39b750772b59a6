// Writing through a real mount of the built CLI with ordinary tools (cp, cp -r, >>, dd, truncate,
// mv, rm -r, mkdir -p, rsync), each checked afterwards through Girder's REST API: sizes, SHA-512s
// (against sha512sum), ids that must survive, and the upload bytes counted by a proxy in between.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { rest, type RawFolder } from '../helpers/girder-rest.js';
import { startGirder } from '../helpers/girder-server.js';
import { startMount } from '../helpers/mount.js';
import { mountStatus, waitUploadsDone } from '../helpers/mount-status.js';
import { writeRandomFile, sha512 } from '../helpers/random-file.js';
import { exists, localTree, remoteFile, remoteLookup, remoteTree } from '../helpers/remote-tree.js';
import { shell } from '../helpers/shell.js';
import { startUploadProxy } from '../helpers/upload-proxy.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;

t.test('writing through the mount, checked through REST', async (t) => {
  const server = await startGirder();
  t.teardown(() => server.stop());
  const admin = rest(server, 'admin');
  const root = await admin.createFolder(server.info.folders.adminPrivate, `write-mount-${process.pid}`);
  const proxy = await startUploadProxy(server.info.apiUrl);
  t.teardown(() => proxy.stop());
  const W = await mkdtemp(path.join(tmpdir(), 'write-mount-work-'));
  t.teardown(() => rm(W, { recursive: true, force: true }));
  const mount = await startMount({ server: { ...server.info, apiUrl: proxy.apiUrl }, folderId: root._id });
  t.teardown(() => mount.cleanup());
  t.teardown(() => {
    if (!t.passing()) t.comment(`--- daemon log (tail) ---\n${mount.logs().slice(-8000)}`);
  });
  const M = mount.mountpoint;
  const sh = shell({ M, W });
  const settle = (): Promise<unknown> => waitUploadsDone(M);
  /** The folder at `rel` under the mounted root, by REST. */
  const folderAt = async (rel: string): Promise<RawFolder> => {
    const entry = await remoteLookup(admin, root._id, rel);
    if (entry?.kind !== 'folder') throw new Error(`no folder ${rel} on the server`);
    return entry.folder;
  };

  t.test('cp of new files: 0 B, 1 B, 5 MiB - 1, 5 MiB + 1, 300 MiB', async (t) => {
    const sizes = [0, 1, 5 * MiB - 1, 5 * MiB + 1, 300 * MiB];
    await mkdir(path.join(W, 'sizes'));
    for (const size of sizes) await writeRandomFile(path.join(W, 'sizes', `f-${size}.bin`), size);
    await sh.ok('mkdir "$M/sizes" && cp "$W"/sizes/* "$M/sizes/"');
    await settle();
    for (const size of sizes) {
      const name = `sizes/f-${size}.bin`;
      const { file } = await remoteFile(admin, root._id, name);
      t.equal(file.size, size, `${name}: size on the server`);
      t.equal(file.sha512, await sh.sha512sum(`"$W/${name}"`), `${name}: server sha512 equals sha512sum`);
    }
    t.same(await remoteTree(admin, (await folderAt('sizes'))._id), await localTree(path.join(W, 'sizes')), 'nothing else was created');
    await rm(path.join(W, 'sizes'), { recursive: true });
  });

  t.test('cp -r of a tree with nested directories', async (t) => {
    const src = path.join(W, 'tree');
    await mkdir(path.join(src, 'a', 'b', 'c'), { recursive: true });
    await mkdir(path.join(src, 'empty'));
    await writeRandomFile(path.join(src, 'top.bin'), 6 * MiB);
    await writeRandomFile(path.join(src, 'a', 'one.bin'), 1000);
    await writeFile(path.join(src, 'a', 'b', 'hello.txt'), 'hello\n');
    await writeRandomFile(path.join(src, 'a', 'b', 'c', 'deep.bin'), 70_000);
    await writeFile(path.join(src, 'a', 'b', 'c', 'zero'), '');
    await sh.ok('cp -r "$W/tree" "$M/tree"');
    await settle();
    t.same(await remoteTree(admin, (await folderAt('tree'))._id), await localTree(src), 'the server holds the same tree');
    const diff = await sh('diff -r "$W/tree" "$M/tree"');
    t.equal(diff.code, 0, `diff -r through the mount finds no difference ${diff.stdout}${diff.stderr}`);
  });

  t.test('overwriting a file keeps its Girder file id', async (t) => {
    await writeRandomFile(path.join(W, 'over-1.bin'), 3 * MiB);
    await writeRandomFile(path.join(W, 'over-2.bin'), 2 * MiB + 5);
    await sh.ok('mkdir "$M/over" && cp "$W/over-1.bin" "$M/over/file.bin"');
    await settle();
    const before = await remoteFile(admin, root._id, 'over/file.bin');
    await sh.ok('cp "$W/over-2.bin" "$M/over/file.bin"');
    await settle();
    const after = await remoteFile(admin, root._id, 'over/file.bin');
    t.equal(after.file._id, before.file._id, 'same file id');
    t.equal(after.item._id, before.item._id, 'same item id');
    t.equal(after.file.size, 2 * MiB + 5, 'new size');
    t.equal(after.file.sha512, await sh.sha512sum('"$W/over-2.bin"'), 'new contents');
    t.same(Object.keys(await remoteTree(admin, (await folderAt('over'))._id)), ['file.bin'], 'no second item');
  });

  t.test('>> append, dd conv=notrunc seek= and truncate -s change the file in place', async (t) => {
    await writeRandomFile(path.join(W, 'edit-ref.bin'), 6 * MiB + 7);
    await writeRandomFile(path.join(W, 'patch.bin'), 4096);
    await sh.ok('mkdir "$M/edit" && cp "$W/edit-ref.bin" "$M/edit/f.bin"');
    await settle();
    const { file: original } = await remoteFile(admin, root._id, 'edit/f.bin');
    const steps: Array<[string, (x: string) => string]> = [
      ['>> append', (x) => `printf 'appended line\\n' >> ${x}`],
      ['dd conv=notrunc seek=100 (inside)', (x) => `dd if="$W/patch.bin" of=${x} bs=4096 seek=100 conv=notrunc status=none`],
      ['dd conv=notrunc seek past the end', (x) => `dd if="$W/patch.bin" of=${x} bs=1M seek=8 conv=notrunc status=none`],
      ['truncate -s shrink', (x) => `truncate -s 1000001 ${x}`],
      ['truncate -s grow', (x) => `truncate -s 7000000 ${x}`],
    ];
    for (const [what, cmd] of steps) {
      await sh.ok(cmd('"$M/edit/f.bin"'));
      await sh.ok(cmd('"$W/edit-ref.bin"'));
      await settle();
      const { file } = await remoteFile(admin, root._id, 'edit/f.bin');
      const want = await sh.sha512sum('"$W/edit-ref.bin"');
      t.equal(file.sha512, want, `${what}: the server has the same bytes as the same command on a local copy`);
      t.equal(file._id, original._id, `${what}: same file id`);
    }
    t.equal(await sh.sha512sum('"$M/edit/f.bin"'), await sh.sha512sum('"$W/edit-ref.bin"'), 'the mount reads the same bytes back');
  });

  t.test('an editor-style save (temp file, then mv over the original)', async (t) => {
    await sh.ok('mkdir "$M/ed" && printf "first version\\n" > "$M/ed/notes.txt"');
    await settle();
    const before = await remoteFile(admin, root._id, 'ed/notes.txt');
    await sh.ok('printf "second version\\n" > "$M/ed/.notes.txt.swp" && sync "$M/ed/.notes.txt.swp" && mv -f "$M/ed/.notes.txt.swp" "$M/ed/notes.txt"');
    await settle();
    const tree = await remoteTree(admin, before.item.folderId);
    t.same(tree, { 'notes.txt': { size: 15, sha512: sha512(Buffer.from('second version\n')) } }, 'only notes.txt, with the new text');
    t.equal(await sh.ok('cat "$M/ed/notes.txt"'), 'second version\n', 'the mount shows the new text');
    t.equal(await sh.ok('ls -A "$M/ed"'), 'notes.txt\n', 'no temp file left in the mount');
  });

  t.test('a file unlinked while open: no .fuse_hidden ghost, its descriptors go on, nothing of it reaches the server', async (t) => {
    await sh.ok('mkdir "$M/ghost" && printf "uploaded first\\n" > "$M/ghost/old.txt"');
    await settle();
    // Python holds descriptors across the unlinks: one written while unlinked, one reading an uploaded
    // file (which it read once: bytes the server no longer has are served only from the cache).
    const script = [
      'import os, sys',
      'd = sys.argv[1]',
      'w = os.open(d + "/scratch.db", os.O_RDWR | os.O_CREAT, 0o644)',
      'os.write(w, b"before unlink ")',
      'r = os.open(d + "/old.txt", os.O_RDONLY)',
      'os.pread(r, 100, 0)',
      'os.unlink(d + "/scratch.db"); os.unlink(d + "/old.txt")',
      'print(sorted(os.listdir(d)))',
      'os.write(w, b"after unlink")',
      'os.fsync(w)',
      'print(os.pread(w, 100, 0).decode()); print(os.fstat(w).st_size)',
      'print(os.pread(r, 100, 0).decode(), end=""); print(os.fstat(r).st_size)',
      'os.close(w); os.close(r)',
      'print(sorted(os.listdir(d)))',
    ].join('\n');
    const out = await sh.ok(`python3 -c '${script}' "$M/ghost"`);
    t.equal(out, "[]\nbefore unlink after unlink\n26\nuploaded first\n15\n[]\n", 'no ghost listed; both descriptors read and stat after the unlink');
    await settle();
    t.same(await remoteTree(admin, (await folderAt('ghost'))._id), {}, 'nothing of either file on the server');
    t.equal(await sh.ok('ls -A "$M/ghost"'), '', 'and nothing in the mount');
  });

  t.test('mv across directories, for files and folders, and over an existing file', async (t) => {
    await writeRandomFile(path.join(W, 'mv-f.bin'), 2 * MiB);
    await sh.ok(
      'mkdir -p "$M/mv/src/sub" "$M/mv/dst" && cp "$W/mv-f.bin" "$M/mv/src/f.bin" && ' +
        'printf "in sub\\n" > "$M/mv/src/sub/g.txt" && printf "replacement\\n" > "$M/mv/src/h.txt" && ' +
        'printf "to be replaced\\n" > "$M/mv/dst/old.txt"',
    );
    await settle();
    const f = await remoteFile(admin, root._id, 'mv/src/f.bin');
    const sub = await folderAt('mv/src/sub');
    const dst = await folderAt('mv/dst');
    const h = await remoteFile(admin, root._id, 'mv/src/h.txt');

    await sh.ok('mv "$M/mv/src/f.bin" "$M/mv/dst/"');
    await sh.ok('mv "$M/mv/src/sub" "$M/mv/dst/sub2"');
    await sh.ok('mv "$M/mv/src/h.txt" "$M/mv/dst/old.txt"');
    await settle();

    t.same(await remoteTree(admin, (await folderAt('mv'))._id), {
      src: 'dir',
      dst: 'dir',
      'dst/f.bin': { size: 2 * MiB, sha512: await sh.sha512sum('"$W/mv-f.bin"') },
      'dst/old.txt': { size: 12, sha512: sha512(Buffer.from('replacement\n')) },
      'dst/sub2': 'dir',
      'dst/sub2/g.txt': { size: 7, sha512: sha512(Buffer.from('in sub\n')) },
    }, 'the server tree after the moves');
    const movedF = await remoteFile(admin, root._id, 'mv/dst/f.bin');
    t.equal(movedF.item._id, f.item._id, 'the file moved as the same item');
    t.equal(movedF.item.folderId, dst._id, 'its item is in the target folder');
    const movedSub = await folderAt('mv/dst/sub2');
    t.equal(movedSub._id, sub._id, 'the folder moved (and was renamed) as the same folder');
    t.equal(movedSub.parentId, dst._id, 'its parent is the target folder');
    const replaced = await remoteFile(admin, root._id, 'mv/dst/old.txt');
    t.equal(replaced.item._id, h.item._id, 'mv over an existing file moved the source item');
    t.same((await admin.listItems(dst._id)).map((i) => i.name).sort(), ['f.bin', 'old.txt'], 'no duplicate items in the target');
    t.equal(await sh.ok('cd "$M/mv" && find . | sort'), '.\n./dst\n./dst/f.bin\n./dst/old.txt\n./dst/sub2\n./dst/sub2/g.txt\n./src\n', 'the mount shows the same');
  });

  t.test('rm -r removes a tree from the server', async (t) => {
    await sh.ok('mkdir -p "$M/rm/t/a/b" && printf x > "$M/rm/t/a/b/x" && printf y > "$M/rm/t/y" && cp -r "$M/rm/t/a" "$M/rm/t/a-copy"');
    await settle();
    const top = await folderAt('rm/t');
    const x = await remoteFile(admin, root._id, 'rm/t/a/b/x');
    const y = await remoteFile(admin, root._id, 'rm/t/y');
    t.ok(await exists(admin, 'item', x.item._id), 'precondition: the tree is on the server');
    await sh.ok('rm -r "$M/rm/t"');
    await settle();
    t.notOk(await exists(admin, 'folder', top._id), 'the folder is gone');
    t.notOk(await exists(admin, 'item', x.item._id), 'a nested item is gone');
    t.notOk(await exists(admin, 'item', y.item._id), 'a top item is gone');
    t.same(await remoteTree(admin, (await folderAt('rm'))._id), {}, 'nothing left under rm/');
    t.equal(await sh.ok('ls -A "$M/rm"'), '', 'the mount shows an empty directory');
  });

  t.test('mkdir -p makes nested folders; rmdir of a non-empty one is refused', async (t) => {
    await sh.ok('mkdir -p "$M/mk/a/b/c" && mkdir -p "$M/mk/a/b/c"');
    const mk = await folderAt('mk');
    t.same(await remoteTree(admin, mk._id), { a: 'dir', 'a/b': 'dir', 'a/b/c': 'dir' }, 'the folders are on the server');
    const r = await sh('rmdir "$M/mk/a"');
    t.not(r.code, 0, 'rmdir of a non-empty directory fails');
    t.match(r.stderr, /Directory not empty/, 'with ENOTEMPTY');
    await sh.ok('rmdir "$M/mk/a/b/c"');
    t.equal(await sh.ok('ls -A "$M/mk/a/b"'), '', 'gone from the mount at once');
    await settle(); // Girder's delete follows the rmdir
    t.same(await remoteTree(admin, mk._id), { a: 'dir', 'a/b': 'dir' }, 'rmdir of an empty one removes it on the server');
  });

  t.test('rsync -a into the mount, then a second rsync -a transfers nothing', async (t) => {
    const src = path.join(W, 'rs');
    await mkdir(path.join(src, 'd1', 'd2'), { recursive: true });
    await writeRandomFile(path.join(src, 'big.bin'), 6 * MiB + 3);
    await writeRandomFile(path.join(src, 'd1', 'small.bin'), 333);
    await writeFile(path.join(src, 'd1', 'd2', 'note.txt'), 'rsync me\n');
    await writeFile(path.join(src, 'd1', 'empty.txt'), '');
    await sh.ok('touch -d "2001-02-03 04:05:06" "$W/rs/big.bin" && touch -d "2011-12-13 14:15:16.5" "$W/rs/d1/d2/note.txt"');
    proxy.resetCount();
    const first = await sh.ok('rsync -a --stats "$W/rs/" "$M/rs/"');
    t.match(first, /Number of regular files transferred: 4/, 'the first rsync copies the 4 files');
    await settle();
    t.same(await remoteTree(admin, (await folderAt('rs'))._id), await localTree(src), 'the server holds the same tree');
    const wantMtime = new Date('2001-02-03T04:05:06').getTime(); // local time, as touch -d reads it
    const bigItem = await waitFor(async () => {
      const { item } = await remoteFile(admin, root._id, 'rs/big.bin');
      return typeof item.meta.fuse_mtime === 'string' ? item : undefined;
    }, { what: 'fuse_mtime in the metadata of rs/big.bin' });
    t.equal(Number(String(bigItem.meta.fuse_mtime).split(':')[0]), wantMtime, 'the mtime rsync set is stored in fuse_mtime');

    t.ok(proxy.bytes() >= 6 * MiB + 3 + 333 + 9, `control: the first rsync sent the file bytes (${proxy.bytes()})`);
    proxy.resetCount();
    const second = await sh.ok('rsync -a --stats "$W/rs/" "$M/rs/"');
    t.match(second, /Number of regular files transferred: 0\b/, 'the second rsync transfers no file');
    t.match(second, /Total transferred file size: 0 bytes/, 'and no file data');
    await settle();
    t.equal(proxy.bytes(), 0, 'no upload bytes reached the server');
    t.same(await remoteTree(admin, (await folderAt('rs'))._id), await localTree(src), 'the server tree is unchanged');
  });

  t.test('rsync -aX and cp -a carry the metadata in and out; the read-only ids are read by name only', async (t) => {
    await mkdir(path.join(W, 'xa'));
    await writeFile(path.join(W, 'xa', 'plain.txt'), 'no attributes\n');
    await writeFile(path.join(W, 'xa', 'tagged.txt'), 'one attribute\n');
    await sh.ok(`setfattr -n user.girder.meta.stage -v '"raw"' "$W/xa/tagged.txt"`);
    await sh.ok('rsync -aX "$W/xa/" "$M/xa/"');
    await settle();
    const { item } = await remoteFile(admin, root._id, 'xa/tagged.txt');
    t.equal(item.meta.stage, 'raw', 'the attribute became Girder metadata');
    await sh.ok(`setfattr -n user.girder.meta.stage -v '"done"' "$W/xa/tagged.txt" && touch "$W/xa/plain.txt"`);
    // Updates files that now carry ids on the server: rsync removes every listed name it did not send.
    await sh.ok('rsync -aX "$W/xa/" "$M/xa/"');
    await settle();
    t.equal((await remoteFile(admin, root._id, 'xa/tagged.txt')).item.meta.stage, 'done', 'updated by the second rsync');
    t.equal(await sh.ok('getfattr -d -m - "$M/xa/plain.txt"'), '', 'nothing listed for a file without metadata');
    t.equal(await sh.ok('getfattr -n user.girder.id --only-values "$M/xa/plain.txt"'),
      (await remoteFile(admin, root._id, 'xa/plain.txt')).item._id, 'the id is read by name');
    await sh.ok('cp -a "$M/xa" "$W/xa-out" && rsync -aX "$M/xa/" "$W/xa-rsync/"');
    for (const copy of ['xa-out', 'xa-rsync']) {
      t.equal(await sh.ok(`getfattr -n user.girder.meta.stage --only-values "$W/${copy}/tagged.txt"`), '"done"', `${copy}: the metadata came out`);
      t.notMatch(await sh.ok(`getfattr -d -m - "$W/${copy}/tagged.txt" "$W/${copy}/plain.txt"`), /girder\.(id|file_id|sha512)/, `${copy}: no id came out`);
    }
    await sh.ok('rsync -aX "$W/xa-out/" "$M/xa/"');
  });

  t.test('copying an identical file again uploads zero bytes', async (t) => {
    await writeRandomFile(path.join(W, 'same.bin'), 6 * MiB);
    await writeRandomFile(path.join(W, 'same-small.bin'), 1000);
    proxy.resetCount();
    await sh.ok('mkdir "$M/dup" && cp "$W/same.bin" "$M/dup/a.bin" && cp "$W/same-small.bin" "$M/dup/s.bin"');
    await settle();
    t.equal(proxy.bytes(), 6 * MiB + 1000, 'control: the proxy counts the bytes of the first copies');
    const a = await remoteFile(admin, root._id, 'dup/a.bin');
    const s = await remoteFile(admin, root._id, 'dup/s.bin');
    const before = (await mountStatus(M)).requests.bytesUploaded;
    proxy.resetCount();

    await sh.ok('cp "$W/same.bin" "$M/dup/a.bin" && cp "$W/same-small.bin" "$M/dup/s.bin" && cp "$W/same.bin" "$M/dup/b.bin"');
    const status = await waitUploadsDone(M);
    t.equal(proxy.bytes(), 0, 'no upload bytes reached the server (counted by the proxy)');
    t.equal(proxy.uploadRequests(), 0, 'no upload request at all');
    t.equal(status.requests.bytesUploaded - before, 0, 'girder-mount status counts no bytes uploaded');
    const want = await sh.sha512sum('"$W/same.bin"');
    const a2 = await remoteFile(admin, root._id, 'dup/a.bin');
    t.equal(a2.file._id, a.file._id, 'the identical overwrite kept the file');
    t.equal(a2.file.sha512, want, 'with the same bytes');
    t.equal((await remoteFile(admin, root._id, 'dup/s.bin')).file._id, s.file._id, 'the small identical overwrite kept its file');
    const b = await remoteFile(admin, root._id, 'dup/b.bin');
    t.equal(b.file.sha512, want, 'the new copy has the right bytes (a server-side copy)');
    t.equal(b.file.size, 6 * MiB, 'and size');
  });
});
