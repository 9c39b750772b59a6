import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError, errorMessage } from './errors.js';
import type { Credentials } from './girder/auth.js';

/** Everything a mount needs, validated. */
export interface MountConfig {
  readonly folderId: string;
  readonly mountpoint: string;
  readonly apiUrl: string;
  readonly credentials: Credentials;
  readonly attrTtlS: number;
  readonly cacheDir: string;
  /** undefined: a fraction of the free space of the cache directory's disk. */
  readonly cacheMaxBytes: number | undefined;
  readonly readOnly: boolean;
  readonly syncUploads: boolean;
  readonly allowOther: boolean;
  readonly uid: number;
  readonly gid: number;
  readonly umask: number;
  readonly timeoutS: number;
  readonly retries: number;
  readonly caFile: string | undefined;
  readonly logLevel: string;
  readonly drainTimeoutS: number;
}

/** Options as yargs hands them over (see cli.ts). */
export interface MountArgs {
  folderId: string;
  mountpoint: string;
  apiUrl?: string;
  apiKeyFile?: string;
  username?: string;
  attrTtl: number;
  cacheDir?: string;
  cacheMaxSize?: string;
  readOnly: boolean;
  syncUploads: boolean;
  allowOther: boolean;
  uid?: number;
  gid?: number;
  umask?: string;
  timeout: number;
  retries: number;
  caFile?: string;
  logLevel: string;
  drainTimeout: number;
}

/** Environment variables that hold secrets: read once, then removed so children never see them. */
export const SECRET_ENV = ['GIRDER_API_KEY', 'GIRDER_PASSWORD', 'GIRDER_TOKEN'] as const;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export async function buildConfig(
  args: MountArgs,
  env: NodeJS.ProcessEnv,
  askPassword: (prompt: string) => Promise<string | undefined>,
): Promise<MountConfig> {
  if (!/^[0-9a-f]{24}$/i.test(args.folderId)) {
    throw new UsageError(`"${args.folderId}" is not a Girder folder id (24 hexadecimal characters); copy the id from the folder's page in Girder`);
  }
  const apiUrl = checkApiUrl(args.apiUrl);
  if (!(args.attrTtl >= 0) || !Number.isFinite(args.attrTtl)) throw new UsageError(`--attr-ttl must be a number of seconds >= 0, got ${args.attrTtl}`);
  if (!(args.timeout > 0)) throw new UsageError(`--timeout must be a number of seconds > 0, got ${args.timeout}`);
  if (!Number.isInteger(args.retries) || args.retries < 0) throw new UsageError(`--retries must be a whole number >= 0, got ${args.retries}`);
  if (!(args.drainTimeout >= 0)) throw new UsageError(`--drain-timeout must be a number of seconds >= 0, got ${args.drainTimeout}`);
  if (!LOG_LEVELS.includes(args.logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${args.logLevel}"`);
  return {
    folderId: args.folderId.toLowerCase(),
    mountpoint: args.mountpoint,
    apiUrl,
    credentials: await credentials(args, env, askPassword),
    attrTtlS: args.attrTtl,
    cacheDir: args.cacheDir ?? defaultCacheDir(args.folderId.toLowerCase(), env),
    cacheMaxBytes: args.cacheMaxSize === undefined ? undefined : parseSize(args.cacheMaxSize),
    readOnly: args.readOnly,
    syncUploads: args.syncUploads,
    allowOther: args.allowOther,
    uid: checkId('--uid', args.uid, process.getuid?.() ?? 0),
    gid: checkId('--gid', args.gid, process.getgid?.() ?? 0),
    umask: parseUmask(args.umask),
    timeoutS: args.timeout,
    retries: args.retries,
    caFile: args.caFile,
    logLevel: args.logLevel,
    drainTimeoutS: args.drainTimeout,
  };
}

function checkApiUrl(url: string | undefined): string {
  if (url === undefined || url === '') {
    throw new UsageError('no server given: pass --api-url https://girder.example.org/api/v1 (or set GIRDER_MOUNT_API_URL)');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--api-url "${url}" is not a URL; expected e.g. https://girder.example.org/api/v1`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--api-url must start with http:// or https://, got "${url}"`);
  }
  return url.replace(/\/+$/, '');
}

async function credentials(
  args: MountArgs,
  env: NodeJS.ProcessEnv,
  askPassword: (prompt: string) => Promise<string | undefined>,
): Promise<Credentials> {
  if (args.apiKeyFile !== undefined) {
    let key: string;
    try {
      key = (await readFile(args.apiKeyFile, 'utf8')).trim();
    } catch (err) {
      throw new UsageError(`cannot read --api-key-file ${args.apiKeyFile}: ${errorMessage(err)}`);
    }
    if (key === '') throw new UsageError(`--api-key-file ${args.apiKeyFile} is empty; put the API key in it`);
    return { kind: 'apiKey', key };
  }
  if (env.GIRDER_API_KEY) return { kind: 'apiKey', key: env.GIRDER_API_KEY.trim() };
  if (args.username !== undefined) {
    const password = env.GIRDER_PASSWORD ?? (await askPassword(`Girder password for ${args.username}: `));
    if (password === undefined || password === '') {
      throw new UsageError(`no password for --username ${args.username}: set GIRDER_PASSWORD or run on a terminal to be asked`);
    }
    return { kind: 'password', username: args.username, password };
  }
  if (env.GIRDER_TOKEN) return { kind: 'token', token: env.GIRDER_TOKEN.trim() };
  throw new UsageError('no credentials: set GIRDER_API_KEY, or pass --api-key-file <path>, or --username <login> (with GIRDER_PASSWORD or a prompt), or set GIRDER_TOKEN');
}

function defaultCacheDir(folderId: string, env: NodeJS.ProcessEnv): string {
  if (process.getuid?.() === 0) return join('/var/cache/girder-mount', folderId);
  const base = env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'girder-mount', folderId);
}

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "500M", "10G", "1.5T", "123456" -> bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([BKMGT]?)(?:I?B)?\s*$/i.exec(text);
  const unit = m ? UNITS[(m[2] ?? '').toUpperCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`--cache-max-size "${text}" is not a size; use e.g. 500M, 10G or 1T`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 64 * 1024 ** 2) throw new UsageError(`--cache-max-size ${text} is too small; give at least 64M`);
  return bytes;
}

function parseUmask(text: string | undefined): number {
  if (text === undefined) return 0o022;
  if (!/^[0-7]{1,4}$/.test(text)) throw new UsageError(`--umask "${text}" is not an octal mask like 022 or 0077`);
  return parseInt(text, 8) & 0o777;
}

function checkId(flag: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > 0xfffffffe) throw new UsageError(`${flag} must be a numeric id >= 0, got ${value}`);
  return value;
}
