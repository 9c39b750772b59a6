import type { FileDoc } from '../../girder/types.js';
import type { RemoteFile } from '../ports.js';

/**
 * The key of one content of a file: its size, its `created` and its sha512 when the server reports
 * it. Girder renews `created` when the contents are replaced (and keeps the id), so a new upload
 * changes the key. `updated` is left out: it moves on a rename or a MIME change, which keep the bytes.
 */
export function versionKeyOf(doc: Pick<FileDoc, 'size' | 'created' | 'sha512'>): string {
  return `${doc.size}:${doc.created}:${doc.sha512 ?? ''}`;
}

export function remoteFileOf(doc: Pick<FileDoc, 'id' | 'size' | 'created' | 'sha512'>): RemoteFile {
  return { id: doc.id, size: doc.size, versionKey: versionKeyOf(doc) };
}
