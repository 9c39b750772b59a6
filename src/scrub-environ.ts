/**
 * Removing a variable from process.env (unsetenv) leaves its bytes in the environment block the
 * process started with, and /proc/<pid>/environ shows that block to anyone who may read it. This
 * blanks the entries of the named variables there, through /proc/self/mem (Linux; best effort).
 */
import { open, readFile } from 'node:fs/promises';

/** Largest environment block we are willing to read (the kernel limits it far below this). */
const MAX_BLOCK = 16 * 1024 * 1024;

/**
 * Overwrite `NAME=value` of each named variable with NUL bytes in the initial environment block.
 * Call only after the variables are deleted from process.env (nothing may point at them any more).
 * Resolves with how many entries were blanked; 0 when there is nothing to do or it is not possible.
 */
export async function scrubInitialEnviron(names: readonly string[]): Promise<number> {
  if (process.platform !== 'linux' || names.length === 0) return 0;
  try {
    // Fields 50 and 51 of /proc/self/stat: env_start and env_end (the text after "comm)" starts at field 3).
    const stat = await readFile('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[47]);
    const end = Number(fields[48]);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start <= 0 || end <= start || end - start > MAX_BLOCK) return 0;
    const mem = await open('/proc/self/mem', 'r+');
    try {
      const block = Buffer.alloc(end - start);
      const { bytesRead } = await mem.read(block, 0, block.length, start);
      let blanked = 0;
      for (let at = 0; at < bytesRead; ) {
        const nul = block.indexOf(0, at);
        const stop = nul < 0 || nul > bytesRead ? bytesRead : nul;
        const entry = block.toString('latin1', at, stop);
        if (names.some((name) => entry.startsWith(`${name}=`))) {
          await mem.write(Buffer.alloc(stop - at), 0, stop - at, start + at);
          blanked++;
        }
        at = stop + 1;
      }
      return blanked;
    } finally {
      await mem.close();
    }
  } catch {
    return 0; // no /proc, or a kernel that refuses writes to /proc/self/mem
  }
}
