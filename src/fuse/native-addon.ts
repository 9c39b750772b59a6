/**
 * fuse-native's compiled addon, loaded the way fuse-native loads it (node-gyp-build caches the
 * module, so this is the same instance). Used to release native state after our own unmount, and to
 * tell whether scripts/build-fuse-native.sh's patched build (correct utimens) is the one in use.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

export interface FuseBinding {
  fuse_native_unmount(mnt: string, thread: Buffer): void;
  /** Set by scripts/build-fuse-native.sh's patch. */
  readonly girder_mount_patch?: number;
  /** mallopt() of M_MMAP_THRESHOLD and M_ARENA_MAX (values <= 0 left alone): how many glibc took, -1 without glibc. Patch 3. */
  readonly girder_mount_malloc?: (mmapThreshold: number, arenaMax: number) => number;
  /** malloc_trim(0): 1 when memory went back to the system, 0 when none, -1 without glibc. Patch 4. */
  readonly girder_mount_malloc_trim?: () => number;
}

interface NodeGypBuild {
  (dir: string): unknown;
  path(dir: string): string;
}

const requireHere = createRequire(import.meta.url);
const fuseNativeDir = path.dirname(requireHere.resolve('fuse-native/package.json'));
const nodeGypBuild = createRequire(path.join(fuseNativeDir, 'index.js'))('node-gyp-build') as NodeGypBuild;

let binding: FuseBinding | undefined;

export function fuseBinding(): FuseBinding {
  if (binding === undefined) {
    const loaded = nodeGypBuild(fuseNativeDir) as Partial<FuseBinding> | null;
    if (typeof loaded?.fuse_native_unmount !== 'function') {
      throw new Error(`fuse-native addon at ${addonPath()} lacks fuse_native_unmount`);
    }
    binding = loaded as FuseBinding;
  }
  return binding;
}

/** The .node file fuse-native loads (build/Release/ before prebuilds/). */
export function addonPath(): string {
  return nodeGypBuild.path(fuseNativeDir);
}

/** True when the addon carries scripts/build-fuse-native.sh's current patch (utimens, getxattr). */
export function isPatchedAddon(): boolean {
  return (fuseBinding().girder_mount_patch ?? 0) >= 2;
}
