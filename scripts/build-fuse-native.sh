#!/usr/bin/env bash
# Rebuild fuse-native 2.2.6's addon with a small fix for utimens, offline (no node-gyp, no network).
#
# Why: the prebuilt addon hands JavaScript the access time as BOTH atime and mtime
# (FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)), so `cp -p`, `rsync -t` and os.utime() store a wrong mtime;
# and since it does not set flag_utime_omit_ok, libfuse 2.9 silently drops `touch -m` / `touch -a`
# (only one of the two times given). The patch:
#   1. passes l->mtime as the mtime argument;
#   2. sets flag_utime_omit_ok and maps UTIME_NOW to the current time and UTIME_OMIT to UINT64_MAX,
#      which src/fuse/ops.ts reads as "leave this time unchanged";
#   3. answers getxattr of any name outside the user.* namespace with EOPNOTSUPP in C, without a
#      trip to JavaScript: the kernel asks for security.capability before every write(2), and that
#      round trip cost as much as the write itself (cp writes 128 KiB at a time). girder-mount keeps
#      no other namespace (src/vfs/xattrs.ts gives the same answer, as setxattr does). EOPNOTSUPP,
#      not ENODATA, because `ls -l` asks for security.selinux and system.posix_acl_access of every
#      file until one answer says the file system has no such attributes: ENODATA cost two round
#      trips per file (0.4 s of a 10,000-file `ls -lR`);
#   4. exports girder_mount_malloc(mmapThreshold, arenaMax), which calls glibc's mallopt(): the
#      daemon (src/fuse/native-addon.ts) uses it to give every large buffer its own mapping, returned
#      to the system when freed. glibc reads these settings from the environment only when a process
#      starts, and by default raises the threshold to the size of each large buffer freed, after
#      which multi-MiB buffers come from the heap, whose freed holes it keeps (the daemon's RSS grew
#      by 60+ MiB that way under parallel reads and writes);
#   5. exports girder_mount_malloc_trim(), which calls malloc_trim(0): the daemon calls it every few
#      seconds (src/fuse/malloc-settings.ts). glibc gives back only the free top of its heap; the
#      free chunks left between live ones stayed resident (a soak's heap mapping reached 120 MiB,
#      of which one malloc_trim gave back 70);
#   6. exports girder_mount_patch=6 so src/fuse/native-addon.ts can tell the patched addon is loaded;
#   7. hands the per-thread state of a FUSE thread that ends to the next thread started (a pthread key
#      destructor and a free list, not tied to one mount): libfuse 2.9 ends a worker once more than 10 are idle and starts
#      one when none is, and each new thread got new state with a libuv async handle the event loop
#      kept forever and scanned at every wake-up. A `find | xargs -P16 cat` of 10,000 files started
#      666 threads; the handles grew without bound over a mount's life;
#   8. answers flush of a handle opened read-only in C: src/fuse/handles.ts tags those (bit 30), and
#      their flush does nothing. The kernel sends a flush at every close(2): one of the five round
#      trips to JavaScript each `cat` of a small file cost.
# The result goes to node_modules/fuse-native/build/Release/fuse.node, which node-gyp-build loads
# before prebuilds/. Run it again after every `npm ci` / `npm install` (they restore the original).
#
# Needs: gcc, the installed node's headers (<prefix>/include/node), libfuse 2.9 headers (the copy
# shipped in fuse-shared-library-linux, or /usr/include/fuse from libfuse-dev), libfuse.so.2.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
die() { printf 'build-fuse-native: %s\n' "$*" >&2; exit 1; }
say() { printf 'build-fuse-native: %s\n' "$*" >&2; }

cd "$root"
fn_dir="$(node -p 'require("path").dirname(require.resolve("fuse-native/package.json"))' 2>/dev/null)" \
  || die "node_modules/fuse-native not found (run npm ci first)"
fn_version="$(node -p 'require("fuse-native/package.json").version')"
[[ "$fn_version" == 2.2.6 ]] || die "fuse-native $fn_version installed; this patch is for 2.2.6"

node_bin="$(readlink -f "$(command -v node)")"
node_inc="$(dirname "$(dirname "$node_bin")")/include/node"
[[ -f "$node_inc/node_api.h" && -f "$node_inc/uv.h" ]] || die "node headers not found in $node_inc"
napi_inc="$(node -p 'require("path").dirname(require.resolve("napi-macros/napi-macros.h", { paths: [process.argv[1]] }))' "$fn_dir")"
if [[ -f /usr/include/fuse/fuse.h ]]; then
  fuse_inc=/usr/include/fuse
else
  fuse_inc="$(node -p 'require("path").join(require("path").dirname(require.resolve("fuse-shared-library-linux/package.json", { paths: [process.argv[1]] })), "libfuse/include")' "$fn_dir" 2>/dev/null)" \
    || die "libfuse 2.9 headers not found (apt-get install libfuse-dev)"
fi
[[ -f "$fuse_inc/fuse.h" ]] || die "libfuse 2.9 headers not found in $fuse_inc (apt-get install libfuse-dev)"
command -v gcc >/dev/null || die "gcc not found"
command -v patch >/dev/null || die "patch not found"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$fn_dir/fuse-native.c" "$work/"

patch --quiet --directory="$work" -p0 <<'PATCH'
--- fuse-native.c
+++ fuse-native.c
@@ -17,6 +17,9 @@
 #include <unistd.h>
 #include <sys/wait.h>
 #include <pthread.h>
+#ifdef __GLIBC__
+#include <malloc.h>
+#endif
 
 static int IS_ARRAY_BUFFER_DETACH_SUPPORTED = 0;
 
@@ -113,6 +116,9 @@
 static const uint32_t op_mkdir = 32;
 static const uint32_t op_rmdir = 33;
 
+// girder-mount patch marker, read by src/fuse/native-addon.ts.
+static const uint32_t girder_mount_patch = 6;
+
 // Data structures
 
 typedef struct {
@@ -199,7 +205,14 @@
   ts->tv_nsec = (ms % 1000) * 1000000;
 }
 
+// girder-mount patch: UTIME_NOW is the current time, UTIME_OMIT is UINT64_MAX ("leave unchanged").
 static uint64_t timespec_to_uint64 (const struct timespec* ts) {
+  if (ts->tv_nsec == UTIME_OMIT) return UINT64_MAX;
+  struct timespec now;
+  if (ts->tv_nsec == UTIME_NOW) {
+    clock_gettime(CLOCK_REALTIME, &now);
+    ts = &now;
+  }
   uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);
   return ms;
 }
@@ -343,7 +356,7 @@
 }, {
   napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
   FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)
-  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)
+  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)
 })
 
 FUSE_METHOD_VOID(release, 2, 0, (const char *path, struct fuse_file_info *info), {
@@ -500,6 +513,11 @@
 })
 
 FUSE_METHOD(getxattr, 4, 1, (const char *path, const char *name, char *value, size_t size), {
+  // girder-mount patch: only user.* attributes exist (src/vfs/xattrs.ts); answer the rest here,
+  // e.g. the security.capability lookup the kernel makes before every write(2). EOPNOTSUPP makes
+  // ls -l stop asking for security.selinux and ACLs after the first file.
+  if (strncmp(name, "user.", 5) != 0) return -EOPNOTSUPP;
+
   l->path = path;
   l->name = name;
   l->value = value;
@@ -838,6 +856,7 @@
   if (implemented[op_releasedir]) ops.releasedir = fuse_native_releasedir;
   if (implemented[op_create]) ops.create = fuse_native_create;
   if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;
+  ops.flag_utime_omit_ok = 1;
   if (implemented[op_unlink]) ops.unlink = fuse_native_unlink;
   if (implemented[op_rename]) ops.rename = fuse_native_rename;
   if (implemented[op_link]) ops.link = fuse_native_link;
@@ -901,6 +920,34 @@
   return NULL;
 }
 
+// girder-mount patch: malloc settings glibc otherwise takes from the environment only at start
+// (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX), for src/fuse/native-addon.ts. A value <= 0 is left
+// as it is. Returns how many settings glibc took, or -1 without glibc.
+NAPI_METHOD(girder_mount_malloc) {
+  NAPI_ARGV(2)
+  NAPI_ARGV_INT32(mmap_threshold, 0)
+  NAPI_ARGV_INT32(arena_max, 1)
+  int32_t taken = 0;
+#ifdef __GLIBC__
+  if (mmap_threshold > 0) taken += mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1;
+  if (arena_max > 0) taken += mallopt(M_ARENA_MAX, arena_max) == 1;
+#else
+  taken = -1;
+#endif
+  NAPI_RETURN_INT32(taken)
+}
+
+// girder-mount patch: malloc_trim(0), which gives the free pages inside malloc's heaps back to the
+// system (glibc otherwise returns only the free top of a heap). 1 when memory was released, 0 when
+// none, -1 without glibc.
+NAPI_METHOD(girder_mount_malloc_trim) {
+#ifdef __GLIBC__
+  NAPI_RETURN_INT32(malloc_trim(0))
+#else
+  NAPI_RETURN_INT32(-1)
+#endif
+}
+
 NAPI_INIT() {
   const napi_node_version* version;
   assert(napi_get_node_version(env, &version) == napi_ok);
@@ -986,4 +1034,7 @@
   NAPI_EXPORT_UINT32(op_symlink)
   NAPI_EXPORT_UINT32(op_mkdir)
   NAPI_EXPORT_UINT32(op_rmdir)
+  NAPI_EXPORT_UINT32(girder_mount_patch)
+  NAPI_EXPORT_FUNCTION(girder_mount_malloc)
+  NAPI_EXPORT_FUNCTION(girder_mount_malloc_trim)
 }
PATCH

# 7. and 8. (above): against the result of the first patch
patch --quiet --directory="$work" -p0 <<'PATCH'
--- fuse-native.c
+++ fuse-native.c
@@ -185,11 +185,29 @@
   uv_sem_t sem;
   uv_async_t async;
 
+  // girder-mount patch: the next on the free list (free_locals)
+  void *next_free;
 } fuse_thread_locals_t;
 
 static pthread_key_t thread_locals_key;
 static fuse_thread_locals_t* get_thread_locals();
 
+// girder-mount patch: libfuse 2.9's loop ends a worker thread once more than 10 are idle and
+// starts a new one when none is; each new thread got new locals, with an async handle the event
+// loop kept for good and scanned at every wake-up (hundreds within a minute of parallel reads).
+// A thread that ends puts its locals here (the key's destructor) and the next new thread takes
+// them. Not tied to one mount: the next user sets l->fuse.
+static fuse_thread_locals_t *free_locals = NULL;
+static pthread_mutex_t free_locals_mut = PTHREAD_MUTEX_INITIALIZER;
+
+static void release_thread_locals (void *data) {
+  fuse_thread_locals_t *l = (fuse_thread_locals_t *) data;
+  pthread_mutex_lock(&free_locals_mut);
+  l->next_free = free_locals;
+  free_locals = l;
+  pthread_mutex_unlock(&free_locals_mut);
+}
+
 // Helpers
 // TODO: Extract into a separate file.
 
@@ -552,7 +570,13 @@
   napi_create_string_utf8(env, l->name, NAPI_AUTO_LENGTH, &(argv[3]));
 })
 
+// girder-mount patch: JavaScript tags the handles it opens read-only (src/fuse/handles.ts), whose
+// flush has nothing to do; the kernel sends one at every close(2): answered here.
+#define GIRDER_MOUNT_READ_ONLY_FH (1u << 30)
+
 FUSE_METHOD_VOID(flush, 2, 0, (const char *path, struct fuse_file_info *info), {
+  if (info != NULL && (info->fh & GIRDER_MOUNT_READ_ONLY_FH)) return 0;
+
   l->path = path;
   l->info = info;
 }, {
@@ -781,6 +805,18 @@
     return (fuse_thread_locals_t *) data;
   }
 
+  // girder-mount patch: a thread that ended left its locals (async handle included) for this one.
+  pthread_mutex_lock(&free_locals_mut);
+  fuse_thread_locals_t *l = free_locals;
+  if (l != NULL) free_locals = (fuse_thread_locals_t *) l->next_free;
+  pthread_mutex_unlock(&free_locals_mut);
+  if (l != NULL) {
+    l->next_free = NULL;
+    l->fuse = ft;
+    pthread_setspecific(thread_locals_key, (void *) l);
+    return l;
+  }
+
   // Need to lock the mutation of l->async.
   uv_mutex_lock(&(ft->mut));
   ft->async.data = ft;
@@ -789,7 +825,7 @@
   uv_async_send(&(ft->async));
   uv_sem_wait(&(ft->sem));
 
-  fuse_thread_locals_t *l = (fuse_thread_locals_t*) ft->async.data;
+  l = (fuse_thread_locals_t*) ft->async.data;
 
   pthread_setspecific(thread_locals_key, (void *) l);
   uv_mutex_unlock(&(ft->mut));
@@ -956,7 +992,7 @@
     IS_ARRAY_BUFFER_DETACH_SUPPORTED = 1;
   }
 
-  pthread_key_create(&(thread_locals_key), NULL); // TODO: add destructor
+  pthread_key_create(&(thread_locals_key), release_thread_locals);
 
   NAPI_EXPORT_SIZEOF(fuse_thread_t)
 
PATCH

say "compiling against $node_inc and $fuse_inc"
# The flags node-gyp would use for a Node addon on Linux (common.gypi), minus the download.
gcc -shared -fPIC -pthread -O3 -g -Wall -Wno-unused-function -Wno-unused-variable \
  -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE -DBUILDING_NODE_EXTENSION -DNODE_GYP_MODULE_NAME=fuse \
  -DUSING_UV_SHARED=1 -DUSING_V8_SHARED=1 \
  -I"$node_inc" -I"$napi_inc" -I"$fuse_inc" \
  -o "$work/fuse.node" "$work/fuse-native.c" \
  -l:libfuse.so.2 -lpthread \
  || die "gcc failed (is libfuse2 installed? it provides libfuse.so.2)"

mkdir -p "$fn_dir/build/Release"
cp "$work/fuse.node" "$fn_dir/build/Release/fuse.node.tmp"
mv -f "$fn_dir/build/Release/fuse.node.tmp" "$fn_dir/build/Release/fuse.node"

loaded="$(node -e '
  const b = require("node-gyp-build")(process.argv[1]);
  process.stdout.write(String(b.girder_mount_patch));
' "$fn_dir")" || die "the rebuilt addon does not load"
[[ "$loaded" == 6 ]] || die "node-gyp-build does not pick the rebuilt addon (PREBUILDS_ONLY set?)"
say "installed $fn_dir/build/Release/fuse.node (patched utimens, getxattr, flush, malloc settings and thread state reuse)"
