import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface FileHash {
  readonly sha512: string;
  /** Bytes hashed: the file's size as read. */
  readonly size: number;
}

/** SHA-512 of a local file, streamed in 1 MiB reads. */
export async function sha512File(path: string, signal?: AbortSignal): Promise<FileHash> {
  const hash = createHash('sha512');
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal });
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    hash.update(buf);
    size += buf.length;
  }
  return { sha512: hash.digest('hex'), size };
}
