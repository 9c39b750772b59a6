/** Mount options, and the `-o` string handed to libfuse 2.9 (fuse-native passes it on as is). */
export interface MountOptions {
  readOnly: boolean;
  allowOther: boolean;
  /** Owner shown for every file (libfuse's uid=/gid= options). */
  uid: number;
  gid: number;
  /** Kernel cache time for attributes, names and missing names, in seconds; 0 = ask every time. */
  attrTimeoutS: number;
  /** Shown as the source in /proc/mounts and `df`. */
  fsName: string;
  /** libfuse's debug output on stderr. */
  debug?: boolean;
  /** Largest read request; 131072 (the default) is libfuse 2.9's effective maximum. */
  maxReadBytes?: number;
}

export const DEFAULT_MAX_READ_BYTES = 131072;
export const FUSE_SUBTYPE = 'girder-mount';
/** fuse-native copies the option string into a 1024-byte buffer, silently truncating. */
const MAX_OPTION_STRING = 1023;

/**
 * The `-o` string. Every option here is one libfuse 2.9 knows: an unknown one fails the mount after
 * the kernel mount is made, leaving a dead mount behind.
 */
export function fuseOptionString(options: MountOptions, extra: { bigWrites?: boolean } = {}): string {
  const timeout = seconds('attrTimeoutS', options.attrTimeoutS);
  const maxRead = options.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
  if (!Number.isInteger(maxRead) || maxRead < 4096) throw new RangeError(`maxReadBytes ${maxRead} is not an integer >= 4096`);
  const parts = [
    `fsname=${escapeOptionValue(options.fsName)}`,
    `subtype=${FUSE_SUBTYPE}`,
    'default_permissions',
    ...(options.allowOther ? ['allow_other'] : []),
    ...(options.readOnly ? ['ro'] : []),
    ...(extra.bigWrites === false ? [] : ['big_writes']),
    `max_read=${maxRead}`,
    // Keep the page cache across opens while mtime and size are unchanged.
    'auto_cache',
    // O_TRUNC arrives in open()'s flags instead of a separate truncate before it.
    'atomic_o_trunc',
    `entry_timeout=${timeout}`,
    `attr_timeout=${timeout}`,
    `negative_timeout=${timeout}`,
    `uid=${id('uid', options.uid)}`,
    `gid=${id('gid', options.gid)}`,
    ...(options.debug ? ['debug'] : []),
  ];
  const result = `-o${parts.join(',')}`;
  if (Buffer.byteLength(result) > MAX_OPTION_STRING) {
    throw new RangeError(`FUSE option string is ${Buffer.byteLength(result)} bytes (max ${MAX_OPTION_STRING}); shorten fsName`);
  }
  return result;
}

/** libfuse splits options on commas; a backslash escapes the next character. */
export function escapeOptionValue(value: string): string {
  return value.replace(/[\\,]/g, (c) => `\\${c}`);
}

function seconds(name: string, value: number): string {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} ${value} is not a number of seconds >= 0`);
  return String(value);
}

function id(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xfffffffe) throw new RangeError(`${name} ${value} is not a valid id`);
  return value;
}
