/**
 * The answer of `GET /folder/{id}/listing`, the one route of the optional girder-mount-listing
 * server plugin (scripts/girder-plugin; the README's "Server accelerator (optional)" has the contract).
 */
import { GirderError } from './girder-error.js';
import { asArray, asObject, decodeFile, decodeFolder, decodeItem, type JsonObject } from './decode.js';
import type { FileDoc, FolderDoc, ItemDoc } from './types.js';

export const LISTING_PLUGIN = 'girder-mount-listing';
/** The answer format this client reads: plugin versions 1.x. */
export const LISTING_MAJOR = 1;
/** The most entries (folders plus items) one page may ask for. */
export const LISTING_MAX_LIMIT = 10_000;

export interface ListedItem {
  readonly item: ItemDoc;
  /** Every file of the item, sorted by name, then id. */
  readonly files: readonly FileDoc[];
}

export interface ListingPage {
  readonly version: string;
  readonly offset: number;
  readonly limit: number;
  /** Sub-folders the caller can read, and items, in the whole folder (not just this page). */
  readonly totalFolders: number;
  readonly totalItems: number;
  /** The page is a window over [sub-folders by id] then [items by id]. */
  readonly folders: readonly FolderDoc[];
  readonly items: readonly ListedItem[];
}

function malformed(detail: string): GirderError {
  return new GirderError(`malformed listing page from the server: ${detail}`, 200, 'malformed');
}

function count(doc: JsonObject, field: string): number {
  const value = doc[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw malformed(`${field} is not a count`);
  return value;
}

/** True for an answer of this plugin in a version this client reads (what the probe looks for). */
export function isListingAnswer(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const { plugin, version } = value as JsonObject;
  return plugin === LISTING_PLUGIN && typeof version === 'string' && Number(version.split('.')[0]) === LISTING_MAJOR;
}

/**
 * A server without the plugin answers the probe 400 "No matching route" (any other 4xx but 401 also
 * means: list with Girder's own routes). 401 (log in again) and transient failures tell nothing.
 */
export function isNoListingRoute(err: unknown): boolean {
  return err instanceof GirderError && err.status >= 400 && err.status < 500 && err.status !== 401;
}

export function decodeListingPage(value: unknown): ListingPage {
  const doc = asObject(value, 'listing page');
  if (!isListingAnswer(doc)) throw malformed(`not a ${LISTING_PLUGIN} ${LISTING_MAJOR}.x answer`);
  return {
    version: doc.version as string,
    offset: count(doc, 'offset'),
    limit: count(doc, 'limit'),
    totalFolders: count(doc, 'totalFolders'),
    totalItems: count(doc, 'totalItems'),
    folders: asArray(doc.folders, 'listing folders').map(decodeFolder),
    items: asArray(doc.items, 'listing items').map((raw) => ({
      item: decodeItem(raw),
      files: asArray(asObject(raw, 'item').files, 'item files').map(decodeFile),
    })),
  };
}
