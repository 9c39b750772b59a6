import { FsError } from '../../src/errors.js';

/** The errno a vfs call rejected with, 'no error', or a note that it was not an FsError. */
export async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return err instanceof FsError ? err.errno : `not an FsError: ${String(err)}`;
  }
}
