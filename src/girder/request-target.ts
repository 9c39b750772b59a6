/** Where a request goes: a path under the API root, or an absolute URL (a storage server's), with its query. */
import type { Query } from './request-options.js';

/** The origin and the path with query string of `pathOrUrl` (under `basePath` at `origin` when not absolute). */
export function requestTarget(origin: string, basePath: string, pathOrUrl: string, query: Query | undefined): { origin: string; path: string } {
  const qs = query === undefined ? '' : queryString(query);
  if (isAbsoluteUrl(pathOrUrl)) {
    const url = new URL(pathOrUrl);
    const search = url.search + (qs === '' ? '' : (url.search === '' ? '?' : '&') + qs);
    return { origin: url.origin, path: url.pathname + search };
  }
  return { origin, path: basePath + pathOrUrl + (qs === '' ? '' : '?' + qs) };
}

/** An absolute URL is never sent the token. */
export function isAbsoluteUrl(pathOrUrl: string): boolean {
  return /^https?:\/\//i.test(pathOrUrl);
}

/** The path without its query string (for logs and counters: a query may hold a secret). */
export function stripQuery(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) params.append(key, String(value));
  }
  return params.toString();
}
