#!/bin/bash
# Run a command "on" a fleet host without SSH: in the host's mount, network and UTS namespaces
# (those of its holder process), as root, cwd /. No shell is involved: argv is passed as is.
#
#   bash scripts/fleet/exec.sh h1 -- lxc-ls -f
#   bash scripts/fleet/exec.sh h2 -- sh -c 'btrfs subvolume list /var/lib/lxc'
set -euo pipefail
# shellcheck source=scripts/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if (($# < 3)) || [[ "$2" != -- ]]; then die "usage: exec.sh <host> -- <command> [args...]"; fi
host="$1"
shift 2
host_index "$host" >/dev/null
require_root
pid="$(holder_pid "$host")" || die "$host is not running (run: npm run fleet:up)"
exec nsenter --target "$pid" --mount --net --uts --wd=/ -- "$@"
