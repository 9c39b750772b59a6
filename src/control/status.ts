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
  readonly uploads: ReadonlyArray<{ path: string; size: number; sent: number; state: string; error?: string }>;
  readonly cache: { hits: number; misses: number; bytesCached: number; maxBytes: number };
  readonly requests: { requests: number; errors: number; retries: number; bytesDownloaded: number; bytesUploaded: number };
  /** Whether Girder answers; while it does not, since when (ISO time) and why. */
  readonly server?: { readonly reachable: boolean; readonly unreachableSince?: string; readonly reason?: string };
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
    `uploads      ${s.uploads.length === 0 ? 'none pending' : `${s.uploads.length} pending`}`,
  ];
  for (const u of s.uploads) {
    const pct = u.size === 0 ? 100 : Math.floor((100 * u.sent) / u.size);
    lines.push(`  ${u.state.padEnd(9)} ${mib(u.sent)} / ${mib(u.size)} (${pct}%)  ${u.path}${u.error ? `  [${u.error}]` : ''}`);
  }
  return lines.join('\n');
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
