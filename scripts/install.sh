#!/usr/bin/env bash
# Installs girder-mount system-wide: the CLI (npm install -g), the systemd unit, /etc/girder-mount,
# and the mount(8) helper /sbin/mount.fuse.girder-mount. Run as root; safe to run again (upgrade).
#
#   scripts/install.sh                      build a package from this checkout (npm pack) and install it
#   scripts/install.sh girder-mount-X.tgz   install that `npm pack` output
#   scripts/install.sh --uninstall          remove what it installed (keeps /etc/girder-mount and caches)
#
# Env: NPM_PREFIX  npm's global prefix to install the CLI under (default: npm's own, `npm prefix -g`)
#      DESTDIR     stage the unit, helper and directories under this root instead of / (for packagers
#                  and tests; systemctl is not called then)
#      SKIP_FUSE_PATCH=1  do not rebuild fuse-native with scripts/build-fuse-native.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

uninstall=0
tarball=""
for arg in "$@"; do
  case "$arg" in
    --uninstall) uninstall=1 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $arg (see --help)" ;;
    *) [[ -z "$tarball" ]] || die "one tarball at most"; tarball="$arg" ;;
  esac
done

DESTDIR="${DESTDIR:-}"
[[ -n "$DESTDIR" || $(id -u) == 0 ]] || die "run as root (sudo $0), or set DESTDIR to stage the files"
command -v node >/dev/null || die "node not found; girder-mount needs Node.js >= 20"
command -v npm >/dev/null || die "npm not found"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js >= 20 is needed; this is $(node -v)"

npm_prefix_args=()
[[ -n "${NPM_PREFIX:-}" ]] && npm_prefix_args=(--prefix "$NPM_PREFIX")
npm_prefix="${NPM_PREFIX:-$(npm prefix -g)}"

unit_dir="$DESTDIR/etc/systemd/system"
conf_dir="$DESTDIR/etc/girder-mount"
log_dir="$DESTDIR/var/log/girder-mount"
# mount(8) looks for helpers in /sbin only (/sbin/fs.d, /sbin/fs); on merged-/usr systems that is /usr/sbin.
helper="$DESTDIR/sbin/mount.fuse.girder-mount"
systemd_running=0
[[ -z "$DESTDIR" && -d /run/systemd/system ]] && command -v systemctl >/dev/null && systemd_running=1

if ((uninstall)); then
  rm -f -- "$unit_dir/girder-mount@.service" "$helper"
  ((systemd_running)) && systemctl daemon-reload
  npm uninstall -g "${npm_prefix_args[@]}" girder-mount >&2 || true
  say "removed the CLI, the unit and the mount helper; kept $conf_dir, /var/cache/girder-mount and $log_dir"
  exit 0
fi

# --- the CLI -------------------------------------------------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -z "$tarball" ]]; then
  [[ -f "$root/package.json" && -f "$root/dist/src/cli.js" ]] ||
    die "no tarball given and $root/dist/src/cli.js is missing: build first (scripts/setup.sh, or npm ci && npm run build)"
  say "npm pack $root"
  (cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
  tarball="$(ls "$work"/girder-mount-*.tgz)"
fi
[[ -f "$tarball" ]] || die "$tarball does not exist"
say "npm install -g $(basename "$tarball")${NPM_PREFIX:+ --prefix $NPM_PREFIX}"
npm install -g --no-audit --no-fund "${npm_prefix_args[@]}" "$(realpath "$tarball")" >&2

cli="$npm_prefix/bin/girder-mount"
[[ -x "$cli" ]] || die "npm did not install $cli"
"$cli" --version >/dev/null || die "$cli --version failed"
package_dir="$(readlink -f "$cli")"
package_dir="${package_dir%/dist/src/cli.js}"

# fuse-native's prebuilt addon stores a wrong mtime on utimens; the patched build fixes it (needs gcc).
if [[ "${SKIP_FUSE_PATCH:-}" != 1 && -f "$package_dir/scripts/build-fuse-native.sh" ]]; then
  if command -v gcc >/dev/null; then
    bash "$package_dir/scripts/build-fuse-native.sh" ||
      say "warning: could not rebuild fuse-native (cp -p / touch -m keep a wrong mtime); see the message above"
  else
    say "note: gcc not found: fuse-native keeps its prebuilt addon (cp -p / rsync -t store a wrong mtime)"
  fi
fi

# The CLI starts with #!/usr/bin/env node: node must be on the PATH systemd and mount(8) give it.
node_dir="$(dirname "$(command -v node)")"
default_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
extra_path=""
[[ ":$default_path:" == *":$node_dir:"* ]] || extra_path="$node_dir"

# --- systemd unit --------------------------------------------------------------------------------
install -d -m 0755 "$unit_dir"
sed -e "s#/usr/local/bin/girder-mount#$cli#g" \
    -e "${extra_path:+s#^\[Service\]\$#[Service]\nEnvironment=PATH=$extra_path:$default_path#}" \
    "$root/systemd/girder-mount@.service" >"$work/unit"
install -m 0644 "$work/unit" "$unit_dir/girder-mount@.service"
say "installed $unit_dir/girder-mount@.service (ExecStart $cli)"

# --- /etc/girder-mount ---------------------------------------------------------------------------
install -d -m 0755 "$conf_dir"
install -m 0644 "$root/systemd/example.conf" "$conf_dir/example.conf.sample"
say "installed $conf_dir/example.conf.sample"

# --- mount(8) helper -----------------------------------------------------------------------------
install -d -m 0755 "$(dirname "$helper")"
sed -e "s#^DEFAULT_CLI=.*#DEFAULT_CLI=$cli#" -e "s#^EXTRA_PATH=.*#EXTRA_PATH=$extra_path#" \
  "$root/scripts/mount.fuse.girder-mount" >"$work/helper"
install -m 0755 "$work/helper" "$helper"
install -d -m 0750 "$log_dir"
say "installed $helper (logs in /var/log/girder-mount/)"

if ((systemd_running)); then
  systemctl daemon-reload
  say "systemctl daemon-reload done"
fi
cat >&2 <<EOF
install: done. To mount a folder at boot:
  cp $conf_dir/example.conf.sample /etc/girder-mount/NAME.conf   # then edit it
  install -m 0600 /dev/null /etc/girder-mount/NAME.key && echo 'API-KEY' > /etc/girder-mount/NAME.key
  systemctl enable --now girder-mount@NAME
EOF
