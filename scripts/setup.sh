#!/usr/bin/env bash
# Prepares a checkout for building and testing; safe to run any number of times.
#   - Debian packages the tests use (installed with apt-get when run as root)
#   - .venv: Python >= 3.10 virtualenv with scripts/requirements.txt (the Girder test server)
#   - node_modules: npm ci (Node >= 20), skipped while it matches package-lock.json; then the
#     patched fuse-native addon (scripts/build-fuse-native.sh) when it is not built yet
#   - dist/: npx tsc -p .
# Env: PYTHON (interpreter for the venv, default python3),
#      SETUP_ALLOW_TSC_ERRORS=1 (keep going when tsc reports errors; it still emits dist/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$@" | awk '{print $1}'; }

# --- Debian packages ---------------------------------------------------------------------------
# gcc and patch: scripts/build-fuse-native.sh rebuilds fuse-native's addon with a fix;
# git, sqlite3, fio, vim-tiny and stress-ng: programs test/integration/real-programs.test.ts runs on the mount
DEB_PACKAGES=(libfuse2 fuse attr rsync curl jq systemd python3-venv gcc patch git sqlite3 fio vim-tiny stress-ng)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]})); then
    cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then
      say "installing Debian packages: ${missing[*]}"
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    else
      say "missing Debian packages: ${missing[*]}"
      say "run as root:  $cmd"
      exit 1
    fi
  fi
else
  say "warning: no dpkg-query (not Debian?); make sure these are installed: ${DEB_PACKAGES[*]}"
fi
[[ -e /dev/fuse ]] || say "warning: /dev/fuse does not exist; FUSE mounts (integration tests) will fail"

# --- Python virtualenv ---------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; Python >= 3.10 is needed for the test server"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  die "Python >= 3.10 is needed for the test server; $PYTHON is $("$PYTHON" -V 2>&1). Set PYTHON=/path/to/python3.x"

VENV="$ROOT/.venv"
if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  say "removing a broken or too old .venv"
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating .venv with $("$PYTHON" -V 2>&1)"
  "$PYTHON" -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
PY_STAMP="$VENV/.requirements.sha256"
py_want="$(sha scripts/requirements.txt) $("$VENV/bin/python" -V 2>&1)"
if [[ "$(cat "$PY_STAMP" 2>/dev/null)" != "$py_want" ]]; then
  say "pip install -r scripts/requirements.txt"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q \
    -r scripts/requirements.txt >&2
  "$VENV/bin/python" -c 'import girder, girder_hashsum_download, mongomock, girder_client, uvicorn, moto.server' ||
    die "the venv is missing a package after pip install"
  printf '%s\n' "$py_want" >"$PY_STAMP"
else
  say ".venv is up to date"
fi

# The girder-mount-listing server plugin (scripts/girder-plugin), which the test server loads with
# --listing-plugin. Installed as an administrator would (pip, not editable) from a copy, so the
# checkout gets no build/ or egg-info; installed again only when one of its files changes.
PLUGIN_DIR=scripts/girder-plugin
PLUGIN_STAMP="$VENV/.girder-plugin.sha256"
plugin_files() { (cd "$ROOT/$PLUGIN_DIR" && printf '%s\n' pyproject.toml README.md girder_mount_listing/*.py); }
plugin_want="$(cd "$PLUGIN_DIR" && plugin_files | xargs sha256sum | sha) $("$VENV/bin/python" -V 2>&1)"
if [[ "$(cat "$PLUGIN_STAMP" 2>/dev/null)" != "$plugin_want" ]] ||
   ! "$VENV/bin/python" -c 'import girder_mount_listing' 2>/dev/null; then
  say "pip install $PLUGIN_DIR"
  plugin_copy="$(mktemp -d)"
  (cd "$PLUGIN_DIR" && plugin_files | xargs cp --parents -t "$plugin_copy")
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q \
    --no-deps --force-reinstall "$plugin_copy" >&2 || { rm -rf "$plugin_copy"; die "pip install $PLUGIN_DIR failed"; }
  rm -rf "$plugin_copy"
  "$VENV/bin/python" -c 'import girder_mount_listing' || die "the venv is missing girder_mount_listing after pip install"
  printf '%s\n' "$plugin_want" >"$PLUGIN_STAMP"
else
  say "girder-mount-listing plugin is up to date"
fi

# --- Node packages -----------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node not found; Node >= 20 is needed"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node >= 20 is needed; this is $(node -v)"

NODE_STAMP="node_modules/.setup-lock.sha256"
node_want="$(sha package-lock.json) node-$(node -p 'process.versions.modules')"
# True when npm's own record of the installed tree (node_modules/.package-lock.json) has every
# package of package-lock.json at the same version (optional ones may be absent: other platforms).
tree_matches_lock() {
  [[ -f node_modules/.package-lock.json ]] || return 1
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
    for (const [key, pkg] of Object.entries(want)) {
      if (key === "") continue;
      const got = have[key];
      if (!got) { if (pkg.optional) continue; process.exit(1); }
      if (got.version !== pkg.version) process.exit(1);
    }' 2>/dev/null
}
if [[ "$(cat "$NODE_STAMP" 2>/dev/null)" == "$node_want" ]]; then
  say "node_modules is up to date"
elif tree_matches_lock; then
  say "node_modules already matches package-lock.json"
  printf '%s\n' "$node_want" >"$NODE_STAMP"
else
  say "npm ci"
  npm ci --no-audit --no-fund >&2
  printf '%s\n' "$node_want" >"$NODE_STAMP"
fi

# npm ci restores fuse-native's original addon; build the patched one (see the script for why),
# also over a build of an older patch (its girder_mount_patch below 6)
patched_addon() {
  node -e 'process.exit(require("node-gyp-build")(process.argv[1]).girder_mount_patch >= 6 ? 0 : 1)' node_modules/fuse-native 2>/dev/null
}
if [[ -f scripts/build-fuse-native.sh ]] && ! { [[ -f node_modules/fuse-native/build/Release/fuse.node ]] && patched_addon; }; then
  say "bash scripts/build-fuse-native.sh"
  bash scripts/build-fuse-native.sh >&2
fi

# fuse-native ships prebuilt binaries (npm may refuse to run its install script; they are used anyway)
node --input-type=module -e '
  const { default: Fuse } = await import("fuse-native");
  if (typeof Fuse !== "function") throw new Error("fuse-native did not export its class");
' || die "fuse-native does not load (needs libfuse2 and node_modules/fuse-native/prebuilds/linux-x64)"

# --- Build -------------------------------------------------------------------------------------
# Drop compiled files whose TypeScript source is gone, so tap does not run stale tests.
if [[ -d dist ]]; then
  while IFS= read -r -d '' js; do
    rel="${js#dist/}"
    [[ -f "${rel%.js}.ts" ]] || rm -f "$js" "$js.map"
  done < <(find dist -name '*.js' -print0)
fi
say "npx tsc -p ."
if ! npx tsc -p .; then
  if [[ "${SETUP_ALLOW_TSC_ERRORS:-}" == 1 ]]; then
    say "warning: tsc reported errors (ignored: SETUP_ALLOW_TSC_ERRORS=1)"
  else
    die "tsc reported errors (set SETUP_ALLOW_TSC_ERRORS=1 to go on anyway)"
  fi
fi
say "ready"
