// Writes random test data to disk with bounded memory and reports its SHA-512.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

const BLOCK = 1024 * 1024;

/** Writes `size` random bytes to `path` (replacing it) and resolves with their hex SHA-512. */
export async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha512');
  const out = createWriteStream(path);
  try {
    for (let written = 0; written < size; ) {
      const block = randomBytes(Math.min(BLOCK, size - written));
      hash.update(block);
      written += block.length;
      if (!out.write(block)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
  } catch (err) {
    out.destroy();
    throw err;
  }
  return hash.digest('hex');
}

/** SHA-512 (hex) of a buffer. */
export function sha512(data: Buffer): string {
  return createHash('sha512').update(data).digest('hex');
}
