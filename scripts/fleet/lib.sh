# shellcheck shell=bash disable=SC2034 # variables are used by the scripts that source this file
# Shared settings and helpers for the test fleet scripts (up.sh, down.sh, fault.sh, exec.sh).
# Sourced, never executed. Everything here is about THIS machine: four fake "hosts" made of a
# network namespace + a mount namespace each, with a real sshd and real LXC containers.

FLEET_DIR="${PLB_FLEET_DIR:-/var/tmp/pulumi-lxc-btrfs/fleet}"
FLEET_DIR="${FLEET_DIR%/}"
CACHE_DIR="${PULUMI_LXC_BTRFS_CACHE:-/var/cache/pulumi-lxc-btrfs}"
CACHE_DIR="${CACHE_DIR%/}"
FLEET_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

BRIDGE=plb-br0
BRIDGE_ADDR=10.213.0.1
NET_PREFIX=10.213.0
NET_CIDR=10.213.0.0/24
# Fallback route: if the bridge (and its connected route) is gone, packets for the fleet range
# are rejected here instead of following the default route off the machine.
FALLBACK_METRIC=4242
LXC_PATH=/var/lib/lxc
FILL_FILE=.plb-fill

HOSTS=(h1 h2 h3 h4 h5)
USERS_ADMIN=plbadmin
USERS_PASSWORD=plbpass
SUDOERS_FILE=/etc/sudoers.d/plb-fleet

DEBIAN_SUITE=bookworm
DEBIAN_TARBALL="$CACHE_DIR/debian-$DEBIAN_SUITE-minbase.tar.gz"
# lxc-local wants an xz metadata tarball and an xz rootfs tarball: derived once from the .tar.gz.
DEBIAN_LXC_IMAGE="$CACHE_DIR/debian-$DEBIAN_SUITE-minbase.lxc"
# The same with systemd as init (debootstrap --include=systemd,systemd-sysv), for a container that has
# really booted: its journald wrote a NOCOW journal on btrfs, as on users' hosts.
SYSTEMD_TARBALL="$CACHE_DIR/debian-$DEBIAN_SUITE-systemd.tar.gz"
SYSTEMD_LXC_IMAGE="$CACHE_DIR/debian-$DEBIAN_SUITE-systemd.lxc"

# Packages the fleet needs (Debian names). lxc-templates ships /usr/share/lxc/config/*.common.conf;
# postgresql (server and psql) and openssl are for the shared state backend (postgres.sh).
FLEET_PACKAGES=(btrfs-progs e2fsprogs openssh-server openssh-client lxc lxc-templates busybox-static
  debootstrap iproute2 nftables sudo acl attr rsync uidmap util-linux procps xz-utils gzip tar perl
  coreutils findutils postgresql openssl)

host_index() {
  case "$1" in
  h1) echo 11 ;;
  h2) echo 12 ;;
  h3) echo 13 ;;
  h4) echo 14 ;;
  h5) echo 15 ;;
  *) die "unknown host '$1' (expected one of: ${HOSTS[*]})" ;;
  esac
}
host_addr() { echo "$NET_PREFIX.$(host_index "$1")"; }
host_netns() { echo "plb-$1"; }
host_veth() { echo "plbv-$1"; } # root-namespace end; the namespace end is called eth0
host_fs() { if [[ "$1" == h3 ]]; then echo ext4; else echo btrfs; fi; }
host_size() { if [[ "$1" == h3 ]]; then echo 2G; else echo 12G; fi; }
host_dir() { echo "$FLEET_DIR/hosts/$1"; }
host_image() { echo "$(host_dir "$1")/image.img"; }
host_pristine() { echo "$(host_dir "$1")/image.pristine.img"; }
# Containers per host as NAME:KIND:STARTABLE. Names are unique fleet-wide: cgroup names are global.
# STARTABLE "boot": started once with its own init (systemd), run until its journal rotates, then stopped.
host_containers() {
  case "$1" in
  h1) echo "web1:busybox:false web2:busybox:false deb1:debian:false run1:busybox:true sd1:systemd:boot" ;;
  h2) echo "app1:busybox:false app2:busybox:false deb2:debian:false" ;;
  h3) echo "ext1:busybox:false" ;;
  h4) echo "" ;; # a third btrfs host, empty: the fleet benchmark and rollouts fill it
  h5) echo "" ;; # a fourth btrfs host, empty: a third target for copies between hosts
  esac
}

log() { printf '%s\n' "$*"; }
hlog() { printf '%s: %s\n' "$1" "${*:2}"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

require_root() { [[ "$(id -u)" == 0 ]] || die "must run as root"; }

# Serialize up/down/reset: tests may call them from several processes.
# Long-lived children must not inherit fd 9 (they would hold the lock forever): close it with 9>&-.
take_lock() {
  mkdir -p "$(dirname "$FLEET_DIR")"
  exec 9>"$FLEET_DIR.lock"
  flock -n 9 && return 0
  log "fleet: waiting for $FLEET_DIR.lock (another up/down is running)"
  flock -w 900 9 || die "could not get $FLEET_DIR.lock"
}

# Close every descriptor above stderr in the current (sub)shell. A long-lived process started by these
# scripts (a holder, the PostgreSQL server) must not keep open what its caller holds, above all a lock: up.sh's
# own (fd 9), or one that a wrapper such as `flock FILE bash up.sh` holds around the whole run.
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd="${fd##*/}"
    ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}

netns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }
# "net:[4026532301]" -> 4026532301
proc_ns_inode() {
  local link
  link="$(readlink "/proc/$1/ns/$2" 2>/dev/null)" || return 1
  link="${link#*[}"
  echo "${link%]}"
}

# Prints the pid of the host's holder process (a `sleep infinity` that owns the host's mount
# namespace and sits in its network namespace), or fails if it is not running.
holder_pid() {
  local h="$1" pid ns
  pid="$(cat "$(host_dir "$h")/holder.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sleep ]] || return 1
  ns="$(netns_inode "$(host_netns "$h")")" || return 1
  [[ "$(proc_ns_inode "$pid" net)" == "$ns" ]] || return 1
  echo "$pid"
}

# Prints the pid of the host's sshd listener, or fails.
sshd_pid() {
  local h="$1" pid hp
  hp="$(holder_pid "$h")" || return 1
  pid="$(cat "$(host_dir "$h")/sshd.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sshd ]] || return 1
  [[ "$(proc_ns_inode "$pid" mnt)" == "$(proc_ns_inode "$hp" mnt)" ]] || return 1
  echo "$pid"
}

# Run argv "on the host": in its mount, network and UTS namespaces, cwd /.
hexec() {
  local h="$1" pid
  shift
  pid="$(holder_pid "$h")" || die "$h is not running (run: npm run fleet:up)"
  nsenter --target "$pid" --mount --net --uts --wd=/ -- "$@" 9>&- # fd 9: the fleet lock
}

# Loop device currently backing the host image (empty if none).
host_loopdevs() { losetup -j "$(host_image "$1")" -O NAME --noheadings 2>/dev/null || true; }

# All descendants of a pid (children first walk, printed parents before children).
descendants() {
  local -A kids=()
  local pid ppid
  while read -r pid ppid; do kids[$ppid]+="$pid "; done < <(ps -e -o pid=,ppid=)
  local queue=("$1") cur
  while ((${#queue[@]})); do
    cur="${queue[0]}"
    queue=("${queue[@]:1}")
    for pid in ${kids[$cur]:-}; do
      echo "$pid"
      queue+=("$pid")
    done
  done
}

# True if one of the pids is still running (zombies count as gone).
any_alive() {
  local p state
  for p in "$@"; do
    state="$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$p/stat" 2>/dev/null)" || continue
    [[ -n "$state" && "$state" != Z ]] && return 0
  done
  return 1
}

# sshd listeners in the host's network namespace, whatever the pid file says.
stray_listeners() {
  local pid
  for pid in $(ip netns pids "$(host_netns "$1")" 2>/dev/null); do
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sshd ]] || continue
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q '\[listener\]' && echo "$pid"
  done
  return 0
}

# Stop the host's sshd listener(s) and every process below them (open sessions die too).
stop_sshd() {
  local h="$1" pids="" pid
  for pid in $(sshd_pid "$h" || true) $(stray_listeners "$h"); do
    pids+=" $pid $(descendants "$pid" | tr '\n' ' ')"
  done
  if [[ -n "${pids// /}" ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 50); do
      # shellcheck disable=SC2086
      any_alive $pids || break
      sleep 0.1
    done
  fi
  rm -f "$(host_dir "$h")/sshd.pid"
}

# Start sshd in the host's namespaces (the holder's), return once it listens.
start_sshd() { # HOST [sshd -o OPTION=VALUE ...]
  local h="$1" d pid
  shift
  d="$(host_dir "$h")"
  pid="$(holder_pid "$h")" || die "$h: holder not running, cannot start sshd (run: npm run fleet:up)"
  mkdir -p /run/sshd
  rm -f "$d/sshd.pid"
  /usr/sbin/sshd -t -f "$d/sshd_config" || die "$h: sshd_config invalid"
  # shellcheck disable=SC2094 # early errors (before sshd opens its -E log) land in the same file
  nsenter --target "$pid" --mount --net --uts --wd=/ -- \
    /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log" "$@" </dev/null >>"$d/sshd.log" 2>&1 9>&- ||
    die "$h: sshd failed to start (see $d/sshd.log)"
  for _ in $(seq 100); do
    if sshd_pid "$h" >/dev/null && nsenter --target "$pid" --net -- ss -Hltn "src $(host_addr "$h")" "sport = :22" | grep -q .; then
      return 0
    fi
    sleep 0.05
  done
  die "$h: sshd did not come up (see $d/sshd.log)"
}

# Every process that belongs to the host: in its network namespace, or holding its filesystem
# (container payloads have their own network namespace but still hold the loop mount).
host_pids() {
  local h="$1" dev
  {
    ip netns pids "$(host_netns "$h")" 2>/dev/null || true
    for dev in $(host_loopdevs "$h"); do
      grep -l -F " $dev " /proc/[0-9]*/mountinfo 2>/dev/null | cut -d/ -f3 || true
    done
  } | sort -un | { grep -vx -e "$$" -e "${BASHPID:-$$}" || true; }
}

stop_host_containers() {
  local h="$1" c
  holder_pid "$h" >/dev/null || return 0
  for c in $(hexec "$h" lxc-ls --running -1 2>/dev/null || true); do
    hlog "$h" "stopping container $c"
    hexec "$h" lxc-stop -k -n "$c" >/dev/null 2>&1 || true
  done
}

# Remove the (empty) cgroups LXC leaves behind when a container's processes were killed instead
# of stopped. Only for container names of this host; rmdir never removes a cgroup in use.
remove_stale_cgroups() {
  local n dir
  for n in "$@"; do
    while IFS= read -r -d '' dir; do
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done < <(find /sys/fs/cgroup -maxdepth 5 -type d \( -name "lxc.payload.$n" -o -name "lxc.monitor.$n" \) \
      -prune -print0 2>/dev/null)
  done
}

# Kill everything of the host and wait until its image is no longer attached.
teardown_host() {
  local h="$1" pids dev names=""
  if holder_pid "$h" >/dev/null; then
    names="$(hexec "$h" lxc-ls -1 2>/dev/null || true)"
  fi
  stop_host_containers "$h"
  pids="$(host_pids "$h")"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 30); do
      pids="$(host_pids "$h")"
      [[ -z "$pids" ]] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
  fi
  for _ in $(seq 100); do
    [[ -z "$(host_loopdevs "$h")" ]] && break
    sleep 0.05
  done
  for dev in $(host_loopdevs "$h"); do
    grep -q -F " $dev " /proc/[0-9]*/mountinfo 2>/dev/null && die "$h: $dev still mounted by some process"
    losetup -d "$dev" || true
  done
  # shellcheck disable=SC2086
  remove_stale_cgroups $names
  rm -f "$(host_dir "$h")/holder.pid" "$(host_dir "$h")/sshd.pid" "$(host_dir "$h")/proxy.pid"
}

random_secret() {
  local s
  s="$(head -c 1024 /dev/urandom | tr -dc 'A-Za-z0-9')"
  printf '%s' "${s:0:$1}"
}

# Write FILE from stdin only when the content changed (keeps healthy runs free of writes).
write_if_changed() {
  local file="$1" mode="$2" tmp
  tmp="$(mktemp "$file.XXXXXX")"
  cat >"$tmp"
  if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$file"
  fi
}

# Minimal JSON string escaping (the values we emit are paths, names and key blobs).
json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}
