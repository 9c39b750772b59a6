// What the mount and Girder say of one path right now, and the daemon's recent lines about it: the
// story of a wrong read, told while it can still be seen (a later write or re-list hides it).
import type { Rest } from '../../test/helpers/girder-rest.js';
import { sh } from './children.js';
import type { DaemonLog } from './daemon-log.js';
import { serverTree } from './verify.js';

const ATTRS = 'stat -c "size %s ino %i" "$M/$P"; for a in file_id id sha512; do printf " %s=" $a; getfattr --absolute-names --only-values -n user.girder.$a "$M/$P" 2>/dev/null; done';

export async function inspectPath(mnt: string, api: Rest, folderId: string, daemonLog: DaemonLog, path: string): Promise<string> {
  const mount = await sh(ATTRS, { M: mnt, P: path }, 30_000);
  let girder: string;
  try {
    const entry = (await serverTree(api, folderId)).get(path);
    girder = entry === undefined ? 'no entry' : entry.kind === 'file' ? `file_id=${entry.file._id} item=${entry.file.itemId} size ${entry.file.size} sha512=${entry.file.sha512 ?? '?'}` : entry.kind;
  } catch (err) {
    girder = `cannot list: ${String(err)}`;
  }
  const ids = [...mount.stdout.matchAll(/(?:file_id|id)=([0-9a-f]{24})/g)].map((m) => m[1] as string);
  const girderIds = [...girder.matchAll(/=([0-9a-f]{24})/g)].map((m) => m[1] as string);
  const name = path.slice(path.lastIndexOf('/') + 1);
  const lines = daemonLog.recentWith([`/${path}"`, name, ...ids, ...girderIds]).slice(-60);
  return [`  mount: ${mount.stdout.trim()} ${mount.stderr.trim()}`, `  girder: ${girder}`, '  daemon lines about it:', ...lines.map((l) => `    ${l}`)].join('\n');
}
