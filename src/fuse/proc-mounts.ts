/** /proc/mounts, parsed: the kernel's own list (also shows dead FUSE mounts that `mountpoint -q` misses). */
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  readonly source: string;
  readonly mountPoint: string;
  /** e.g. "fuse.girder-mount" */
  readonly type: string;
  readonly options: readonly string[];
}

/** Undo the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountField(field: string): string {
  if (!field.includes('\\')) return field;
  const bytes: number[] = [];
  for (let i = 0; i < field.length; i++) {
    const octal = field[i] === '\\' ? /^[0-7]{3}/.exec(field.slice(i + 1, i + 4)) : null;
    if (octal) {
      bytes.push(parseInt(octal[0], 8));
      i += 3;
    } else {
      bytes.push(...Buffer.from(field[i] ?? '', 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function parseProcMounts(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 4) continue;
    const [source = '', mountPoint = '', type = '', options = ''] = fields;
    entries.push({
      source: unescapeMountField(source),
      mountPoint: unescapeMountField(mountPoint),
      type: unescapeMountField(type),
      options: options.split(','),
    });
  }
  return entries;
}

export async function readProcMounts(file = '/proc/mounts'): Promise<MountEntry[]> {
  return parseProcMounts(await readFile(file, 'utf8'));
}

/** Entries mounted exactly at `mountPoint` (an absolute, resolved path), bottom first. */
export async function mountsAt(mountPoint: string): Promise<MountEntry[]> {
  return (await readProcMounts()).filter((m) => m.mountPoint === mountPoint);
}

export function isFuseType(type: string): boolean {
  return type === 'fuse' || type.startsWith('fuse.');
}

/** Whether a FUSE mount sits at `mountPoint` (live or dead: /proc/mounts lists both). */
export async function isMounted(mountPoint: string): Promise<boolean> {
  return (await mountsAt(mountPoint)).some((m) => isFuseType(m.type));
}
