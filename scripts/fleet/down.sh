#!/bin/bash
# Take the test fleet down: stop the state database (PostgreSQL) and containers, kill every process of
# every host (network namespace members and anything still holding a host filesystem), unmount, detach
# our loop devices, delete the namespaces, veths, bridge and fallback route. Safe to run twice.
#
#   bash scripts/fleet/down.sh           # keeps keys, host keys, images and the database: next up is fast
#   bash scripts/fleet/down.sh --purge   # also deletes the fleet dir (database too), fleet users, sudoers
#
# The Debian rootfs cache ($PULUMI_LXC_BTRFS_CACHE) is always kept.
set -euo pipefail
# shellcheck source=scripts/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/fleet/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

PURGE=0
for arg in "$@"; do
  case "$arg" in
  --purge) PURGE=1 ;;
  -h | --help)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument: $arg (usage: down.sh [--purge])" ;;
  esac
done

require_root
export LC_ALL=C
take_lock

# Tests must not find an inventory of a fleet that is going away.
rm -f "$FLEET_DIR/inventory.json"

if pid="$(pg_pid)"; then
  stop_postgres
  log "postgres: $pid stopped (its data is kept in $PG_DATA)"
fi

for h in "${HOSTS[@]}"; do
  if [[ -e "/run/netns/$(host_netns "$h")" || -n "$(host_loopdevs "$h")" ]]; then
    teardown_host "$h"
    hlog "$h" "processes stopped, filesystem released"
  fi
done

# Only after every host's processes are gone: a host's mount namespace holds copies of the other
# hosts' /run/netns bind mounts, which would keep those namespaces (and veths) alive.
for h in "${HOSTS[@]}"; do
  ns="$(host_netns "$h")"
  if [[ -e "/run/netns/$ns" ]]; then
    ip netns del "$ns"
    hlog "$h" "deleted netns $ns"
  fi
  ip link del "$(host_veth "$h")" 2>/dev/null || true
done
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link del "$BRIDGE"
  log "fleet: deleted bridge $BRIDGE"
fi
while ip route show "$NET_CIDR" type unreachable | grep -q .; do
  ip route del unreachable "$NET_CIDR"
done

if ((PURGE)); then
  for u in "$USERS_ADMIN" "$USERS_PASSWORD"; do
    if id -u "$u" >/dev/null 2>&1; then
      userdel --remove "$u" 2>/dev/null || userdel "$u"
      log "fleet: deleted user $u"
    fi
  done
  rm -f "$SUDOERS_FILE"
  rm -rf "$FLEET_DIR"
  log "fleet: purged $FLEET_DIR (cache $CACHE_DIR kept)"
fi

# Checks: nothing of ours may be left.
left=()
for h in "${HOSTS[@]}"; do
  [[ ! -e "/run/netns/$(host_netns "$h")" ]] || left+=("netns $(host_netns "$h")")
  [[ -z "$(host_loopdevs "$h")" ]] || left+=("loop device of $h")
  ! ip link show "$(host_veth "$h")" >/dev/null 2>&1 || left+=("veth $(host_veth "$h")")
done
! grep -q -F "$FLEET_DIR/" /proc/mounts || left+=("mounts below $FLEET_DIR")
for pid in $(ps -e -o pid=); do
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
  [[ "$cmd" == *"$FLEET_DIR/"* || "$cmd" == plb-holder-* ]] && left+=("process $pid: $cmd")
done
if ((${#left[@]})); then
  printf 'LEFT BEHIND: %s\n' "${left[@]}" >&2
  exit 1
fi
log "fleet: down (no netns, loop device, mount or process left)"
