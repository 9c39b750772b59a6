/** A closed file not yet on the server. */
export interface UploadLine {
  readonly path: string;
  readonly size: number;
  readonly sent: number;
  /** queued, hashing, uploading, or waiting (a try failed with something that can go away). */
  readonly state: string;
  /** Why it waits. */
  readonly reason?: string;
  readonly retryInS?: number;
  /** Closed before a restart and resumed from the journal. */
  readonly resumed?: boolean;
}

/** An upload that can never succeed (its target was deleted on the server): its bytes are in lost+found. */
export interface FailedUploadLine {
  readonly path: string;
  readonly size: number;
  readonly reason: string;
  readonly keptAt: string;
  readonly failedAt: string;
}

/** What `girder-mount status` shows: the daemon's answer on GET /status. */
export interface MountStatus {
  readonly pid: number;
  readonly mountpoint: string;
  readonly apiUrl: string;
  readonly folderId: string;
  readonly readOnly: boolean;
  readonly uptimeS: number;
  /** Unmounted lazily while busy: serving the processes still inside until they leave. */
  readonly detached?: boolean;
  readonly uploads: ReadonlyArray<UploadLine>;
  /** Removals (rm) not yet done on Girder: the entries are gone from the mount already. */
  readonly removals?: number;
  /** Read from lost+found: they stay listed (across restarts) until the user moves or deletes the files. */
  readonly failedUploads: ReadonlyArray<FailedUploadLine>;
  readonly lostAndFound: string;
  readonly cache: { hits: number; misses: number; bytesCached: number; maxBytes: number };
  readonly requests: { requests: number; errors: number; retries: number; bytesDownloaded: number; bytesUploaded: number };
  /** Whether Girder answers; while it does not, since when (ISO time) and why. */
  readonly server?: { readonly reachable: boolean; readonly unreachableSince?: string; readonly reason?: string };
  /** The daemon's process.memoryUsage(), bytes: where its resident memory goes (V8 heap, buffers, the rest native). */
  readonly memory?: MemoryLine;
}

export interface MemoryLine {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  /** Memory of C++ objects bound to JS ones, Buffers included. */
  readonly external: number;
  /** ArrayBuffers and Buffers (part of external). */
  readonly arrayBuffers: number;
}

export interface UnmountAnswer {
  /** The mount is gone (the daemon exits once its uploads are drained or journaled). */
  readonly unmounted: boolean;
  /** It was busy: detached (lazy unmount); the daemon serves the processes inside until they leave. */
  readonly detached: boolean;
  /** Uploads not on the server yet. */
  readonly pending: number;
  readonly message: string;
}

/**
 * Exit codes of `girder-mount status`, for scripts and monitoring: 0 when no upload waits or
 * failed (some may be running), 3 when some upload waits, 4 when some upload failed for good
 * (kept in lost+found; 4 wins over 3). 1: no daemon answers.
 */
export const STATUS_EXIT = { ok: 0, waiting: 3, failed: 4 } as const;

export function statusExitCode(s: MountStatus): number {
  if ((s.failedUploads ?? []).length > 0) return STATUS_EXIT.failed;
  if (s.uploads.some((u) => u.state === 'waiting')) return STATUS_EXIT.waiting;
  return STATUS_EXIT.ok;
}

/** One upload's state as `status` prints it: `uploading 1.0 / 3.0 MiB (33%)`, `waiting: <reason>; retry in 40 s`... */
export function describeUpload(u: UploadLine): string {
  const resumed = u.resumed === true ? ' (resumed from the journal)' : '';
  if (u.state === 'waiting') return `waiting: ${u.reason ?? 'unknown reason'}; retry in ${u.retryInS ?? 0} s${resumed}`;
  if (u.state === 'uploading') {
    const pct = u.size === 0 ? 100 : Math.floor((100 * u.sent) / u.size);
    return `uploading ${mib(u.sent)} / ${mib(u.size)} (${pct}%)${resumed}`;
  }
  return `${u.state}, ${mib(u.size)}${resumed}`;
}

export function describeFailed(f: FailedUploadLine): string {
  return `failed: ${f.reason}, kept at ${f.keptAt}`;
}

export function formatStatus(s: MountStatus): string {
  const lookups = s.cache.hits + s.cache.misses;
  const hitRate = lookups === 0 ? '-' : `${((100 * s.cache.hits) / lookups).toFixed(1)}%`;
  const lines = [
    `mountpoint   ${s.mountpoint} (pid ${s.pid}, up ${Math.round(s.uptimeS)} s${s.readOnly ? ', read-only' : ''}${s.detached === true ? ', detached: serving the processes still inside until they leave' : ''})`,
    `server       ${s.apiUrl}, folder ${s.folderId}`,
    ...(s.server?.reachable === false
      ? [`outage       server unreachable since ${s.server.unreachableSince ?? '?'} (${s.server.reason ?? 'no answer'}); serving what is cached`]
      : []),
    `requests     ${s.requests.requests} (${s.requests.errors} errors, ${s.requests.retries} retries), ${mib(s.requests.bytesDownloaded)} down, ${mib(s.requests.bytesUploaded)} up`,
    `cache        ${mib(s.cache.bytesCached)} of ${mib(s.cache.maxBytes)}, hit rate ${hitRate} (${s.cache.hits} hits, ${s.cache.misses} misses)`,
    `uploads      ${uploadsSummary(s)}`,
    ...((s.removals ?? 0) > 0 ? [`removals     ${s.removals} not yet done on the server (gone from the mount already)`] : []),
    ...(s.memory !== undefined ? [`memory       ${describeMemory(s.memory)}`] : []),
  ];
  for (const u of s.uploads) lines.push(`  ${u.path}  ${describeUpload(u)}`);
  const failed = s.failedUploads ?? [];
  for (const f of failed) lines.push(`  ${f.path}  ${describeFailed(f)}`);
  if (failed.length > 0) lines.push(`  (a failed upload stays listed until you move or delete its file in ${s.lostAndFound})`);
  return lines.join('\n');
}

/** `RSS 120.0 MiB: heap 40.0 MiB of 60.0 MiB, external 10.0 MiB (buffers 8.0 MiB), other 50.0 MiB`. */
export function describeMemory(m: MemoryLine): string {
  const other = m.rss - m.heapTotal - m.external;
  return `RSS ${mib(m.rss)}: heap ${mib(m.heapUsed)} of ${mib(m.heapTotal)}, external ${mib(m.external)} (buffers ${mib(m.arrayBuffers)}), other ${mib(other)}`;
}

function uploadsSummary(s: MountStatus): string {
  const failed = (s.failedUploads ?? []).length;
  if (s.uploads.length === 0 && failed === 0) return 'all on the server';
  const counts = new Map<string, number>();
  for (const u of s.uploads) counts.set(u.state, (counts.get(u.state) ?? 0) + 1);
  const parts = [...counts].map(([state, n]) => `${n} ${state}`);
  if (failed > 0) parts.push(`${failed} failed`);
  return `${s.uploads.length + failed} not on the server: ${parts.join(', ')}`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
