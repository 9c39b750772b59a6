/**
 * What went wrong with a Girder request, decoded once. Every failure, an answer or no answer, is a
 * GirderError whose `kind` says what the mount makes of it; Girder's own `type` string stays beside
 * it, for messages. This file is the one place that reads Girder's words (its messages for unknown
 * ids, forgotten uploads, full storage): code outside src/girder/ asks the kind, never the message.
 */

export type FailureKind =
  /** No answer, and quickly: a connection refused, reset or not resolved, a body cut short. */
  | 'network'
  /** No answer within --timeout (connecting, answering, between two bytes of a body). */
  | 'timeout'
  /** A 5xx answer. */
  | 'server-error'
  /** An answer that cannot be used: not JSON, another range than asked for, a redirect nowhere. */
  | 'malformed'
  /** Not sent: the server is known to be unreachable (server-health.ts). */
  | 'offline'
  /** The TLS handshake or the server's certificate failed. */
  | 'tls'
  /** Ended on purpose: the client or the stream is closing. */
  | 'aborted'
  /** Credentials refused: a 401, or a login refused (a deactivated API key: 400 "Invalid API key."). */
  | 'auth'
  /** Logged in but not allowed: a 403. */
  | 'forbidden'
  /** An id Girder does not know (deleted meanwhile): 400 "Invalid folder id (...)." or "No such folder: ...". */
  | 'missing'
  /** An upload id Girder forgot (finished, cancelled or expired): 400 "Invalid upload id (...).". */
  | 'lost-upload'
  /** A name taken among its siblings (or refused): 400 with field "name". */
  | 'conflict'
  /** A chunk sent at another offset than Girder counted: 400 "Server has received N bytes, but ...". */
  | 'offset-mismatch'
  /** The assetstore is full or unavailable. */
  | 'storage-full'
  /** The user's storage quota is used up (user_quota plugin). */
  | 'quota-exceeded'
  /** The file changed on the server under a reader (another size). */
  | 'stale'
  /** Anything else Girder refused: the same request will be refused again. */
  | 'permanent';

/** The models whose ids Girder reports as unknown. */
export type GirderModel = 'folder' | 'item' | 'file';

export interface GirderErrorOptions {
  readonly cause?: unknown;
  /** The kind, when the one decoded from status, type and message is not it (a failure wrapping another). */
  readonly kind?: FailureKind;
}

/** An error answer (or no answer) from the Girder server. */
export class GirderError extends Error {
  override readonly name = 'GirderError';
  /** What the failure means to the mount. */
  readonly kind: FailureKind;
  /** For 'missing': the model of the unknown id. */
  readonly model: GirderModel | undefined;
  /** For 'offset-mismatch': the bytes Girder has received. */
  readonly received: number | undefined;

  constructor(
    message: string,
    /** HTTP status; 0 when no answer arrived (socket error, timeout). */
    readonly status: number,
    /** Girder's error `type` (rest, access, validation, girder, internal), or a word for a failure without one (network, timeout...). */
    readonly type: string,
    readonly field?: string,
    options: GirderErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const decoded = decode(message, status, type, field);
    this.kind = options.kind ?? decoded.kind;
    this.model = decoded.model;
    this.received = decoded.received;
  }
}

/** The kind of a failure: its GirderError's, or undefined for anything else. */
export function kindOf(err: unknown): FailureKind | undefined {
  return err instanceof GirderError ? err.kind : undefined;
}

/** Girder does not know the id (of that model, when given): deleted meanwhile. */
export function isMissing(err: unknown, model?: GirderModel): boolean {
  return err instanceof GirderError && err.kind === 'missing' && (model === undefined || err.model === model);
}

/**
 * Girder removes a folder tree by recursing in Python: a chain of a few hundred nested folders
 * overflows its stack, a 500 whose message names the RecursionError.
 */
export function isTooDeep(err: unknown): boolean {
  return err instanceof GirderError && err.kind === 'server-error' && TOO_DEEP.test(err.message);
}

/** Credentials refused (401, a login refused) or access denied (403). */
export function isRefused(err: unknown): boolean {
  const kind = kindOf(err);
  return kind === 'auth' || kind === 'forbidden';
}

/**
 * A failure that may pass by itself, and says nothing of what was asked: no answer came (or none
 * was sent: the server is known to be down), or the server failed (5xx).
 */
export function isTransient(err: unknown): boolean {
  const kind = kindOf(err);
  return kind !== undefined && TRANSIENT.has(kind);
}

/**
 * A quick failure, worth sending the same request again at once: a connection refused or reset, a
 * body cut short, a 5xx. Not a timeout: that request already waited the whole --timeout, and a
 * retry would make the operation wait twice as long. Nor a certificate, an abort, or the server
 * known to be down (nothing was sent).
 */
export function isQuickFailure(err: unknown): err is GirderError {
  const kind = kindOf(err);
  return kind === 'network' || kind === 'server-error';
}

/** A failure that says the server itself may be away (no connection, no answer in time, a 5xx), not a refusal of one request. */
export function signalsServerAway(err: unknown): boolean {
  const kind = kindOf(err);
  return kind === 'network' || kind === 'timeout' || kind === 'server-error';
}

const TRANSIENT: ReadonlySet<FailureKind> = new Set<FailureKind>(['network', 'timeout', 'server-error', 'offline', 'tls', 'aborted']);

/** Failures made here, without an answer body: their `type` word is their kind. */
const LOCAL_TYPES: Readonly<Record<string, FailureKind>> = {
  network: 'network',
  timeout: 'timeout',
  tls: 'tls',
  offline: 'offline',
  aborted: 'aborted',
  stale: 'stale',
  malformed: 'malformed',
  auth: 'auth',
  'not-girder': 'permanent',
};

/** Girder's words for an unknown id: in the route ("Invalid folder id (x).") or loaded by a model ("No such folder: x"). */
const MISSING = /^(?:Invalid (folder|item|file) id|No such (folder|item|file): )/;
const LOST_UPLOAD = /^Invalid upload id/;
const OFFSET_MISMATCH = /^Server has received (\d+) bytes, but client sent offset \d+/;
/** The filesystem assetstore's answer when its disk is full or unreachable (filesystem_assetstore_adapter.py). */
const ASSETSTORE_FULL = /^Assetstore is unavailable or has insufficient free space/;
const TOO_DEEP = /\bRecursionError\b/;
/** The user_quota plugin, at upload start and at finalize. */
const QUOTA_EXCEEDED = /^Upload (would exceed|exceeded) file storage quota/;

interface Decoded {
  readonly kind: FailureKind;
  readonly model?: GirderModel;
  readonly received?: number;
}

function decode(message: string, status: number, type: string, field: string | undefined): Decoded {
  const local = LOCAL_TYPES[type];
  if (local !== undefined) return { kind: local };
  if (status === 401) return { kind: 'auth' };
  if (status === 403) return { kind: 'forbidden' };
  if (status >= 500) return { kind: 'server-error' };
  if (status === 0) return { kind: 'network' };
  if (status !== 400) return { kind: 'permanent' };
  const missing = MISSING.exec(message);
  if (missing !== null) return { kind: 'missing', model: (missing[1] ?? missing[2]) as GirderModel };
  if (LOST_UPLOAD.test(message)) return { kind: 'lost-upload' };
  const mismatch = OFFSET_MISMATCH.exec(message);
  if (mismatch !== null) return { kind: 'offset-mismatch', received: Number(mismatch[1]) };
  if (ASSETSTORE_FULL.test(message)) return { kind: 'storage-full' };
  if (QUOTA_EXCEEDED.test(message)) return { kind: 'quota-exceeded' };
  if (field === 'name') return { kind: 'conflict' };
  return { kind: 'permanent' };
}
