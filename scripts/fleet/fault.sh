#!/bin/bash
# Inject faults into one fleet host.
#
#   bash scripts/fleet/fault.sh <host> cut           drop every packet on the host's link, both ways
#   bash scripts/fleet/fault.sh <host> restore       undo cut
#   bash scripts/fleet/fault.sh <host> latency <ms>  delay SSH (tcp/22) traffic by <ms> each way
#   bash scripts/fleet/fault.sh <host> clear         undo latency
#   bash scripts/fleet/fault.sh <host> sshd-stop     kill sshd and all its sessions
#   bash scripts/fleet/fault.sh <host> sshd-start    start sshd again (same mount namespace)
#   bash scripts/fleet/fault.sh <host> sshd-max-sessions <n|default>
#                                                    restart sshd with MaxSessions n (default: the stock 10)
#   bash scripts/fleet/fault.sh <host> fill          fill /var/lib/lxc until ENOSPC (one file)
#   bash scripts/fleet/fault.sh <host> unfill        remove that file
#
# `up.sh --reset` clears every fault; plain `up.sh` only restarts a stopped sshd.
set -euo pipefail
# shellcheck source=scripts/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROXY_PORT=60022

usage() {
  sed -n '4,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

(($# >= 2)) || usage
host="$1"
action="$2"
shift 2
host_index "$host" >/dev/null
require_root
export LC_ALL=C
ns="$(host_netns "$host")"
d="$(host_dir "$host")"
addr="$(host_addr "$host")"
[[ -e "/run/netns/$ns" ]] || die "$host is not running (run: npm run fleet:up)"

nft_in_host() { ip netns exec "$ns" nft "$@"; }

cut_link() {
  # netdev ingress+egress hooks on the host's end of the veth: everything (ARP included) is
  # dropped, links stay up, routes stay as they are (nothing can take another way out).
  if nft_in_host -f - 2>/dev/null <<EOF; then
table netdev plb_cut
delete table netdev plb_cut
table netdev plb_cut {
  chain ingress { type filter hook ingress device "eth0" priority 0; policy drop; }
  chain egress { type filter hook egress device "eth0" priority 0; policy drop; }
}
EOF
    hlog "$host" "link cut (nft netdev drop on eth0, both directions)"
  else
    # Kernels without netfilter egress hooks: take both ends of the veth down instead.
    ip link set "$(host_veth "$host")" down
    ip -n "$ns" link set eth0 down
    hlog "$host" "link cut (veth down on both ends)"
  fi
}

restore_link() {
  nft_in_host delete table netdev plb_cut 2>/dev/null || true
  ip link set "$(host_veth "$host")" up
  ip -n "$ns" link set eth0 up
  # The address (and its connected route) survives link down/up; re-add if it did not.
  ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $addr/24" || ip -n "$ns" addr add "$addr/24" dev eth0
  hlog "$host" "link restored"
}

proxy_pid() {
  local pid
  pid="$(cat "$d/proxy.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ && -e "/proc/$pid" ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q delay-proxy || return 1
  echo "$pid"
}

clear_latency() {
  nft_in_host delete table ip plb_latency 2>/dev/null || true
  local pid
  if pid="$(proxy_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true # stops listening now, exits when its connections end
  fi
  rm -f "$d/proxy.pid"
}

add_latency() {
  local ms="${1:-}" hp node
  [[ "$ms" =~ ^[0-9]+$ ]] || die "latency needs a number of milliseconds"
  node="$(command -v node)" || die "latency needs node on PATH (no sch_netem in this kernel)"
  hp="$(holder_pid "$host")" || die "$host: holder not running (run: npm run fleet:up)"
  clear_latency
  # Wait until the old proxy (if any) released the port.
  for _ in $(seq 50); do
    nsenter --target "$hp" --net -- ss -Hltn "sport = :$PROXY_PORT" | grep -q . || break
    sleep 0.1
  done
  rm -f "$d/proxy.pid"
  setsid nsenter --target "$hp" --mount --net --uts --wd=/ -- \
    "$node" "$FLEET_SCRIPTS/delay-proxy.cjs" "$addr" "$PROXY_PORT" "$addr" 22 "$ms" "$d/proxy.pid" \
    </dev/null >>"$d/proxy.log" 2>&1 &
  for _ in $(seq 100); do
    proxy_pid >/dev/null && break
    sleep 0.05
  done
  proxy_pid >/dev/null || die "$host: delay proxy did not start (see $d/proxy.log)"
  # New connections to port 22 that arrive over the link go through the proxy.
  nft_in_host -f - <<EOF
table ip plb_latency
delete table ip plb_latency
table ip plb_latency {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "eth0" ip daddr $addr tcp dport 22 redirect to :$PROXY_PORT
  }
}
EOF
  hlog "$host" "latency ${ms}ms each way on tcp/22 (new connections)"
}

fill_fs() {
  local f="$LXC_PATH/$FILL_FILE" avail size
  hexec "$host" rm -f "$f"
  hexec "$host" sync -f "$LXC_PATH"
  avail="$(hexec "$host" df -B1 --output=avail "$LXC_PATH" | tail -n 1 | tr -d ' ')"
  # fallocate reserves most of the space without writing it (the image stays sparse) ...
  size="$avail"
  for _ in 1 2 3 4 5 6; do
    ((size > 1048576)) || break
    hexec "$host" fallocate -l "$size" "$f" 2>/dev/null && break
    size=$((size * 95 / 100))
  done
  # ... and dd writes the rest until the filesystem says ENOSPC.
  if hexec "$host" dd if=/dev/zero of="$f" bs=1M oflag=append conv=notrunc status=none 2>"$d/fill.err"; then
    die "$host: dd did not hit ENOSPC"
  fi
  grep -q 'No space left on device' "$d/fill.err" || {
    cat "$d/fill.err" >&2
    die "$host: fill failed"
  }
  hexec "$host" sync -f "$LXC_PATH"
  hlog "$host" "filled $LXC_PATH: $(hexec "$host" df -h --output=avail "$LXC_PATH" | tail -n 1 | tr -d ' ') available"
}

unfill_fs() {
  hexec "$host" rm -f "$LXC_PATH/$FILL_FILE"
  hexec "$host" sync -f "$LXC_PATH"
  hlog "$host" "unfilled $LXC_PATH: $(hexec "$host" df -h --output=avail "$LXC_PATH" | tail -n 1 | tr -d ' ') available"
}

case "$action" in
cut) cut_link ;;
restore) restore_link ;;
latency) add_latency "$@" ;;
clear)
  clear_latency
  hlog "$host" "latency cleared"
  ;;
sshd-stop)
  stop_sshd "$host"
  hlog "$host" "sshd stopped"
  ;;
sshd-start)
  if pid="$(sshd_pid "$host")"; then
    hlog "$host" "sshd already running ($pid)"
  else
    stop_sshd "$host"
    start_sshd "$host"
    hlog "$host" "sshd $(sshd_pid "$host") started"
  fi
  ;;
sshd-max-sessions)
  { (($# == 1)) && [[ "$1" =~ ^([0-9]+|default)$ ]]; } || usage
  stop_sshd "$host"
  if [[ "$1" == default ]]; then start_sshd "$host"; else start_sshd "$host" -o "MaxSessions=$1"; fi
  hlog "$host" "sshd $(sshd_pid "$host") started with MaxSessions $1"
  ;;
fill) fill_fs ;;
unfill) unfill_fs ;;
*) usage ;;
esac
