import type { FileDoc } from '../../girder/types.js';
import type { RemoteFile } from './types.js';

/**
 * The key of one content of a file: id, size, newest of created/updated, and sha512 when the
 * server reports it. Girder resets `created` when contents are replaced, so a new upload changes it.
 */
export function versionKeyOf(doc: Pick<FileDoc, 'id' | 'size' | 'created' | 'updated' | 'sha512'>): string {
  const newest = Math.max(doc.created, doc.updated ?? 0);
  return `${doc.id}:${doc.size}:${newest}:${doc.sha512 ?? ''}`;
}

export function remoteFileOf(doc: Pick<FileDoc, 'id' | 'size' | 'created' | 'updated' | 'sha512'>): RemoteFile {
  return { id: doc.id, size: doc.size, versionKey: versionKeyOf(doc) };
}
