#!/bin/bash
# install.sh: installs, upgrades, rolls back or removes enrollment-worker on a systemd host. Run it
# as root from an unpacked release (`npm run release`); it is the release's top-level install.sh.
#
#   sudo ./install.sh                     install or upgrade to this release, then start or restart
#   sudo ./install.sh --rollback          back to the previous release, and restart
#   sudo ./install.sh --uninstall         stop and remove the service and the releases; keep settings
#   sudo ./install.sh --uninstall --purge ... and the settings too
#   sudo ./install.sh --check             only `enrollment-worker check` with the settings
#
# An install copies the release to /opt/enrollment-worker-<version>, creates the settings file
# /etc/enrollment-worker/enrollment-worker.env from the example only if it is absent, and runs
# `enrollment-worker check` with those settings as an unprivileged user. Only when the check passes
# does it point /opt/enrollment-worker at the release (the one before it stays as
# /opt/enrollment-worker.previous), install the unit (daemon-reload only when it changed), enable
# it, and start or restart it; the restart drains the old process and returns once the new one is
# ready. A failing check changes nothing that runs. A second run with nothing new changes nothing.
#
# Exit status: 0 done (or nothing to do); 1 refused or failed, with the reason; 2 usage; 3 installed
# but not started because the settings file still holds the example's values.
# Run by `sh install.sh`: this needs bash (local, pipefail, BASH_SOURCE), so become it.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
umask 022
export LC_ALL=C

readonly UNIT=enrollment-worker.service
readonly UNIT_FILE=/etc/systemd/system/$UNIT
readonly OPT=/opt
readonly CURRENT=$OPT/enrollment-worker
readonly PREVIOUS=$OPT/enrollment-worker.previous
readonly ETC=/etc/enrollment-worker
readonly ENV_FILE=$ETC/enrollment-worker.env
readonly NODE_MAJOR=24
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly HERE

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '3,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# A release folder's RELEASE file: name=, version=, arch=, node=, commit=.
release_field() { sed -n "s/^$2=//p" "$1/RELEASE" 2>/dev/null | head -n 1; }
is_release() { [ -d "$1" ] && [ "$(release_field "$1" name)" = enrollment-worker ]; }
# Where a symlink points, resolved, or nothing.
target_of() { if [ -L "$1" ] || [ -e "$1" ]; then readlink -f "$1" || true; fi; }

# Two files with the same bytes (sha256sum, not cmp: coreutils is on every image, diffutils is not).
same_file() { [ -f "$1" ] && [ -f "$2" ] && [ "$(sha256sum <"$1")" = "$(sha256sum <"$2")" ]; }

# Replaces (or creates) a symlink in one rename: a reader never sees it missing.
point() {
  ln -sfn "$2" "$1.new.$$"
  mv -T "$1.new.$$" "$1"
}

require_root_and_systemd() {
  [ "$(id -u)" = 0 ] || die "run me as root: sudo $0"
  [ -d /run/systemd/system ] || die "systemd is not running here: this installs a systemd service"
  command -v systemctl >/dev/null || die "systemctl is missing"
}

# The node the unit runs: ExecStart= of the loaded unit (a drop-in may change it), else of the unit
# in the release.
unit_node() {
  local release=$1 node=''
  if [ "$(systemctl show -P LoadState "$UNIT" 2>/dev/null)" = loaded ]; then
    node=$(systemctl show -P ExecStart "$UNIT" | sed -n 's/^{ path=\([^ ;]*\).*/\1/p' | head -n 1)
  fi
  [ -n "$node" ] || node=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$release/systemd/$UNIT" | head -n 1)
  printf '%s\n' "$node"
}

require_node() {
  local node found=none
  node=$(unit_node "$1")
  if [ -x "$node" ]; then found=$("$node" --version 2>/dev/null || echo 'one that does not run'); fi
  case "$found" in v"$NODE_MAJOR".*) return 0 ;; esac
  local arch
  arch=$(release_field "$1" arch)
  cat >&2 <<EOF
install.sh: Node.js $NODE_MAJOR is needed at $node (the unit's ExecStart=), found $found. Install it, e.g.
the official binary (https://nodejs.org/dist/latest-v$NODE_MAJOR.x/ lists the current version):

  NODE=v24.21.0 ARCH=linux-$arch
  curl -fsSLO https://nodejs.org/dist/\$NODE/node-\$NODE-\$ARCH.tar.xz
  curl -fsSL https://nodejs.org/dist/\$NODE/SHASUMS256.txt | grep " node-\$NODE-\$ARCH.tar.xz\\\$" | sha256sum -c -
  sudo tar -xJf node-\$NODE-\$ARCH.tar.xz -C /usr/local --strip-components=1
  sudo ln -sfn /usr/local/bin/node $node

or a distribution package that puts Node $NODE_MAJOR at $node; then run this again.
EOF
  exit 1
}

require_matching_arch() {
  local machine want
  want=$(release_field "$1" arch)
  case "$(uname -m)" in x86_64 | amd64) machine=x64 ;; aarch64 | arm64) machine=arm64 ;; *) machine=$(uname -m) ;; esac
  [ "$machine" = "$want" ] || die "this release is for linux-$want, this machine is $(uname -m): use the linux-$machine release"
}

# The release's files as its manifest lists them (a partial download or a changed file fails).
verify() {
  (cd "$1" && sha256sum --quiet --strict -c MANIFEST.sha256 >/dev/null 2>&1)
}

# Copies this release to /opt/enrollment-worker-<version> unless the same build is already there.
# Prints the installed folder.
place() {
  local from=$1 version dest
  version=$(release_field "$from" version)
  dest=$OPT/enrollment-worker-$version
  if [ "$from" = "$dest" ]; then
    printf '%s\n' "$dest"
    return
  fi
  if is_release "$dest"; then
    if same_file "$from/MANIFEST.sha256" "$dest/MANIFEST.sha256" && verify "$dest"; then
      say "release $version is already in $dest" >&2
      printf '%s\n' "$dest"
      return
    fi
    [ "$(target_of "$CURRENT")" != "$dest" ] ||
      die "$dest holds another build of $version, and it is the one running: give this build its own version"
    say "replacing another build of $version in $dest (not in use)" >&2
  elif [ -e "$dest" ]; then
    die "$dest exists but is not an enrollment-worker release: move it away first"
  fi
  local tmp="$dest.partial.$$"
  rm -rf "$tmp"
  cp -R "$from" "$tmp"
  chown -R root:root "$tmp"
  chmod -R u+rwX,go+rX,go-w "$tmp"
  verify "$tmp" || { rm -rf "$tmp"; die "the copy in $tmp does not match the release's manifest (disk full?)"; }
  rm -rf "$dest"
  mv -T "$tmp" "$dest"
  say "installed release $version in $dest" >&2
  printf '%s\n' "$dest"
}

ensure_settings() {
  if [ ! -e "$ENV_FILE" ]; then
    install -d -m 0755 -o root -g root "$ETC"
    install -m 0640 -o root -g root "$1/systemd/enrollment-worker.env.example" "$ENV_FILE"
    say "created $ENV_FILE from the example"
  fi
}

settings_are_the_example() { same_file "$1/systemd/enrollment-worker.env.example" "$ENV_FILE"; }

# `enrollment-worker check` of a release, with the unit's settings file read by systemd itself (its
# quoting rules, not a shell's) and as a transient unprivileged user, like the service.
run_check() {
  local dest=$1 node
  node=$(unit_node "$dest")
  say "checking release $(release_field "$dest" version) with $ENV_FILE:"
  systemd-run --quiet --wait --pipe --collect \
    --unit="enrollment-worker-check-$$" \
    -p EnvironmentFile="$ENV_FILE" \
    -p Environment=HOME=/nonexistent \
    -p DynamicUser=yes \
    -p WorkingDirectory="$dest" \
    "$node" "$dest/dist/cli.js" check </dev/null
}

# When the running process started, in whole seconds since the epoch (0 when none runs): the boot
# time (now - uptime) plus systemd's monotonic start stamp.
started_at() {
  local mono
  mono=$(systemctl show -P ExecMainStartTimestampMonotonic "$UNIT" 2>/dev/null || true)
  if [ -z "$mono" ] || [ "$mono" = 0 ]; then
    echo 0
    return
  fi
  awk -v now="$(date +%s.%N)" -v mono="$mono" '{ printf "%d\n", now - $1 + mono / 1000000 }' /proc/uptime
}

active() { [ "$(systemctl is-active "$UNIT" 2>/dev/null || true)" = active ]; }
main_pid() { systemctl show -P MainPID "$UNIT" 2>/dev/null || echo 0; }

prune() {
  local keep_current keep_previous dir
  keep_current=$(target_of "$CURRENT")
  keep_previous=$(target_of "$PREVIOUS")
  for dir in "$OPT"/enrollment-worker-*; do
    if [ "$dir" = "$keep_current" ] || [ "$dir" = "$keep_previous" ] || ! is_release "$dir"; then continue; fi
    rm -rf "$dir"
    say "removed the older release $dir"
  done
}

# Installs (or returns to) the release in folder $1: everything an install or a rollback does.
deploy() {
  local from=$1 dest version current unit_changed=no why=''
  version=$(release_field "$from" version)
  require_matching_arch "$from"
  verify "$from" || die "$from does not match its MANIFEST.sha256: unpack the release again (and check it against SHA256SUMS)"
  require_node "$from"
  dest=$(place "$from")
  ensure_settings "$dest"
  if settings_are_the_example "$dest"; then
    say "$ENV_FILE still holds the example's settings: fill in AWS_REGION, SQS_QUEUE_URL and S3_BUCKET"
    say "(and the optional ones you use), then run this again: sudo $dest/install.sh"
    exit 3
  fi

  # A folder there (not our symlink) is someone's hand-made install: not ours to replace.
  if [ -e "$CURRENT" ] && [ ! -L "$CURRENT" ]; then
    die "$CURRENT is a folder, not a symlink to a release: move it away (e.g. to $CURRENT.manual), then run this again"
  fi
  current=$(target_of "$CURRENT")
  same_file "$dest/systemd/$UNIT" "$UNIT_FILE" || unit_changed=yes
  if [ "$current" != "$dest" ]; then
    why="switching to $version${current:+ from $(release_field "$current" version)}"
  elif [ "$unit_changed" = yes ]; then
    why="the unit changed"
  elif ! active; then
    why="the service is not running"
  elif [ "$(stat -c %Y "$ENV_FILE")" -gt "$(started_at)" ]; then
    why="$ENV_FILE changed since the worker started"
  elif [ "$(systemctl is-enabled "$UNIT" 2>/dev/null || true)" != enabled ]; then
    why="the service is not enabled"
  fi
  if [ -z "$why" ]; then
    say "nothing changed: release $version is installed and running (pid $(main_pid))"
    return 0
  fi

  if ! run_check "$dest"; then
    if active; then
      die "check failed (above): nothing was switched or restarted; release $(release_field "$current" version) keeps running (pid $(main_pid))"
    fi
    die "check failed (above): fix what it names, then run this again; the service was not started"
  fi

  if [ "$current" != "$dest" ]; then
    point "$CURRENT" "$dest"
    if [ -n "$current" ] && is_release "$current"; then point "$PREVIOUS" "$current"; fi
    say "$CURRENT -> $dest"
  fi
  if [ "$unit_changed" = yes ]; then
    install -m 0644 -o root -g root "$dest/systemd/$UNIT" "$UNIT_FILE"
    systemctl daemon-reload
    say "installed $UNIT_FILE (daemon-reload)"
  fi
  systemctl enable --quiet "$UNIT"
  if active; then
    say "restarting ($why): the old process drains its jobs first"
    systemctl restart "$UNIT" || die "the restart failed: journalctl -u ${UNIT%.service} -n 50; to go back: sudo $CURRENT/install.sh --rollback"
  else
    say "starting ($why)"
    systemctl reset-failed "$UNIT" 2>/dev/null || true
    systemctl start "$UNIT" || die "the start failed: journalctl -u ${UNIT%.service} -n 50"
  fi
  prune
  local previous
  previous=$(release_field "$(target_of "$PREVIOUS")" version || true)
  say "release $version is running (pid $(main_pid)); previous release: ${previous:-none}"
}

rollback() {
  local previous
  previous=$(target_of "$PREVIOUS")
  is_release "$previous" || die "there is no previous release to roll back to ($PREVIOUS)"
  say "rolling back to $(release_field "$previous" version)"
  deploy "$previous"
}

uninstall() {
  local purge=$1 removed=no dir
  if [ "$(systemctl show -P LoadState "$UNIT" 2>/dev/null)" = loaded ] || [ -e "$UNIT_FILE" ]; then
    systemctl disable --now --quiet "$UNIT" 2>/dev/null || true
    systemctl reset-failed "$UNIT" 2>/dev/null || true
    removed=yes
  fi
  if [ -e "$UNIT_FILE" ]; then
    rm -f "$UNIT_FILE"
    systemctl daemon-reload
    say "stopped, disabled and removed $UNIT_FILE"
  fi
  for dir in "$CURRENT" "$PREVIOUS"; do
    if [ -L "$dir" ]; then rm -f "$dir"; removed=yes; fi
  done
  for dir in "$OPT"/enrollment-worker-*; do
    is_release "$dir" || continue
    rm -rf "$dir"
    say "removed $dir"
    removed=yes
  done
  if [ "$purge" = yes ]; then
    if [ -e "$ETC" ] || [ -e "$UNIT_FILE.d" ]; then
      rm -rf "$ETC" "$UNIT_FILE.d"
      say "removed the settings ($ETC) and any drop-ins ($UNIT_FILE.d)"
      removed=yes
    fi
  elif [ -e "$ENV_FILE" ]; then
    say "kept the settings in $ENV_FILE (--uninstall --purge removes them)"
  fi
  [ "$removed" = yes ] || say "nothing to remove: enrollment-worker is not installed"
}

main() {
  local action=install purge=no
  while [ $# -gt 0 ]; do
    case "$1" in
      --rollback) action=rollback ;;
      --check) action=check ;;
      --uninstall) action=uninstall ;;
      --purge) purge=yes ;;
      -h | --help) usage ;;
      *) say "unknown argument: $1" >&2; usage ;;
    esac
    shift
  done
  [ "$purge" = no ] || [ "$action" = uninstall ] || usage
  require_root_and_systemd
  case "$action" in
    install) is_release "$HERE" || die "$HERE is not an unpacked release (no RELEASE file): run the install.sh inside the release"
      deploy "$HERE" ;;
    rollback) rollback ;;
    check) # The release in use, or this one when none is.
      local release
      release=$(target_of "$CURRENT")
      is_release "$release" || release=$HERE
      [ -e "$ENV_FILE" ] || die "there are no settings yet ($ENV_FILE): run install.sh first"
      require_node "$release"
      run_check "$release" ;;
    uninstall) uninstall "$purge" ;;
  esac
}

main "$@"
