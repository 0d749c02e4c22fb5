#!/bin/bash
# Another btrfs-progs on one fleet host, for tests of cross-host copies between hosts whose `btrfs`
# differ (this machine's is Debian 12's, 6.2).
#
#   bash scripts/fleet/btrfs-progs.sh <host> trixie   the host's btrfs becomes Debian 13's (6.14)
#   bash scripts/fleet/btrfs-progs.sh <host> system   the host's btrfs is this machine's again
#   bash scripts/fleet/btrfs-progs.sh <host> version  prints the host's `btrfs --version` (first line)
#
# `trixie` downloads Debian trixie's btrfs-progs, libc6 and libzstd1 with apt-get (a private apt state
# under the cache dir: this machine's apt sources and lists are left alone) once, into
# $CACHE_DIR/btrfs-progs-trixie, and bind-mounts a wrapper over the host's btrfs binary in the host's
# own mount namespace (private: no other host, nor this machine, sees it). The wrapper runs trixie's btrfs
# with trixie's dynamic loader and libc (it needs glibc 2.38; Debian 12 has 2.36). Both actions are
# idempotent; `up.sh --reset` (a new holder) also ends the bind mount.
set -euo pipefail
# shellcheck source=scripts/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 2)) || die "usage: btrfs-progs.sh <host> trixie|system|version"
host="$1"
action="$2"
host_index "$host" >/dev/null
require_root
export LC_ALL=C

dir="$CACHE_DIR/btrfs-progs-trixie"
root="$dir/root"
wrapper="$dir/btrfs"
lib=usr/lib/x86_64-linux-gnu

fetch_trixie() {
  [[ -f "$dir/ok" ]] && return 0
  [[ "$(uname -m)" == x86_64 ]] || die "btrfs-progs trixie: only x86_64 is set up (this is $(uname -m))"
  command -v apt-get >/dev/null || die "btrfs-progs trixie: apt-get is needed to download Debian trixie's btrfs-progs"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg work a
  [[ -f "$keyring" ]] || die "btrfs-progs trixie: $keyring is missing (apt-get install debian-archive-keyring)"
  work="$(mktemp -d)"
  # shellcheck disable=SC2064 # expanded now: the directory of this run
  trap "rm -rf '$work'" EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
  printf 'deb [signed-by=%s] http://deb.debian.org/debian trixie main\n' "$keyring" >"$work/sources.list"
  a=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root
    -o Acquire::Retries=3 -q)
  apt-get "${a[@]}" update >"$work/update.log" 2>&1 ||
    die "btrfs-progs trixie: apt-get update of Debian trixie (http://deb.debian.org/debian) failed: $(tail -n 3 "$work/update.log")"
  (cd "$work/debs" && apt-get "${a[@]}" download btrfs-progs libc6 libzstd1) >"$work/download.log" 2>&1 ||
    die "btrfs-progs trixie: apt-get download btrfs-progs libc6 libzstd1 (trixie) failed: $(tail -n 3 "$work/download.log")"
  rm -rf "$dir"
  mkdir -p "$root"
  local deb
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  ls "$work/debs" >"$dir/debs"
  cat >"$wrapper" <<EOF
#!/bin/sh
# Debian trixie's btrfs, with its own loader and libc (see scripts/fleet/btrfs-progs.sh).
exec "$root/$lib/ld-linux-x86-64.so.2" --library-path "$root/$lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" --argv0 btrfs "$root/usr/bin/btrfs" "\$@"
EOF
  chmod 755 "$wrapper"
  "$wrapper" --version | grep -q '^btrfs-progs v6\.' || die "btrfs-progs trixie: $wrapper does not run: $("$wrapper" --version 2>&1 | head -n 2)"
  : >"$dir/ok"
}

# The host's btrfs binary (the file its PATH finds) and whether our wrapper is mounted over it.
# shellcheck disable=SC2016 # expanded by the host's sh
target() { hexec "$host" sh -c 'readlink -f "$(command -v btrfs)"'; }
mounted() { hexec "$host" findmnt -n -o TARGET --target "$1" | grep -qx "$1" && hexec "$host" cmp -s "$1" "$wrapper"; }

case "$action" in
trixie)
  fetch_trixie
  t="$(target)"
  if ! mounted "$t"; then hexec "$host" mount --bind "$wrapper" "$t"; fi
  hlog "$host" "btrfs is $(hexec "$host" btrfs --version | head -n 1) ($wrapper over $t)"
  ;;
system)
  t="$(target)"
  while mounted "$t"; do hexec "$host" umount "$t"; done
  hlog "$host" "btrfs is $(hexec "$host" btrfs --version | head -n 1)"
  ;;
version) hexec "$host" btrfs --version | head -n 1 ;;
*) die "usage: btrfs-progs.sh <host> trixie|system|version" ;;
esac
