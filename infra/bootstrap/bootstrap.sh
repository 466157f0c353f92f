#!/bin/bash
# bootstrap.sh: an instance of the Auto Scaling group, from a bare AMI to a running worker. It is the
# launch template's user data (infra/lib/stack.ts puts `export NAME='value'` lines for the variables
# below in front of it); test/systemd/bootstrap.test.ts runs the same file under a real systemd.
#
#   RELEASE_BUCKET, RELEASE_PREFIX   where the release files are: s3://$RELEASE_BUCKET/$RELEASE_PREFIX
#   RELEASE_VERSION                  enrollment-worker-$RELEASE_VERSION-linux-<arch>.tar.gz and
#                                    SHA256SUMS (npm run release) are there
#   NODE_TARBALL                     an official Node.js 24 tarball there too (node-v24.*-linux-<arch>
#                                    .tar.gz|xz), checked against nodejs.org's SHASUMS256.txt beside
#                                    it; empty: the distribution's nodejs24 package (Amazon Linux 2023)
#   AWS_REGION                       the region of the bucket (and of everything else)
#   WORKER_<NAME>                    each becomes NAME=value in the worker's settings file
#   LOG_GROUP, METRICS_LOG_GROUP, METRICS_NAMESPACE
#                                    where the CloudWatch agent sends the journal and the metrics
#   CLOUDWATCH_AGENT                 install: install, configure and start the CloudWatch agent;
#                                    skip: render its configuration only (a test, or no agent wanted)
#   AWS_ENDPOINT_URL                 an emulator's endpoint, for tests only (never set on EC2)
#
# Steps: the AWS CLI (if missing), Node.js 24 at /usr/bin/node, the release and SHA256SUMS
# downloaded and verified — a tarball that does not match stops everything before anything is
# unpacked —, the settings file, the release's install.sh (which runs `enrollment-worker check` and
# starts the unit only if it passes), the journal forwarded to a file, the CloudWatch agent. Any
# failure stops the script with a line saying what failed; its whole output is in
# /var/log/enrollment-worker-bootstrap.log (and the console: `aws ec2 get-console-output`).
set -euo pipefail
umask 022
export LC_ALL=C

exec > >(tee -a /var/log/enrollment-worker-bootstrap.log) 2>&1
tee_pid=$!
say() { printf 'bootstrap: %s\n' "$*"; }
die() { say "FAILED: $*"; exit 1; }
# The last line reaches the log and the console before the script ends.
finish() {
  local rc=$?
  [ $rc -eq 0 ] || say "stopped (exit $rc)"
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
}
trap finish EXIT

: "${RELEASE_BUCKET:?}" "${RELEASE_VERSION:?}" "${AWS_REGION:?}"
RELEASE_PREFIX=${RELEASE_PREFIX:-}
NODE_TARBALL=${NODE_TARBALL:-}
CLOUDWATCH_AGENT=${CLOUDWATCH_AGENT:-install}
export AWS_REGION AWS_DEFAULT_REGION=$AWS_REGION
readonly WORK=/var/lib/enrollment-worker-bootstrap
mkdir -p "$WORK"
chmod 0700 "$WORK"

package_manager() {
  if command -v dnf >/dev/null; then echo dnf
  elif command -v apt-get >/dev/null; then echo apt-get
  else die "neither dnf nor apt-get: install the AWS CLI and Node.js 24 in the AMI"
  fi
}
install_packages() {
  say "installing $*"
  case $(package_manager) in
    dnf) dnf install -y -q "$@" ;;
    apt-get)
      [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v '^lock$' || true)" ] || apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
      ;;
  esac
}

case $(uname -m) in
  x86_64) ARCH=x64 ;;
  aarch64) ARCH=arm64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac

# --- The AWS CLI: Amazon Linux 2023 has it; Debian gets its package ------------------------------
command -v aws >/dev/null || install_packages awscli
s3_get() {
  say "s3://$RELEASE_BUCKET/$RELEASE_PREFIX$1"
  aws ${AWS_ENDPOINT_URL:+--endpoint-url "$AWS_ENDPOINT_URL"} s3 cp --only-show-errors \
    "s3://$RELEASE_BUCKET/$RELEASE_PREFIX$1" "$2" || die "could not download s3://$RELEASE_BUCKET/$RELEASE_PREFIX$1"
}
# The line of a checksum file for one file name, checked: nothing listed is a refusal too.
verify() {
  local sums=$1 file=$2 line
  line=$(grep -E "^[0-9a-f]{64} [ *]$file\$" "$sums" || true)
  [ -n "$line" ] || die "$file is not listed in $(basename "$sums")"
  (cd "$(dirname "$sums")" && printf '%s\n' "$line" | sha256sum -c --quiet -) ||
    die "$file does not match its checksum in $(basename "$sums"): refused, nothing installed"
  say "$file: checksum OK"
}

# --- Node.js 24 at /usr/bin/node (the unit's ExecStart) -------------------------------------------
if [ -n "$NODE_TARBALL" ]; then
  case $NODE_TARBALL in node-v24.*-linux-$ARCH.tar.gz | node-v24.*-linux-$ARCH.tar.xz) ;; *) die "NODE_TARBALL=$NODE_TARBALL is not a Node.js 24 tarball for linux-$ARCH" ;; esac
  mkdir -p "$WORK/node"
  s3_get SHASUMS256.txt "$WORK/node/SHASUMS256.txt"
  s3_get "$NODE_TARBALL" "$WORK/node/$NODE_TARBALL"
  verify "$WORK/node/SHASUMS256.txt" "$NODE_TARBALL"
  tar -xf "$WORK/node/$NODE_TARBALL" -C /usr/local --strip-components=1 --no-same-owner
  ln -sfn /usr/local/bin/node /usr/bin/node
elif ! /usr/bin/node --version 2>/dev/null | grep -q '^v24\.'; then
  install_packages nodejs24
  # Amazon Linux names it node-24 and points /usr/bin/node at the active version with alternatives.
  if command -v alternatives >/dev/null && [ -x /usr/bin/node-24 ]; then alternatives --set node /usr/bin/node-24; fi
fi
/usr/bin/node --version | grep -q '^v24\.' || die "/usr/bin/node is $(/usr/bin/node --version 2>&1), not Node.js 24"
say "node $(/usr/bin/node --version) at /usr/bin/node"

# --- The release, verified before it is unpacked --------------------------------------------------
name=enrollment-worker-$RELEASE_VERSION-linux-$ARCH
dir=$WORK/release-$RELEASE_VERSION
rm -rf "$dir" && mkdir -p "$dir"
s3_get SHA256SUMS "$dir/SHA256SUMS"
s3_get "$name.tar.gz" "$dir/$name.tar.gz"
verify "$dir/SHA256SUMS" "$name.tar.gz"
tar -xzf "$dir/$name.tar.gz" -C "$dir" --no-same-owner

# --- The settings: every WORKER_<NAME> as NAME=value (install.sh keeps an existing file) -----------
mkdir -p /etc/enrollment-worker
settings=/etc/enrollment-worker/enrollment-worker.env
(
  umask 077
  {
    echo "# Written by infra/bootstrap/bootstrap.sh from the launch template. The signing key is in the secret."
    env | sed -n 's/^WORKER_\([A-Z][A-Z0-9_]*=\)/\1/p' | LC_ALL=C sort
  } >"$settings.new"
)
chmod 0640 "$settings.new"
mv "$settings.new" "$settings"
say "settings: $(sed -n 's/=.*//p' "$settings" | grep -v '^#' | tr '\n' ' ')"

# --- The journal to a file the CloudWatch agent reads (it has no journald input), from before the
# --- worker's first line ------------------------------------------------------------------------
mkdir -p /var/log/enrollment-worker
cat >/etc/systemd/system/enrollment-worker-journal.service <<'EOF'
[Unit]
Description=enrollment-worker's journal to /var/log/enrollment-worker/journal.log (for the CloudWatch agent)
After=systemd-journald.service
# Started first, so that it follows the worker's lines from its first one.
Before=enrollment-worker.service

[Service]
ExecStart=/bin/sh -c 'exec journalctl --follow --output=cat --lines=0 --unit=enrollment-worker.service --unit=enrollment-worker@*.service >>/var/log/enrollment-worker/journal.log'
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
cat >/etc/logrotate.d/enrollment-worker <<'EOF'
/var/log/enrollment-worker/journal.log {
  daily
  rotate 2
  maxsize 100M
  missingok
  notifempty
  copytruncate
}
EOF
systemctl daemon-reload
systemctl enable --now enrollment-worker-journal.service

# --- The worker: install.sh checks the settings, then enables and starts the unit -----------------
"$dir/$name/install.sh" || die "install.sh failed (above): the worker was not started"

# --- The CloudWatch agent: its configuration ships in the release (systemd/cloudwatch-*) ---------
agent_etc=/opt/aws/amazon-cloudwatch-agent/etc
mkdir -p "$agent_etc"
render() {
  sed -e "s|@LOG_GROUP@|${LOG_GROUP:?}|g" -e "s|@METRICS_LOG_GROUP@|${METRICS_LOG_GROUP:?}|g" \
    -e "s|@METRICS_NAMESPACE@|${METRICS_NAMESPACE:?}|g" -e "s|@METRICS_PORT@|${WORKER_METRICS_PORT:?}|g" "$1" >"$2"
}
render "$dir/$name/systemd/cloudwatch-agent.json" "$agent_etc/enrollment-worker.json"
render "$dir/$name/systemd/cloudwatch-prometheus.yaml" "$agent_etc/enrollment-worker-prometheus.yaml"
case $CLOUDWATCH_AGENT in
  install)
    command -v amazon-cloudwatch-agent-ctl >/dev/null || [ -x /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl ] ||
      install_packages amazon-cloudwatch-agent
    /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
      -c "file:$agent_etc/enrollment-worker.json" || die "the CloudWatch agent did not start"
    say "CloudWatch agent: running"
    ;;
  skip) say "CloudWatch agent: skipped (CLOUDWATCH_AGENT=skip); its configuration is in $agent_etc" ;;
  *) die "CLOUDWATCH_AGENT must be install or skip, not $CLOUDWATCH_AGENT" ;;
esac

rm -f "$dir/$name.tar.gz"
say "done: enrollment-worker $RELEASE_VERSION is running"
