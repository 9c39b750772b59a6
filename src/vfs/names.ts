import { createHash } from 'node:crypto';
import { FsError } from '../errors.js';

/** Longest name Linux accepts for one path component, in bytes. */
export const NAME_MAX = 255;

const CONTROL = /[\u0000-\u001f\u007f]/g;

/**
 * A Girder name made into a name the kernel accepts, the way girder_client does: `/` becomes `_`,
 * `.` and `..` become `_.` and `_..`; control characters become `_` too (a terminal-safe name),
 * and names over 255 bytes are cut, keeping a short hash of the whole name so cuts stay distinct.
 */
export function safeName(name: string): string {
  let safe = name.replace(/\//g, '_').replace(CONTROL, '_');
  if (safe === '') safe = '_';
  if (safe === '.' || safe === '..') safe = '_' + safe;
  if (Buffer.byteLength(safe) <= NAME_MAX) return safe;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return cutToBytes(safe, NAME_MAX - hash.length - 1) + '~' + hash;
}

function cutToBytes(s: string, maxBytes: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** `name.ext` -> `name~abc123.ext`: the stable name given to the later of two clashing entries. */
export function suffixed(name: string, id: string): string {
  const tag = '~' + id.slice(-6);
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return name + tag;
  return name.slice(0, dot) + tag + name.slice(dot);
}

/**
 * A name a program asks for must be one Girder stores unchanged, or the file would vanish under
 * another name: Girder strips surrounding whitespace, the mount maps control characters, and a
 * name that is not UTF-8 cannot be kept.
 */
export function checkStorableName(name: string): void {
  // Checked first: each byte that is not UTF-8 takes three as U+FFFD, so a long name would say
  // ENAMETOOLONG instead.
  checkUtf8(name, 'names');
  if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', `name too long: ${name.slice(0, 40)}...`);
  if (name !== name.trim()) throw new FsError('EINVAL', 'Girder strips spaces at the ends of names');
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new FsError('EINVAL', 'control characters in names are not stored by the mount');
  }
}

/**
 * fuse-native decodes names and link targets as UTF-8: bytes that are not UTF-8 arrive as U+FFFD,
 * and would be stored (and read back) as other bytes than the program gave.
 */
export function checkUtf8(text: string, what: string): void {
  if (text.includes('\uFFFD')) throw new FsError('EINVAL', `${what} must be valid UTF-8`);
}

/** Split a mount path ("/a/b") into components; "/" gives []. */
export function splitPath(path: string): string[] {
  return path.split('/').filter((c) => c !== '');
}

export function parentAndName(path: string): { parent: string; name: string } {
  const parts = splitPath(path);
  const name = parts.pop();
  if (name === undefined) throw new FsError('EINVAL', 'the mount root has no parent');
  return { parent: '/' + parts.join('/'), name };
}
