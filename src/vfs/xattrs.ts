import { FsError } from '../errors.js';
import type { Meta } from '../girder/types.js';
import { checkWritable, parentOf, type VfsContext } from './context.js';
import { MODE_KEY } from './mode-meta.js';
import { MTIME_KEY } from './mtime-meta.js';
import { SYMLINK_KEY } from './symlink-meta.js';
import type { Node } from './nodes.js';

const META_PREFIX = 'user.girder.meta.';
const ID = 'user.girder.id';
const FILE_ID = 'user.girder.file_id';
const SHA512 = 'user.girder.sha512';

/** Metadata keys the mount keeps for itself: never listed, never set through an xattr. */
const MOUNT_KEYS: ReadonlySet<string> = new Set([MTIME_KEY, MODE_KEY, SYMLINK_KEY]);

/**
 * Girder metadata as extended attributes: `user.girder.meta.<key>` (JSON values, writable) on
 * folders and items, read-only `user.girder.id`, `user.girder.file_id` and `user.girder.sha512`.
 */
export class Xattrs {
  constructor(private readonly ctx: VfsContext) {}

  /**
   * Only the metadata: the read-only names are read by name, as CephFS does with its virtual
   * attributes. Listed, `rsync -X` into the mount tried to remove them from every file it updated
   * (EPERM, exit 23), and copies out carried ids that could not be written back.
   */
  async list(path: string): Promise<string[]> {
    const node = await this.node(path);
    return Object.keys(metaOf(node)).filter((key) => !MOUNT_KEYS.has(key)).map((key) => META_PREFIX + key);
  }

  async get(path: string, name: string): Promise<Buffer> {
    // Answered without a lookup: the kernel asks for security.capability before every write(2), and
    // ls -l for security.selinux and system.posix_acl_access until told the namespace is unsupported.
    if (!name.startsWith('user.')) throw new FsError('ENOTSUP', `only user.* attributes exist, not ${name}`);
    if (!name.startsWith('user.girder.')) throw new FsError('ENODATA', name);
    const node = await this.node(path);
    if (node === undefined) throw new FsError('ENODATA', `${name}: the file is not uploaded yet`);
    const value = this.value(node, name);
    if (value === undefined) throw new FsError('ENODATA', name);
    return Buffer.from(value);
  }

  async set(path: string, name: string, value: Buffer): Promise<void> {
    const key = this.metaKey(name);
    const text = value.toString('utf8');
    await this.writeMeta(path, { [key]: parseJson(text) });
  }

  async remove(path: string, name: string): Promise<void> {
    const key = this.metaKey(name);
    const node = await this.node(path);
    if (!(key in metaOf(node))) throw new FsError('ENODATA', name);
    await this.writeMeta(path, { [key]: null });
  }

  private value(node: Node, name: string): string | undefined {
    if (name === ID) return node.kind === 'folder' ? node.folder.id : node.item.id;
    if (name === FILE_ID) return node.kind === 'file' ? node.file.id : undefined;
    if (name === SHA512) return node.kind === 'file' ? node.file.sha512 : undefined;
    if (!name.startsWith(META_PREFIX)) return undefined;
    const meta = metaOf(node);
    const key = name.slice(META_PREFIX.length);
    return key in meta ? JSON.stringify(meta[key]) : undefined;
  }

  private metaKey(name: string): string {
    if (name === ID || name === FILE_ID || name === SHA512) throw new FsError('EPERM', `${name} is read-only`);
    if (!name.startsWith(META_PREFIX)) throw new FsError('ENOTSUP', `only ${META_PREFIX}* attributes are stored`);
    const key = name.slice(META_PREFIX.length);
    if (key === '' || MOUNT_KEYS.has(key) || key.includes('.') || key.startsWith('$')) {
      throw new FsError('EINVAL', `Girder cannot hold the metadata key "${key}"`);
    }
    return key;
  }

  private async writeMeta(path: string, meta: Meta): Promise<void> {
    const node = (await this.node(path)) ?? (await this.onceUploaded(path));
    checkWritable(this.ctx, node, path);
    if (node.kind === 'file' && node.inItemDir) throw new FsError('ENOTSUP', 'files inside an item directory have no metadata');
    if (node.kind === 'folder' && path === '/') {
      this.ctx.tree.setRoot(await this.ctx.store.setFolderMeta(node.folder.id, meta));
      return;
    }
    const { dir, name } = await parentOf(this.ctx, path);
    if (node.kind === 'folder') {
      const folder = await this.ctx.store.setFolderMeta(node.folder.id, meta);
      this.ctx.tree.set(dir, name, { kind: 'folder', folder });
    } else {
      const item = await this.ctx.store.setItemMeta(node.item.id, meta);
      this.ctx.tree.set(dir, name, { ...node, item });
    }
  }

  /**
   * A closed file whose first upload is on its way (`rsync -X` sets attributes right after the
   * close): its item once Girder has it. A file still open for writing has none yet.
   */
  private async onceUploaded(path: string): Promise<Node> {
    const local = this.ctx.openFiles.get(path);
    if (local !== undefined && this.ctx.openFiles.uploading(local)) {
      await this.ctx.openFiles.uploadsSettled(local);
      const node = await this.node(path);
      if (node !== undefined) return node;
    }
    throw new FsError('EBUSY', `${path} is not uploaded yet`);
  }

  /** The remote node, or undefined for a file that exists only locally so far. */
  private async node(path: string): Promise<Node | undefined> {
    try {
      return await this.ctx.tree.resolve(path);
    } catch (err) {
      if (err instanceof FsError && err.errno === 'ENOENT' && this.ctx.openFiles.has(path)) return undefined;
      throw err;
    }
  }
}

function metaOf(node: Node | undefined): Meta {
  if (node === undefined) return {};
  if (node.kind === 'folder') return node.folder.meta;
  return node.kind === 'file' && node.inItemDir ? {} : node.item.meta;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
