/**
 * Where Girder redirects a file's downloads (an S3 assetstore answers 303 to a presigned URL),
 * kept per file version so that later range reads of the same file go straight there: one request
 * instead of two. A URL is kept only while it says it is valid (its X-Amz-Date and X-Amz-Expires,
 * or Expires), and dropped as soon as the storage server refuses it; the reader then asks Girder
 * for a new one. Presigned URLs are credentials for one object: they are never logged.
 */
import type { FileRef } from './store.js';

/** Stop using a URL this long before it says it expires (clocks differ). */
const EXPIRY_MARGIN_MS = 60_000;
/** Use a URL at most this long, however long it is valid: a revoked permission takes effect by then. */
const MAX_KEEP_MS = 10 * 60_000;
/** Files whose URL is kept at once. */
const MAX_ENTRIES = 1024;

interface Kept {
  readonly url: string;
  readonly until: number;
}

export class RedirectTargets {
  private readonly byVersion = new Map<string, Kept>();

  /** The URL to read `file` from without asking Girder, if one is known and still valid. */
  get(file: FileRef, now = Date.now()): string | undefined {
    const key = keyOf(file);
    if (key === undefined) return undefined;
    const kept = this.byVersion.get(key);
    if (kept === undefined) return undefined;
    if (now >= kept.until) {
      this.byVersion.delete(key);
      return undefined;
    }
    return kept.url;
  }

  /** Keep the URL Girder redirected a download of `file` to, when the URL says how long it is valid. */
  remember(file: FileRef, url: string, now = Date.now()): void {
    const key = keyOf(file);
    const expires = expiryOf(url);
    if (key === undefined || expires === undefined) return;
    const until = Math.min(expires - EXPIRY_MARGIN_MS, now + MAX_KEEP_MS);
    if (until <= now) return;
    this.byVersion.delete(key);
    this.byVersion.set(key, { url, until });
    if (this.byVersion.size > MAX_ENTRIES) {
      const oldest = this.byVersion.keys().next().value;
      if (oldest !== undefined) this.byVersion.delete(oldest);
    }
  }

  /** The storage server refused `url` (expired, or the object is gone): never use it again. */
  forget(file: FileRef, url: string): void {
    const key = keyOf(file);
    if (key !== undefined && this.byVersion.get(key)?.url === url) this.byVersion.delete(key);
  }
}

/** Only a known content version may reuse a URL: a replaced file's new bytes live in another object. */
function keyOf(file: FileRef): string | undefined {
  return file.version === undefined ? undefined : `${file.id}\n${file.size}\n${file.version}`;
}

/**
 * When a presigned URL stops being valid (ms since the epoch), from its own query: AWS signature
 * v4 (X-Amz-Date + X-Amz-Expires), Google's (X-Goog-Date + X-Goog-Expires), or v2 (Expires).
 */
export function expiryOf(url: string): number | undefined {
  let query: URLSearchParams;
  try {
    query = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  for (const prefix of ['X-Amz-', 'X-Goog-']) {
    const date = query.get(`${prefix}Date`);
    const seconds = query.get(`${prefix}Expires`);
    if (date === null || seconds === null) continue;
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
    if (m === null || !/^\d{1,9}$/.test(seconds)) return undefined;
    const signed = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
    return signed + Number(seconds) * 1000;
  }
  const v2 = query.get('Expires');
  return v2 !== null && /^\d{1,12}$/.test(v2) ? Number(v2) * 1000 : undefined;
}

/** "AccessDenied: Request has expired" from an S3-style XML error body, when it is one. */
export function storageErrorOf(body: string): string | undefined {
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
  if (code === undefined) return undefined;
  const message = /<Message>([^<]{1,300})<\/Message>/.exec(body)?.[1];
  return message === undefined ? code : `${code}: ${message}`;
}

const perClient = new WeakMap<object, RedirectTargets>();

/** The redirect targets learned through one Girder client. */
export function redirectTargetsOf(client: object): RedirectTargets {
  let targets = perClient.get(client);
  if (targets === undefined) {
    targets = new RedirectTargets();
    perClient.set(client, targets);
  }
  return targets;
}
