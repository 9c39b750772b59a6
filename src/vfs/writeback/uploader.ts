import { isMissing, isRefused } from '../../girder/girder-error.js';
import type { GirderStore } from '../../girder/store.js';
import type { FileDoc, ItemDoc, UploadHooks, UploadSource } from '../../girder/types.js';
import type { Logger } from '../../log.js';
import { versionKeyOf } from '../cache/version-key.js';
import { sleep } from './retry-policy.js';
import { NameInTheWayError, type ResumeState, type UploadJob, type UploadTarget } from './types.js';

/** Server-side copies only pay off (and are only tried) from this size on. */
export const DEDUP_MIN_SIZE = 1 << 20;
/** Lookups after a lost name race (`name (1)`) or while another writer's empty item is in the way. */
const CLASH_ROUNDS = 5;

/** One try at putting a job's bytes into Girder. */
export interface Attempt {
  readonly job: UploadJob;
  readonly sha512: string;
  /** Size of the temp file as hashed. */
  readonly size: number;
  /** Survives retries and restarts; change it only through `save`. */
  readonly resume: Readonly<ResumeState>;
  /** Update the resume state and journal it (undefined values delete keys). */
  save(change: Partial<ResumeState>): Promise<void>;
  onProgress(sent: number, total: number): void;
  readonly signal: AbortSignal;
  /**
   * The job's first try in this run: nothing it did can be on the server yet (a retry, or a job
   * resumed from the journal, may have made its file already, with only the answer lost).
   */
  readonly first: boolean;
  /**
   * The last try of this job in this run ended with Girder's own answer (an HTTP error), so none of
   * its requests can still be on the way. False after a restart, a timeout or a cut connection.
   */
  readonly lastTryAnswered: boolean;
}

export interface Placed {
  readonly file: FileDoc;
  readonly how: 'unchanged' | 'copied' | 'uploaded';
  readonly bytesSent: number;
  /** The file's item, when known without asking (`exact`: Girder's own document, else made up here). */
  readonly item?: { readonly doc: ItemDoc; readonly exact: boolean };
}

type Fallback = NonNullable<Extract<UploadTarget, { kind: 'file' }>['fallback']>;

/**
 * Puts a hashed temp file where its target says, the cheapest way: nothing when Girder already has
 * the bytes, a server-side copy when another readable file has them, else an upload. Never leaves
 * `name (1)` items behind. Errors are thrown as they come; the queue decides what to retry.
 */
export class Uploader {
  private hashsum: boolean | undefined;

  constructor(private readonly store: GirderStore, private readonly log: Logger) {}

  place(a: Attempt): Promise<Placed> {
    const t = a.job.target;
    if (a.first && a.job.nameFree === true && a.size < DEDUP_MIN_SIZE && t.kind !== 'file') return this.createAtOnce(a, t);
    switch (t.kind) {
      case 'file': return this.toFile(a, t.fileId, t.fallback);
      case 'item': return this.toItem(a, t.itemId, t.name, false);
      case 'folder': return this.toFolder(a, t.folderId, t.name);
    }
  }

  /**
   * Whether Girder deleted the job's target, so no retry can ever place it: the folder or item
   * to create the file in, or the file to replace and every fallback place of it. Throws what
   * the server answers otherwise (e.g. 403 for a folder that is only unreadable for now).
   */
  async targetGone(target: UploadTarget): Promise<boolean> {
    switch (target.kind) {
      case 'folder': return this.gone('folder', () => this.store.getFolder(target.folderId));
      case 'item': return this.gone('item', () => this.store.getItem(target.itemId));
      case 'file': {
        if (!(await this.gone('file', () => this.store.getFile(target.fileId)))) return false;
        const fallback = target.fallback;
        if (fallback === undefined) return true;
        return 'folderId' in fallback
          ? this.gone('folder', () => this.store.getFolder(fallback.folderId))
          : this.gone('item', () => this.store.getItem(fallback.itemId));
      }
    }
  }

  /** After the job left the queue for good: remove what it made and left empty (its new item, stray copies). Best effort. */
  async abandon(resume: Readonly<ResumeState>): Promise<void> {
    const made = [...(resume.strayItemIds ?? [])];
    if (resume.itemId !== undefined) {
      try {
        if ((await this.store.listFiles(resume.itemId)).length === 0) made.push(resume.itemId);
      } catch {
        // gone already, or Girder unreachable: leave it
      }
    }
    for (const id of made) await this.store.deleteItem(id).catch(() => undefined);
    if (resume.copiedFileId !== undefined) await this.store.deleteFile(resume.copiedFileId).catch(() => undefined);
  }

  private async toFile(a: Attempt, fileId: string, fallback: Fallback | undefined): Promise<Placed> {
    try {
      const remote = await this.store.getFile(fileId);
      this.warnIfChangedElsewhere(a, remote);
      return await this.overwrite(a, remote);
    } catch (err) {
      if (!isMissing(err, 'file') || fallback === undefined) throw err;
      this.log.info({ path: a.job.path, fileId }, 'file deleted in Girder meanwhile: creating it anew');
      return 'folderId' in fallback ? this.toFolder(a, fallback.folderId, fallback.name) : this.toItem(a, fallback.itemId, fallback.name, false);
    }
  }

  /**
   * A small new file whose name the mount saw free in a fresh listing: one request, POST /file with
   * the bytes, which makes the item too in a folder. Nothing is looked up first; a clash raced in
   * meanwhile would leave ours as `name (1)`, as two uploads racing on Girder do.
   */
  private async createAtOnce(a: Attempt, t: Exclude<UploadTarget, { kind: 'file' }>): Promise<Placed> {
    const parent = t.kind === 'folder' ? { folderId: t.folderId } : { itemId: t.itemId };
    const file = await this.store.createFile(parent, t.name, this.source(a), this.hooks(a, `create:${t.kind}:${'folderId' in parent ? parent.folderId : parent.itemId}:${t.name}`));
    if (t.kind !== 'folder') return { file, how: 'uploaded', bytesSent: a.size };
    const doc: ItemDoc = { id: file.itemId, name: t.name, folderId: t.folderId, created: file.created, updated: file.created, size: file.size, meta: {} };
    return { file, how: 'uploaded', bytesSent: a.size, item: { doc, exact: false } };
  }

  /** A new single-file item `name` in a folder, or the existing one's file replaced (last close wins). */
  private async toFolder(a: Attempt, folderId: string, name: string): Promise<Placed> {
    await this.deleteStrays(a);
    for (let round = 0; ; round++) {
      if (a.resume.itemId !== undefined) {
        const own = await this.itemOrUndefined(a.resume.itemId);
        if (own !== undefined && own.folderId === folderId && own.name === name) {
          if (a.lastTryAnswered || a.resume.uploadId !== undefined || (await this.store.listFiles(own.id)).length > 0) {
            return this.toItem(a, own.id, name, false);
          }
          // Made by an earlier try whose one-request upload may still be on its way (sent before a
          // kill or a timeout): a new file beside it would make two. Start over in a new item; the
          // late request then finds its item gone.
          await this.deleteOwnItem(own.id);
        }
        await a.save({ itemId: undefined, uploadId: undefined, uploadFor: undefined });
      }
      const found = await this.store.findItems(folderId, name);
      let empty: ItemDoc | undefined;
      for (const item of found) {
        const files = await this.store.listFiles(item.id);
        const only = files.length === 1 ? files[0] : undefined;
        if (only !== undefined && only.name === name) return this.overwrite(a, only);
        if (files.length === 0) empty ??= item;
      }
      if (empty !== undefined && a.resume.creatingItem === true) {
        // Created just before a crash cut the journal write short: it is ours.
        await a.save({ itemId: empty.id, creatingItem: undefined });
        return this.toItem(a, empty.id, name, true);
      }
      if (found.length > 0) {
        if (empty === undefined || round >= CLASH_ROUNDS) {
          throw new NameInTheWayError(`cannot create "${name}": an item directory of that name is in the way`);
        }
        await sleep(100 * 2 ** round, a.signal); // an empty item: maybe another writer's, its file on the way
        continue;
      }
      await a.save({ creatingItem: true });
      const item = await this.store.createItem(folderId, name);
      if (item.name === name) {
        await a.save({ itemId: item.id, creatingItem: undefined });
        return this.toItem(a, item.id, name, true);
      }
      // A clash raced in and Girder renamed ours: remove it and look again.
      await a.save({ creatingItem: undefined, strayItemIds: [...(a.resume.strayItemIds ?? []), item.id] });
      this.log.info({ path: a.job.path, stray: item.name }, 'name clash while creating an item: removed the renamed copy, looking again');
      await this.deleteStrays(a);
      const folderInTheWay = (await this.store.listFolders(folderId)).some((f) => f.name === name);
      if (folderInTheWay || round >= CLASH_ROUNDS) {
        throw new NameInTheWayError(`cannot create "${name}": a ${folderInTheWay ? 'folder' : 'clashing entry'} of that name is in the way`);
      }
      if (round > 0) await sleep(100 * 2 ** round, a.signal);
    }
  }

  /** A file `name` in an item: replaces a file of that name already there, else copies or uploads. */
  private async toItem(a: Attempt, itemId: string, name: string, fresh: boolean): Promise<Placed> {
    if (!fresh) {
      const same = (await this.store.listFiles(itemId)).find((f) => f.name === name);
      if (same !== undefined) return this.overwrite(a, same);
    }
    const copied = await this.serverCopy(a, itemId, name);
    if (copied !== undefined) return copied;
    const file = await this.store.createFile({ itemId }, name, this.source(a), this.hooks(a, `new:${itemId}:${name}`));
    return { file, how: 'uploaded', bytesSent: a.size };
  }

  /** DESIGN: the local close wins over a change made elsewhere meanwhile; say so in the log. */
  private warnIfChangedElsewhere(a: Attempt, remote: FileDoc): void {
    const opened = a.job.openedVersion;
    if (opened === undefined || versionKeyOf(remote) === opened) return;
    if (remote.sha512 === a.sha512 && remote.size === a.size) return; // this job's own bytes (an earlier try's answer lost)
    this.log.warn({ path: a.job.path, openedVersion: opened, serverVersion: versionKeyOf(remote) }, 'file changed on the server while open here; the local version replaces it');
  }

  private async overwrite(a: Attempt, remote: FileDoc): Promise<Placed> {
    if (remote.sha512 === a.sha512 && remote.size === a.size) return { file: remote, how: 'unchanged', bytesSent: 0 };
    if (a.job.target.kind !== 'file') {
      this.log.warn({ path: a.job.path, fileId: remote.id }, 'replaced a file created elsewhere meanwhile');
    }
    const file = await this.store.replaceFile(remote.id, this.source(a), this.hooks(a, `replace:${remote.id}`));
    return { file, how: 'uploaded', bytesSent: a.size };
  }

  /**
   * Copy a readable file with the same bytes into the item (hashsum_download), then name it. The
   * copy takes the source's bytes as they are when it is made, which may no longer be those the
   * hash lookup found (its contents replaced in between, by one of our own uploads as often as not):
   * a copy whose size, hash or version differs from what was looked up is deleted, never kept.
   */
  private async serverCopy(a: Attempt, itemId: string, name: string): Promise<Placed | undefined> {
    const earlier = a.resume.copiedFileId;
    if (earlier !== undefined) {
      const copy = await this.fileOrUndefined(earlier);
      if (copy !== undefined && copy.itemId === itemId) {
        if (holdsBytesOf(a, copy)) return this.nameCopy(a, copy, name);
        await this.dropCopy(a, copy);
      } else {
        await a.save({ copiedFileId: undefined });
      }
    }
    if (a.size < DEDUP_MIN_SIZE || !(await this.hasHashsum())) return undefined;
    for (const hit of await this.store.filesBySha512(a.sha512)) {
      if (hit.size !== a.size) continue;
      let copy: FileDoc;
      try {
        copy = await this.store.copyFile(hit.id, itemId);
      } catch (err) {
        if (isMissing(err, 'file') || isRefused(err)) continue; // gone or unreadable meanwhile: try the next
        throw err;
      }
      await a.save({ copiedFileId: copy.id });
      if (holdsBytesOf(a, copy) && versionKeyOf(copy) === versionKeyOf(hit)) return this.nameCopy(a, copy, name);
      await this.dropCopy(a, copy);
    }
    return undefined;
  }

  /** A server-side copy that turned out to hold other bytes: delete it (the next hit, or an upload, follows). */
  private async dropCopy(a: Attempt, copy: FileDoc): Promise<void> {
    this.log.debug({ path: a.job.path, fileId: copy.id }, 'a server-side copy holds other bytes than the hash lookup said (its source changed): deleted');
    try {
      await this.store.deleteFile(copy.id);
    } catch (err) {
      if (!isMissing(err, 'file')) throw err;
    }
    await a.save({ copiedFileId: undefined });
  }

  private async nameCopy(a: Attempt, copy: FileDoc, name: string): Promise<Placed> {
    const file = copy.name === name ? copy : await this.store.renameFile(copy.id, name);
    await a.save({ copiedFileId: undefined });
    this.log.debug({ path: a.job.path, fileId: file.id }, 'copied server-side from a file with the same SHA-512');
    return { file, how: 'copied', bytesSent: 0 };
  }

  private async hasHashsum(): Promise<boolean> {
    this.hashsum ??= await this.store.hasHashsum();
    return this.hashsum;
  }

  private async deleteOwnItem(id: string): Promise<void> {
    try {
      await this.store.deleteItem(id);
    } catch (err) {
      if (!isMissing(err, 'item')) throw err;
    }
  }

  private async deleteStrays(a: Attempt): Promise<void> {
    const strays = a.resume.strayItemIds ?? [];
    if (strays.length === 0) return;
    for (const id of strays) await this.deleteOwnItem(id);
    await a.save({ strayItemIds: undefined });
  }

  private async gone(model: 'folder' | 'item' | 'file', get: () => Promise<unknown>): Promise<boolean> {
    try {
      await get();
      return false;
    } catch (err) {
      if (isMissing(err, model)) return true;
      throw err;
    }
  }

  private async itemOrUndefined(id: string): Promise<ItemDoc | undefined> {
    try {
      return await this.store.getItem(id);
    } catch (err) {
      if (isMissing(err, 'item')) return undefined;
      throw err;
    }
  }

  private async fileOrUndefined(id: string): Promise<FileDoc | undefined> {
    try {
      return await this.store.getFile(id);
    } catch (err) {
      if (isMissing(err, 'file') || isMissing(err, 'item')) return undefined;
      throw err;
    }
  }

  private source(a: Attempt): UploadSource {
    return { path: a.job.tempPath, size: a.size, sha512: a.sha512 };
  }

  /** Upload hooks; an upload id is reused only for the very operation that started it. */
  private hooks(a: Attempt, operation: string): UploadHooks {
    return {
      resumeUploadId: a.resume.uploadFor === operation ? a.resume.uploadId : undefined,
      onUploadId: (uploadId) => a.save({ uploadId, uploadFor: operation }),
      onProgress: (sent, total) => a.onProgress(sent, total),
      signal: a.signal,
    };
  }
}

/** Girder's document of `copy` claims exactly the attempt's bytes (size and SHA-512). */
function holdsBytesOf(a: Attempt, copy: FileDoc): boolean {
  return copy.size === a.size && copy.sha512 !== undefined && copy.sha512.toLowerCase() === a.sha512.toLowerCase();
}
