/** Turn Girder's JSON documents into the shapes of types.ts, tolerating missing or odd fields. */
import { GirderError } from './girder-error.js';
import { AccessLevel, type FileDoc, type FolderDoc, type ItemDoc, type Meta, type UserDoc } from './types.js';

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(what: string, detail: string): GirderError {
  return new GirderError(`malformed ${what} document from the server: ${detail}`, 200, 'malformed');
}

export function asObject(value: unknown, what: string): JsonObject {
  if (!isObject(value)) throw malformed(what, `expected an object, got ${describe(value)}`);
  return value;
}

export function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw malformed(what, `expected a list, got ${describe(value)}`);
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value;
}

/** A required id: Girder ids are strings (24-hex ObjectIds, but do not insist on the format). */
export function requireId(doc: JsonObject, field: string, what: string): string {
  const value = doc[field];
  if (typeof value !== 'string' || value === '') throw malformed(what, `field ${field} is not an id`);
  return value;
}

function optionalId(doc: JsonObject, field: string): string {
  const value = doc[field];
  return typeof value === 'string' ? value : '';
}

function str(doc: JsonObject, field: string, fallback = ''): string {
  const value = doc[field];
  return typeof value === 'string' ? value : fallback;
}

function num(doc: JsonObject, field: string, fallback = 0): number {
  const value = doc[field];
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function meta(doc: JsonObject): Meta {
  const value = doc.meta;
  return isObject(value) ? value : {};
}

const HAS_ZONE = /(Z|[+-]\d\d:?\d\d)$/i;

/**
 * Milliseconds since the epoch of an ISO-8601 date: with or without a fraction (Girder drops a
 * zero fraction; some fields carry microseconds), and UTC when no zone is given. 0 when absent.
 */
export function parseDate(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value !== 'string' || value === '') return 0;
  let text = value.trim().replace(' ', 'T');
  if (/T/.test(text) && !HAS_ZONE.test(text)) text += 'Z';
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? 0 : ms;
}

function optionalDate(doc: JsonObject, field: string): number | undefined {
  if (doc[field] === undefined || doc[field] === null) return undefined;
  const ms = parseDate(doc[field]);
  return ms === 0 ? undefined : ms;
}

const PARENT_TYPES = new Set(['folder', 'user', 'collection']);

export function decodeFolder(value: unknown): FolderDoc {
  const doc = asObject(value, 'folder');
  const parentType = str(doc, 'parentCollection', 'folder');
  const created = parseDate(doc.created);
  return {
    id: requireId(doc, '_id', 'folder'),
    name: str(doc, 'name'),
    parentId: optionalId(doc, 'parentId'),
    parentType: PARENT_TYPES.has(parentType) ? (parentType as FolderDoc['parentType']) : 'folder',
    created,
    updated: optionalDate(doc, 'updated') ?? created,
    meta: meta(doc),
    // Listed means readable: without the field assume READ, never more.
    accessLevel: num(doc, '_accessLevel', AccessLevel.READ),
  };
}

export function decodeItem(value: unknown): ItemDoc {
  const doc = asObject(value, 'item');
  const created = parseDate(doc.created);
  return {
    id: requireId(doc, '_id', 'item'),
    name: str(doc, 'name'),
    folderId: optionalId(doc, 'folderId'),
    created,
    updated: optionalDate(doc, 'updated') ?? created,
    size: num(doc, 'size'),
    meta: meta(doc),
  };
}

export function decodeFile(value: unknown): FileDoc {
  const doc = asObject(value, 'file');
  const file: { -readonly [K in keyof FileDoc]: FileDoc[K] } = {
    id: requireId(doc, '_id', 'file'),
    name: str(doc, 'name'),
    itemId: optionalId(doc, 'itemId'),
    size: num(doc, 'size'),
    created: parseDate(doc.created),
    mimeType: str(doc, 'mimeType', 'application/octet-stream'),
  };
  const updated = optionalDate(doc, 'updated');
  if (updated !== undefined) file.updated = updated;
  if (typeof doc.sha512 === 'string' && /^[0-9a-f]{128}$/i.test(doc.sha512)) file.sha512 = doc.sha512.toLowerCase();
  return file;
}

export function decodeUser(value: unknown): UserDoc {
  const doc = asObject(value, 'user');
  return { id: requireId(doc, '_id', 'user'), login: str(doc, 'login'), admin: doc.admin === true };
}

/** Girder's upload document (POST /file, PUT /file/{id}/contents, POST /file/chunk before the last). */
export interface UploadDoc {
  readonly id: string;
  readonly received: number;
  readonly size: number;
}

export function decodeUpload(value: unknown): UploadDoc {
  const doc = asObject(value, 'upload');
  return { id: requireId(doc, '_id', 'upload'), received: num(doc, 'received'), size: num(doc, 'size') };
}

/** A final chunk (or a 0-byte start) answers with the file document instead of the upload. */
export function isFileDocument(value: unknown): boolean {
  if (!isObject(value)) return false;
  if (value._modelType !== undefined) return value._modelType === 'file';
  return typeof value.itemId === 'string' && value.received === undefined;
}
