// The final check, after the uploads drained: what Girder holds (over REST) and what the mount
// shows, each compared with the model's last closed write of every file.
import type { RawFile, Rest } from '../../test/helpers/girder-rest.js';
import { sh } from './children.js';
import { join, type Model } from './model.js';
import type { Tally } from './tally.js';

type ServerEntry = { kind: 'dir' } | { kind: 'file'; file: RawFile } | { kind: 'item-dir'; files: number };

export interface CheckResult {
  /** Files whose final content is known and was compared. */
  checked: number;
  /** Known files whose content was unknown after a failure (not compared). */
  unknown: number;
  missing: string[];
  /** Present but not in the model (e.g. a removed file back, a `name (1)` duplicate, a temp file). */
  unexpected: string[];
  mismatched: string[];
}

/** Every folder and item under `folderId` as paths relative to it. */
export async function serverTree(api: Rest, folderId: string): Promise<Map<string, ServerEntry>> {
  const tree = new Map<string, ServerEntry>();
  const walk = async (id: string, prefix: string): Promise<void> => {
    for (const folder of await api.listFolders(id)) {
      const p = join(prefix, folder.name);
      tree.set(p, { kind: 'dir' });
      await walk(folder._id, p);
    }
    for (const item of await api.listItems(id)) {
      const files = await api.listFiles(item._id);
      const p = join(prefix, item.name);
      const only = files[0];
      tree.set(p, files.length === 1 && only !== undefined && only.name === item.name ? { kind: 'file', file: only } : { kind: 'item-dir', files: files.length });
    }
  };
  await walk(folderId, '');
  return tree;
}

/** GET /file/{id}/hashsum_file/sha512 answers text: `<hash>\n`. */
async function hashsumFile(api: Rest, fileId: string): Promise<string> {
  const res = await fetch(`${api.apiUrl}/file/${fileId}/hashsum_file/sha512`, { headers: { 'Girder-Token': await api.token() } });
  const text = await res.text();
  return res.ok ? text.trim() : `error ${res.status}: ${text}`;
}

function emptyResult(): CheckResult {
  return { checked: 0, unknown: 0, missing: [], unexpected: [], mismatched: [] };
}

export async function checkServer(api: Rest, folderId: string, model: Model, tally: Tally): Promise<CheckResult> {
  const result = emptyResult();
  const tree = await serverTree(api, folderId);
  for (const [p, entry] of tree) {
    const expected = entry.kind === 'dir' ? model.dirs.has(p) : entry.kind === 'file' && model.files.has(p);
    if (!expected) result.unexpected.push(`${p} (${entry.kind === 'item-dir' ? `item with ${entry.files} files` : entry.kind})`);
  }
  for (const p of model.dirs.keys()) if (tree.get(p)?.kind !== 'dir') result.missing.push(`${p}/`);
  for (const f of model.files.values()) {
    const entry = tree.get(f.path);
    if (entry?.kind !== 'file') {
      result.missing.push(f.path);
      continue;
    }
    if (f.sha512 === undefined) {
      result.unknown++;
      continue;
    }
    result.checked++;
    // the sha512 field of the file document; the hashsum route when it is absent
    const got = entry.file.sha512 ?? (await hashsumFile(api, entry.file._id));
    if (got !== f.sha512 || entry.file.size !== f.size) {
      result.mismatched.push(f.path);
      tally.mismatch({ where: 'server', path: f.path, version: f.version, size: f.size, expected: f.sha512, got: `${got} (size ${entry.file.size})`, origin: got === undefined ? undefined : model.originOf(got) });
    }
  }
  return result;
}

/** `find` for the namespace, then sha512sum of every known file, `parallel` at a time. */
export async function checkMount(mnt: string, model: Model, tally: Tally, parallel = 2): Promise<CheckResult> {
  const result = emptyResult();
  const listing = await sh(`find "$M" -mindepth 1 -printf '%y %P\\0'`, { M: mnt }, 600_000);
  if (listing.code !== 0) throw new Error(`find through the mount failed (${listing.code}): ${listing.stderr}`);
  const seen = new Map<string, string>();
  for (const rec of listing.stdout.split('\0')) if (rec.length > 2) seen.set(rec.slice(2), rec[0]!);
  for (const [p, type] of seen) {
    const expected = type === 'd' ? model.dirs.has(p) : type === 'f' && model.files.has(p);
    if (!expected) result.unexpected.push(`${p} (${type})`);
  }
  for (const p of model.dirs.keys()) if (seen.get(p) !== 'd') result.missing.push(`${p}/`);
  const files = [...model.files.values()];
  for (const f of files) if (seen.get(f.path) !== 'f') result.missing.push(f.path);
  const toCheck = files.filter((f) => seen.get(f.path) === 'f');
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let f = toCheck[next++]; f !== undefined; f = toCheck[next++]) {
      if (f.sha512 === undefined) {
        result.unknown++;
        continue;
      }
      result.checked++;
      const r = await sh('sha512sum < "$M/$P"', { M: mnt, P: f.path }, 600_000);
      const got = r.code === 0 ? (r.stdout.split(/\s+/)[0] ?? '') : `error ${r.code}: ${r.stderr.trim()}`;
      if (got !== f.sha512) {
        result.mismatched.push(f.path);
        tally.mismatch({ where: 'mount', path: f.path, version: f.version, size: f.size, expected: f.sha512, got, origin: model.originOf(got) });
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return result;
}
