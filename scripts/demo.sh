#!/usr/bin/env bash
# Demo: a throwaway Girder server with a seeded "demo" folder, mounted with girder-mount.
#   scripts/demo.sh [MOUNTPOINT]     (default: a temp dir)
# Ctrl-C unmounts, stops the server and removes the temp files.
# Env: GIRDER_MOUNT_CLI (default dist/src/cli.js).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'demo: %s\n' "$*" >&2; }

bash scripts/setup.sh

TMP="$(mktemp -d "${TMPDIR:-/tmp}/girder-demo.XXXXXX")"
MNT="${1:-$TMP/mnt}"
OWN_MNT=$([[ -z "${1:-}" ]] && echo 1 || echo 0)
CLI="${GIRDER_MOUNT_CLI:-$ROOT/dist/src/cli.js}"
SERVER_PID=""
MOUNT_PID=""

is_mounted() { # /proc/mounts escapes spaces and such as octal (\040)
  local want
  want="$(realpath -m "$1")"
  while read -r _ mnt _; do
    [[ "$(printf '%b' "$mnt")" == "$want" ]] && return 0
  done </proc/mounts
  return 1
}

wait_gone() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

cleanup() {
  trap - EXIT INT TERM
  set +e
  if [[ -n "$MOUNT_PID" ]] && kill -0 "$MOUNT_PID" 2>/dev/null; then
    say "unmounting (SIGTERM to girder-mount, pid $MOUNT_PID; pending uploads are drained first)"
    kill -TERM "$MOUNT_PID"
    if ! wait_gone "$MOUNT_PID" 120; then
      say "girder-mount did not exit in 120 s; killing it"
      kill -KILL "$MOUNT_PID"
    fi
  fi
  if is_mounted "$MNT"; then
    say "$MNT is still mounted; fusermount -uz"
    fusermount -uz "$MNT" 2>/dev/null || umount -l "$MNT"
  fi
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    say "stopping the Girder server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID"
    wait_gone "$SERVER_PID" 20 || kill -KILL "$SERVER_PID"
  fi
  # never recurse into a mountpoint: remove it with rmdir, and TMP only once nothing is mounted
  if [[ "$OWN_MNT" == 1 ]] && ! is_mounted "$MNT"; then rmdir "$MNT" 2>/dev/null; fi
  if ! is_mounted "$MNT"; then rm -rf "$TMP"; else say "left $TMP (still mounted)"; fi
  say "done"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Girder server ---------------------------------------------------------------------------
say "starting a Girder 5 test server (logs: $TMP/server.log)"
# setsid: Ctrl-C goes to this script only, which then stops the children in order
setsid .venv/bin/python scripts/girder-server.py --data-dir "$TMP/assetstore" \
  >"$TMP/server.json" 2>"$TMP/server.log" &
SERVER_PID=$!
for ((i = 0; i < 1200; i++)); do
  [[ -s "$TMP/server.json" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; say "the server failed to start"; exit 1; }
  sleep 0.1
done
[[ -s "$TMP/server.json" ]] || { cat "$TMP/server.log" >&2; say "the server was not ready in 120 s"; exit 1; }
API_URL="$(jq -r .apiUrl "$TMP/server.json")"
API_KEY="$(jq -r .admin.apiKey "$TMP/server.json")"
PRIVATE="$(jq -r .folders.adminPrivate "$TMP/server.json")"

# --- demo data -------------------------------------------------------------------------------
say "seeding folder 'demo' in admin's Private folder"
FOLDER_ID="$(.venv/bin/python scripts/seed.py --api-url "$API_URL" --api-key "$API_KEY" --folder "$PRIVATE" demo)"

# --- mount -----------------------------------------------------------------------------------
mkdir -p "$MNT"
say "mounting folder $FOLDER_ID at $MNT (logs: $TMP/mount.log)"
# (the CLI takes every GIRDER_MOUNT_* variable as an option: drop the harness's own)
GIRDER_API_KEY="$API_KEY" setsid env -u GIRDER_MOUNT_CLI -u GIRDER_MOUNT_VENV node "$CLI" "$FOLDER_ID" "$MNT" --api-url "$API_URL" \
  --cache-dir "$TMP/cache" >"$TMP/mount.log" 2>&1 &
MOUNT_PID=$!
for ((i = 0; i < 600; i++)); do
  if is_mounted "$MNT" && timeout 5 stat "$MNT" >/dev/null 2>&1; then break; fi
  kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$TMP/mount.log" >&2; say "girder-mount exited"; exit 1; }
  sleep 0.1
done
is_mounted "$MNT" || { cat "$TMP/mount.log" >&2; say "not mounted after 60 s"; exit 1; }

cat <<EOF

Girder:   $API_URL   (admin / password; API key $API_KEY)
Folder:   /user/admin/Private/demo   id $FOLDER_ID
Mounted:  $MNT   (girder-mount pid $MOUNT_PID, logs in $TMP/mount.log)

Try, in another terminal:
  ls -l $MNT $MNT/notes $MNT/experiment-1
  cat $MNT/README.txt; head $MNT/data/measurements.csv
  sha512sum $MNT/data/random-20MiB.bin
  getfattr -d -m - $MNT/data $MNT/experiment-1; getfattr -n user.girder.id $MNT/data
  cp /etc/hosts $MNT/hosts.txt && mkdir $MNT/new-dir && mv $MNT/hosts.txt $MNT/new-dir/
  node $CLI status $MNT
  curl -s -H "Girder-Token: \$(curl -s -X POST $API_URL/api_key/token -d key=$API_KEY | jq -r .authToken.token)" \\
    "$API_URL/item?folderId=$FOLDER_ID" | jq '.[].name'

Press Ctrl-C to unmount and stop everything.
EOF

set +e
wait "$MOUNT_PID"
say "girder-mount exited with code $? (see $TMP/mount.log)"
tail -n 20 "$TMP/mount.log" >&2
