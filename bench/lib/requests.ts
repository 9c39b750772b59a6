// Requests counted by the proxy in front of the server, split into what a folder costs (its
// listing pages, its creation) and what a file costs (its file list, download, upload, lookup).
import type { CountingProxy, ProxiedRequest } from '../../test/helpers/counting-proxy.js';
import { formatRequests } from './report.js';
import { median } from './stats.js';

/** A request about a folder as a whole: a listing page of its sub-folders or items, the plugin's page, its creation. */
export function isFolderRequest(r: ProxiedRequest): boolean {
  if (r.pattern === 'GET /item') return !new URLSearchParams(r.query).has('name'); // with a name it looks up one file
  return r.pattern.startsWith(`${r.method} /folder`);
}

/** The requests of one row over its runs: medians of the total, per folder and per file. */
export class RequestTally {
  private readonly totals: number[] = [];
  private readonly perFolder: number[] = [];
  private readonly perFile: number[] = [];
  /** `pattern: n` of the last run, comma-separated. */
  breakdown = '';
  /** The requests of the last run. */
  last: readonly ProxiedRequest[] = [];

  constructor(
    private readonly folders: number,
    private readonly files: number,
  ) {}

  /** Adds the requests `proxy` logged after `mark`. */
  add(proxy: CountingProxy, mark: number): void {
    const requests = proxy.since(mark);
    const folderRequests = requests.filter(isFolderRequest).length;
    this.totals.push(requests.length);
    this.perFolder.push(folderRequests / this.folders);
    this.perFile.push((requests.length - folderRequests) / this.files);
    this.breakdown = proxy.describe(mark).replace(/\n/g, ', ');
    this.last = requests;
  }

  /** The Row fields. */
  fields(): { requests: number; perFolder: number; perFile: number } {
    return { requests: median(this.totals), perFolder: median(this.perFolder), perFile: median(this.perFile) };
  }

  /** e.g. `418 (2.00/folder + 1.00/file)`, medians over the runs. */
  summary(): string {
    const f = this.fields();
    return formatRequests(f.requests, f.perFolder, f.perFile);
  }
}
