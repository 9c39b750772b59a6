export { BlockCache, DEFAULT_BLOCK_SIZE, type BlockCacheOptions } from './block-cache.js';
export { CachedReader, type CachedReaderOptions } from './cached-reader.js';
export { defaultCacheMaxBytes } from './default-size.js';
export type { CacheStats } from './cache-stats.js';
export type { ReadSession, RemoteFile } from '../ports.js';
export { remoteFileOf, versionKeyOf } from './version-key.js';
