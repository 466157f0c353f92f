#!/bin/bash
# install.sh: installs, upgrades, rolls back or removes enrollment-worker on a systemd host. Run it
# as root from an unpacked release (`npm run release`); it is the release's top-level install.sh.
#
#   sudo ./install.sh                     install or upgrade to this release, then start or restart
#   sudo ./install.sh --processes N       ... and run N worker processes (default: as many as run
#                                         now; on a first install one per 2 cores, at least one)
#   sudo ./install.sh --rollback          back to the previous release, and restart
#   sudo ./install.sh --uninstall         stop and remove the service and the releases; keep settings
#   sudo ./install.sh --uninstall --purge ... and the settings too
#   sudo ./install.sh --check             only `enrollment-worker check` with the settings
#
# One process runs as enrollment-worker.service; N > 1 processes as enrollment-worker@1 ... @N
# (systemd/enrollment-worker@.service: each a whole worker with its own slots, memory limits and
# watchdog, all with the same settings file, plus /etc/enrollment-worker/enrollment-worker@N.env
# when it exists). One Node process keeps about 2.7 cores busy before its main thread is full
# (BENCHMARKS.md), hence one per 2 cores. Changing N stops the units no longer wanted (draining)
# and starts the new ones; an upgrade or a rollback restarts every one of them.
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
readonly TEMPLATE=enrollment-worker@.service
readonly SYSTEMD_DIR=/etc/systemd/system
readonly UNIT_FILE=$SYSTEMD_DIR/$UNIT
readonly TEMPLATE_FILE=$SYSTEMD_DIR/$TEMPLATE
readonly MAX_PROCESSES=64
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
  sed -n '5,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
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

# --- The units: enrollment-worker.service for one process, enrollment-worker@1 ... @N for N. ------

# Instance N's own settings file, read after the shared one (optional).
instance_env() { printf '%s/enrollment-worker@%s.env\n' "$ETC" "$1"; }

# The units that run $1 processes, one a line.
units_for() {
  local i
  if [ "$1" = 1 ]; then
    echo "$UNIT"
    return
  fi
  for ((i = 1; i <= $1; i++)); do echo "enrollment-worker@$i.service"; done
}

# The instance number of a unit, or nothing for enrollment-worker.service.
instance_of() { case "$1" in enrollment-worker@*.service) local i=${1#enrollment-worker@}; echo "${i%.service}" ;; esac; }

state_of() { systemctl is-active "$1" 2>/dev/null || true; }
active() { [ "$(state_of "$1")" = active ]; }
enabled() { [ "$(systemctl is-enabled "$1" 2>/dev/null || true)" = enabled ]; }
# Running, starting, stopping or failed (anything but inactive), or enabled: a unit that is in use.
in_use() { [ "$(state_of "$1")" != inactive ] || enabled "$1"; }
main_pid() { systemctl show -P MainPID "$1" 2>/dev/null || echo 0; }

# Every unit of ours systemd knows of or has enabled: the single unit and the template's instances
# (loaded ones, and enabled ones from the .wants/ links), one a line.
known_units() {
  {
    echo "$UNIT"
    systemctl list-units --all --plain --no-legend 'enrollment-worker@*.service' 2>/dev/null | awk '{ print $1 }'
    find "$SYSTEMD_DIR" -path '*.wants/enrollment-worker@*.service' -printf '%f\n' 2>/dev/null
  } | grep -E '^enrollment-worker(@[^.]+)?\.service$' | sort -u -V
}

# The units in use now, one a line.
units_in_use() {
  local unit
  while read -r unit; do if in_use "$unit"; then echo "$unit"; fi; done < <(known_units)
}

# The number of processes that run now (instances in use, else 1 for the single unit), or nothing.
processes_now() {
  local units instances
  units=$(units_in_use)
  [ -n "$units" ] || return 0
  instances=$(grep -c '@' <<<"$units" || true)
  if [ "$instances" -gt 0 ]; then echo "$instances"; else echo 1; fi
}

# One process per 2 cores (one Node process keeps about 2.7 busy), at least one.
default_processes() {
  local cores
  cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
  if [ "$cores" -ge 2 ]; then echo $((cores / 2)); else echo 1; fi
}

# "pid 42" for one unit, "enrollment-worker@1 pid 42, enrollment-worker@2 pid 43" for several.
pids_of() {
  local unit list=()
  if [ $# -eq 1 ]; then
    echo "pid $(main_pid "$1")"
    return
  fi
  for unit in "$@"; do list+=("${unit%.service} pid $(main_pid "$unit")"); done
  local joined
  joined=$(printf '%s, ' "${list[@]}")
  echo "${joined%, }"
}

# Where to read the logs of the units that run (a glob for the instances).
journal_of() { if [ "$PROCESSES" = 1 ]; then echo "journalctl -u ${UNIT%.service}"; else echo "journalctl -u 'enrollment-worker@*'"; fi; }

# A setting as an instance sees it, the settings files read by systemd itself (prints nothing when
# unset). Not the secret's: a METRICS_PORT set there is the same for every instance.
setting_of_instance() {
  systemd-run --quiet --wait --pipe --collect -p DynamicUser=yes \
    -p EnvironmentFile="$ENV_FILE" -p EnvironmentFile="-$(instance_env "$1")" \
    /usr/bin/printenv "$2" </dev/null 2>/dev/null || true
}

# Each instance serves its metrics on its own port, or the second one could not start.
require_distinct_metrics_ports() {
  [ "$PROCESSES" != 1 ] || return 0
  local i j port ports=()
  for ((i = 1; i <= PROCESSES; i++)); do
    port=$(setting_of_instance "$i" METRICS_PORT)
    ports[i]=$port
    [ -n "$port" ] || continue
    for ((j = 1; j < i; j++)); do
      [ "${ports[j]}" = "$port" ] || continue
      die "enrollment-worker@$j and @$i would both serve metrics on METRICS_PORT=$port, and the second could not start.
Give each instance its own port in its file, e.g. for @$i: echo METRICS_PORT=$((port + i - 1)) > $(instance_env "$i")
(or unset METRICS_PORT in $ENV_FILE), then run this again; nothing was changed"
    done
  done
}

# The node the units run: ExecStart= of the loaded unit (a drop-in may change it), else of the unit
# file in the release.
unit_node() {
  local release=$1 unit=${WANT[0]} node='' file=$1/systemd/$UNIT
  if [ "$(systemctl show -P LoadState "$unit" 2>/dev/null)" = loaded ]; then
    node=$(systemctl show -P ExecStart "$unit" | sed -n 's/^{ path=\([^ ;]*\).*/\1/p' | head -n 1)
  fi
  [ "$unit" = "$UNIT" ] || file=$release/systemd/$TEMPLATE
  [ -n "$node" ] || node=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$file" | head -n 1)
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

# `enrollment-worker check` of a release, with the settings files read by systemd itself (its
# quoting rules, not a shell's) and as a transient unprivileged user, like the service. $2: an
# instance's own settings file, read after the shared one.
check_with() {
  local dest=$1 own=${2:-} node
  node=$(unit_node "$dest")
  systemd-run --quiet --wait --pipe --collect \
    --unit="enrollment-worker-check-$$" \
    -p EnvironmentFile="$ENV_FILE" \
    ${own:+-p EnvironmentFile="$own"} \
    -p Environment=HOME=/nonexistent \
    -p DynamicUser=yes \
    -p WorkingDirectory="$dest" \
    "$node" "$dest/dist/cli.js" check </dev/null
}

# The check with every set of settings the units will run with: the shared file, and each
# instance's own file on top of it where there is one.
run_check() {
  local dest=$1 version unit own shared=no
  version=$(release_field "$dest" version)
  for unit in "${WANT[@]}"; do
    own=''
    [ "$unit" = "$UNIT" ] || own=$(instance_env "$(instance_of "$unit")")
    if [ -n "$own" ] && [ -e "$own" ]; then
      say "checking release $version with $ENV_FILE and $own (${unit%.service}):"
      check_with "$dest" "$own" || return 1
    elif [ "$shared" = no ]; then
      shared=yes
      say "checking release $version with $ENV_FILE:"
      check_with "$dest" || return 1
    fi
  done
}

# When a unit's process started, in whole seconds since the epoch (0 when none runs): the boot time
# (now - uptime) plus systemd's monotonic start stamp.
started_at() {
  local mono
  mono=$(systemctl show -P ExecMainStartTimestampMonotonic "$1" 2>/dev/null || true)
  if [ -z "$mono" ] || [ "$mono" = 0 ]; then
    echo 0
    return
  fi
  awk -v now="$(date +%s.%N)" -v mono="$mono" '{ printf "%d\n", now - $1 + mono / 1000000 }' /proc/uptime
}

# A settings file of the unit was written after its process started.
settings_changed_since_start() {
  local unit=$1 started file
  started=$(started_at "$unit")
  for file in "$ENV_FILE" ${2:+"$2"}; do
    if [ -e "$file" ] && [ "$(stat -c %Y "$file")" -gt "$started" ]; then return 0; fi
  done
  return 1
}

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

# Site changes made for one shape do not follow to the other: say so when the shape changes.
note_drop_ins() {
  local from=$1 to=$2
  if [ -d "$SYSTEMD_DIR/$from.d" ] && [ ! -d "$SYSTEMD_DIR/$to.d" ]; then
    say "note: the drop-ins in $SYSTEMD_DIR/$from.d do not apply to ${to%.service}; copy those still wanted to $SYSTEMD_DIR/$to.d"
  fi
}

# Installs (or returns to) the release in folder $1 and runs it in $PROCESSES processes: everything
# an install or a rollback does.
deploy() {
  local from=$1 dest version current unit_changed=no why='' unit own
  local extra=() restart=() start=()
  version=$(release_field "$from" version)
  require_matching_arch "$from"
  verify "$from" || die "$from does not match its MANIFEST.sha256: unpack the release again (and check it against SHA256SUMS)"
  [ "$PROCESSES" = 1 ] || [ -f "$from/systemd/$TEMPLATE" ] ||
    die "release $version has no $TEMPLATE: it runs in one process only (--processes 1)"
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
  if [ -f "$dest/systemd/$TEMPLATE" ]; then
    same_file "$dest/systemd/$TEMPLATE" "$TEMPLATE_FILE" || unit_changed=yes
  elif [ -e "$TEMPLATE_FILE" ]; then
    unit_changed=yes
  fi

  # What each unit needs: those no longer wanted stop; wanted ones start, or restart for a new
  # release, a changed unit or settings written since they started.
  while read -r unit; do
    [[ " ${WANT[*]} " == *" $unit "* ]] || extra+=("$unit")
  done < <(units_in_use)
  for unit in "${WANT[@]}"; do
    own=''
    [ "$unit" = "$UNIT" ] || own=$(instance_env "$(instance_of "$unit")")
    if ! active "$unit"; then
      start+=("$unit")
    elif [ "$current" != "$dest" ] || [ "$unit_changed" = yes ] || settings_changed_since_start "$unit" "$own"; then
      restart+=("$unit")
    fi
  done
  if [ "$current" != "$dest" ]; then
    why="switching to $version${current:+ from $(release_field "$current" version)}"
  elif [ "$unit_changed" = yes ]; then
    why="the unit changed"
  elif [ ${#extra[@]} -gt 0 ]; then
    why="$PROCESSES process$([ "$PROCESSES" = 1 ] || echo es) instead of $(processes_now)"
  elif [ ${#start[@]} -gt 0 ]; then
    if [ ${#WANT[@]} = 1 ]; then why="the service is not running"; else why="${#start[@]} of $PROCESSES processes not running"; fi
  elif [ ${#restart[@]} -gt 0 ]; then
    why="$ENV_FILE changed since the worker started"
    [ "$PROCESSES" = 1 ] || why="the settings changed since the workers started"
  else
    for unit in "${WANT[@]}"; do enabled "$unit" || why="the service is not enabled"; done
  fi
  if [ -z "$why" ]; then
    if [ "$PROCESSES" = 1 ]; then
      say "nothing changed: release $version is installed and running ($(pids_of "$UNIT"))"
    else
      say "nothing changed: release $version is installed and running in $PROCESSES processes ($(pids_of "${WANT[@]}"))"
    fi
    return 0
  fi

  require_distinct_metrics_ports
  if ! run_check "$dest"; then
    local running
    running=$(units_in_use | while read -r unit; do if active "$unit"; then echo "$unit"; fi; done | tr '\n' ' ')
    if [ -n "$running" ]; then
      # shellcheck disable=SC2086 # one word per unit
      die "check failed (above): nothing was switched or restarted; release $(release_field "$current" version) keeps running ($(pids_of $running))"
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
    if [ -f "$dest/systemd/$TEMPLATE" ]; then
      install -m 0644 -o root -g root "$dest/systemd/$TEMPLATE" "$TEMPLATE_FILE"
    else
      rm -f "$TEMPLATE_FILE"
    fi
    systemctl daemon-reload
    say "installed $UNIT_FILE$([ -f "$TEMPLATE_FILE" ] && echo " and $TEMPLATE_FILE") (daemon-reload)"
  fi
  if [ ${#extra[@]} -gt 0 ]; then
    if [ "$PROCESSES" = 1 ]; then note_drop_ins "$TEMPLATE" "$UNIT"; else note_drop_ins "$UNIT" "$TEMPLATE"; fi
    say "stopping and disabling ${extra[*]}: now $PROCESSES process$([ "$PROCESSES" = 1 ] || echo es); each drains its jobs first"
    systemctl disable --now --quiet "${extra[@]}" || die "could not stop ${extra[*]}: $(journal_of) -n 50"
  fi
  systemctl enable --quiet "${WANT[@]}"
  if [ ${#restart[@]} -gt 0 ]; then
    if [ "$PROCESSES" = 1 ]; then
      say "restarting ($why): the old process drains its jobs first"
    else
      say "restarting ($why): ${restart[*]}; each old process drains its jobs first"
    fi
    systemctl restart "${restart[@]}" || die "the restart failed: $(journal_of) -n 50; to go back: sudo $CURRENT/install.sh --rollback"
  fi
  if [ ${#start[@]} -gt 0 ]; then
    say "starting ($why)$([ ${#start[@]} = 1 ] && [ "$PROCESSES" = 1 ] || echo ": ${start[*]}")"
    systemctl reset-failed "${start[@]}" 2>/dev/null || true
    systemctl start "${start[@]}" || die "the start failed: $(journal_of) -n 50"
  fi
  prune
  local previous
  previous=$(release_field "$(target_of "$PREVIOUS")" version || true)
  if [ "$PROCESSES" = 1 ]; then
    say "release $version is running ($(pids_of "$UNIT")); previous release: ${previous:-none}"
  else
    say "release $version is running in $PROCESSES processes ($(pids_of "${WANT[@]}")); previous release: ${previous:-none}"
  fi
}

rollback() {
  local previous
  previous=$(target_of "$PREVIOUS")
  is_release "$previous" || die "there is no previous release to roll back to ($PREVIOUS)"
  say "rolling back to $(release_field "$previous" version)"
  deploy "$previous"
}

uninstall() {
  local purge=$1 removed=no dir units=()
  mapfile -t units < <(known_units | while read -r unit; do
    if [ "$(systemctl show -P LoadState "$unit" 2>/dev/null)" = loaded ] || in_use "$unit"; then echo "$unit"; fi
  done)
  if [ ${#units[@]} -gt 0 ]; then
    systemctl disable --now --quiet "${units[@]}" 2>/dev/null || true
    systemctl reset-failed "${units[@]}" 2>/dev/null || true
    removed=yes
  fi
  if [ -e "$UNIT_FILE" ] || [ -e "$TEMPLATE_FILE" ]; then
    rm -f "$UNIT_FILE" "$TEMPLATE_FILE"
    systemctl daemon-reload
    say "stopped, disabled and removed $UNIT_FILE and $TEMPLATE_FILE${units[*]:+ (${units[*]})}"
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
    local drop_ins=()
    for dir in "$UNIT_FILE.d" "$SYSTEMD_DIR"/enrollment-worker@*.service.d; do [ ! -e "$dir" ] || drop_ins+=("$dir"); done
    if [ -e "$ETC" ] || [ ${#drop_ins[@]} -gt 0 ]; then
      rm -rf "$ETC" "${drop_ins[@]}"
      say "removed the settings ($ETC) and any drop-ins (${UNIT_FILE}.d, ${TEMPLATE_FILE}.d, instances')"
      removed=yes
    fi
  elif [ -e "$ENV_FILE" ]; then
    say "kept the settings in $ENV_FILE (--uninstall --purge removes them)"
  fi
  [ "$removed" = yes ] || say "nothing to remove: enrollment-worker is not installed"
}

main() {
  local action=install purge=no processes=''
  while [ $# -gt 0 ]; do
    case "$1" in
      --rollback) action=rollback ;;
      --check) action=check ;;
      --uninstall) action=uninstall ;;
      --purge) purge=yes ;;
      --processes | --processes=*)
        if [ "$1" = --processes ]; then
          [ $# -gt 1 ] || usage
          processes=$2
          shift
        else
          processes=${1#--processes=}
        fi
        if ! [[ $processes =~ ^[1-9][0-9]{0,2}$ ]] || [ "$processes" -gt "$MAX_PROCESSES" ]; then
          say "--processes takes a whole number from 1 to $MAX_PROCESSES, not '$processes'" >&2
          usage
        fi ;;
      -h | --help) usage ;;
      *) say "unknown argument: $1" >&2; usage ;;
    esac
    shift
  done
  [ "$purge" = no ] || [ "$action" = uninstall ] || usage
  [ -z "$processes" ] || [ "$action" = install ] || usage
  require_root_and_systemd
  # How many processes: as asked, else as many as run now, else one per 2 cores.
  PROCESSES=${processes:-$(processes_now)}
  if [ -z "$PROCESSES" ]; then
    PROCESSES=$(default_processes)
    [ "$action" != install ] || say "worker processes: $PROCESSES (one per 2 cores of $(nproc); --processes N chooses)"
  fi
  mapfile -t WANT < <(units_for "$PROCESSES")
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
