#!/bin/bash
# Bring the test fleet up (or repair it): five hosts h1, h2, h4, h5 (btrfs; h4 and h5 start empty) and h3 (ext4) on this
# machine, each a network namespace + private mount namespace with a real sshd and real LXC
# containers. Idempotent: a healthy fleet is left alone, missing pieces are recreated.
#
#   bash scripts/fleet/up.sh            # create / repair
#   bash scripts/fleet/up.sh --reset    # also put every host's /var/lib/lxc back to pristine, and empty
#                                       # the state database (PostgreSQL)
#
# Env: PLB_FLEET_DIR (default /var/tmp/pulumi-lxc-btrfs/fleet),
#      PULUMI_LXC_BTRFS_CACHE (default /var/cache/pulumi-lxc-btrfs; Debian rootfs tarball),
#      PLB_DEBIAN_MIRROR (default: the Debian mirror apt uses), PLB_FLEET_PG_PORT (default 55432).
set -euo pipefail
# shellcheck source=scripts/fleet/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/fleet/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

RESET=0
for arg in "$@"; do
  case "$arg" in
  --reset) RESET=1 ;;
  -h | --help)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument: $arg (usage: up.sh [--reset])" ;;
  esac
done

require_root
export LC_ALL=C
[[ "$FLEET_DIR" != *[[:space:]]* ]] || die "PLB_FLEET_DIR must not contain whitespace (sshd_config)"

# --- packages ---------------------------------------------------------------------------------
# shellcheck source=scripts/lib/packages.sh
. "$FLEET_SCRIPTS/../lib/packages.sh"

# --- keys, users, sudo ------------------------------------------------------------------------
gen_key() { # FILE TYPE PASSPHRASE [extra ssh-keygen args...]
  local file="$1" type="$2" pass="$3"
  shift 3
  [[ -s "$file" && -s "$file.pub" ]] && return 0
  rm -f "$file" "$file.pub"
  ssh-keygen -q -t "$type" -N "$pass" -C "plb-fleet-$(basename "$file")" -f "$file" "$@"
  chmod 600 "$file"
}

ensure_user() {
  id -u "$1" >/dev/null 2>&1 && return 0
  useradd --create-home --shell /bin/bash --comment "pulumi-lxc-btrfs test fleet" "$1"
  log "fleet: created user $1"
}

ensure_credentials() {
  mkdir -p "$FLEET_DIR/hosts" "$FLEET_DIR/authorized_keys"
  chmod 755 "$FLEET_DIR" "$FLEET_DIR/authorized_keys"

  [[ -s "$FLEET_DIR/id_enc.pass" ]] || {
    rm -f "$FLEET_DIR/id_enc" "$FLEET_DIR/id_enc.pub"
    (umask 077 && random_secret 24 >"$FLEET_DIR/id_enc.pass")
  }
  [[ -s "$FLEET_DIR/plbpass.password" ]] || (umask 077 && random_secret 20 >"$FLEET_DIR/plbpass.password")
  chmod 600 "$FLEET_DIR/id_enc.pass" "$FLEET_DIR/plbpass.password"

  gen_key "$FLEET_DIR/id_root" ed25519 ""
  gen_key "$FLEET_DIR/id_admin" ed25519 ""
  gen_key "$FLEET_DIR/id_enc" ed25519 "$(cat "$FLEET_DIR/id_enc.pass")"
  # Classic PEM ("BEGIN RSA PRIVATE KEY"): the other format clients meet in the wild.
  gen_key "$FLEET_DIR/id_rsa" rsa "" -b 3072 -m PEM

  ensure_user "$USERS_ADMIN"
  ensure_user "$USERS_PASSWORD"
  # plbadmin logs in by key only; '*' = no password but not "locked" ('!'), which some setups refuse.
  [[ "$(getent shadow "$USERS_ADMIN" | cut -d: -f2)" == '*' ]] || usermod -p '*' "$USERS_ADMIN"
  local pw hash
  pw="$(cat "$FLEET_DIR/plbpass.password")"
  hash="$(getent shadow "$USERS_PASSWORD" | cut -d: -f2)"
  if ! PW="$pw" HASH="$hash" perl -e 'exit(crypt($ENV{PW}, $ENV{HASH}) eq $ENV{HASH} ? 0 : 1)'; then
    printf '%s:%s\n' "$USERS_PASSWORD" "$pw" | chpasswd
    log "fleet: set password of $USERS_PASSWORD"
  fi

  local ak="$FLEET_DIR/authorized_keys"
  cat "$FLEET_DIR/id_root.pub" "$FLEET_DIR/id_rsa.pub" | write_if_changed "$ak/root" 600
  cat "$FLEET_DIR/id_admin.pub" "$FLEET_DIR/id_enc.pub" "$FLEET_DIR/id_rsa.pub" |
    write_if_changed "$ak/$USERS_ADMIN" 600
  : | write_if_changed "$ak/$USERS_PASSWORD" 600
  # sshd reads authorized keys with the user's privileges.
  chown "$USERS_ADMIN:" "$ak/$USERS_ADMIN"
  chown "$USERS_PASSWORD:" "$ak/$USERS_PASSWORD"

  local sudoers
  sudoers="$(
    cat <<EOF
# pulumi-lxc-btrfs test fleet (scripts/fleet/up.sh); removed by: scripts/fleet/down.sh --purge
Defaults:$USERS_ADMIN,$USERS_PASSWORD lecture="never"
$USERS_ADMIN ALL=(ALL) NOPASSWD:ALL
$USERS_PASSWORD ALL=(ALL:ALL) ALL
EOF
  )"
  if [[ ! -f "$SUDOERS_FILE" ]] || [[ "$(cat "$SUDOERS_FILE")" != "$sudoers" ]]; then
    local tmp
    tmp="$(mktemp)"
    printf '%s\n' "$sudoers" >"$tmp"
    visudo -cqf "$tmp" || die "generated sudoers file is invalid"
    install -m 0440 -o root -g root "$tmp" "$SUDOERS_FILE"
    rm -f "$tmp"
    log "fleet: wrote $SUDOERS_FILE"
  fi
}

# --- Debian rootfs cache (debootstrap once) ---------------------------------------------------
debian_mirror() {
  if [[ -n "${PLB_DEBIAN_MIRROR:-}" ]]; then
    echo "$PLB_DEBIAN_MIRROR"
    return
  fi
  local m
  # shellcheck disable=SC2016 # $(REPO_URI) is apt's placeholder, not a shell expansion
  m="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' 2>/dev/null |
    awk -v s="$DEBIAN_SUITE" '$2 == s || $2 == "stable" { print $1; exit }')"
  echo "${m:-http://deb.debian.org/debian/}"
}

# Files that lxc-local turns into per-container files (LXC_NAME is replaced by the container name),
# the way images.linuxcontainers.org images do it.
debian_overlay() { # DIR
  mkdir -p "$1/etc"
  printf 'LXC_NAME\n' >"$1/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tLXC_NAME\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$1/etc/hosts"
}

# lxc-local input: meta.tar.xz (config, templates) + rootfs.tar.xz, derived from PLAIN_TAR, into OUT.
build_lxc_image() { # PLAIN_TAR WORKDIR OUT DESCRIPTION
  local plain="$1" work="$2" out="$3"
  rm -rf "$work/overlay" "$work/meta"
  debian_overlay "$work/overlay"
  tar --numeric-owner --owner=0 --group=0 -rf "$plain" -C "$work/overlay" ./etc/hostname ./etc/hosts
  mkdir -p "$work/meta"
  printf 'lxc.include = LXC_TEMPLATE_CONFIG/debian.common.conf\nlxc.arch = %s\n' "$(uname -m)" >"$work/meta/config"
  printf 'lxc.include = LXC_TEMPLATE_CONFIG/debian.common.conf\nlxc.include = LXC_TEMPLATE_CONFIG/debian.userns.conf\nlxc.arch = %s\n' \
    "$(uname -m)" >"$work/meta/config-user"
  printf '/etc/hostname\n/etc/hosts\n' >"$work/meta/templates"
  printf 'Debian %s %s (debootstrap), built by pulumi-lxc-btrfs scripts/fleet/up.sh\n' "$DEBIAN_SUITE" "$4" >"$work/meta/create-message"
  tar -cJf "$work/meta.tar.xz" -C "$work/meta" .
  xz -T0 -0 -c "$plain" >"$work/rootfs.tar.xz"
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  mv "$work/meta.tar.xz" "$work/rootfs.tar.xz" "$out.tmp/"
  rm -rf "$out"
  mv "$out.tmp" "$out"
}

# debootstrap once into TARBALL (cached), and the lxc-local image IMAGE derived from it.
ensure_rootfs_cache() { # TARBALL IMAGE DESCRIPTION [debootstrap args...]
  local tarball="$1" image="$2" what="$3"
  shift 3
  [[ -s "$tarball" && -s "$image/meta.tar.xz" && -s "$image/rootfs.tar.xz" ]] && return 0
  mkdir -p "$CACHE_DIR"
  local work
  work="$(mktemp -d "$CACHE_DIR/.work.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; trap - RETURN" RETURN
  if [[ ! -s "$tarball" ]]; then
    local mirror start=$SECONDS
    mirror="$(debian_mirror)"
    log "fleet: debootstrap --variant=minbase $* $DEBIAN_SUITE from $mirror (once, cached in $CACHE_DIR)"
    debootstrap --variant=minbase "$@" "$DEBIAN_SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
      tail -n 20 "$work/debootstrap.log" >&2
      die "debootstrap failed"
    }
    tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$work/root" -cf "$work/rootfs.tar" .
    rm -rf "$work/root"
    # gzip the cache tarball and xz the lxc-local image in parallel (the xz one gets the overlay).
    cp "$work/rootfs.tar" "$work/plain.tar"
    gzip -c "$work/rootfs.tar" >"$work/out.tar.gz" &
    local gz=$!
    build_lxc_image "$work/plain.tar" "$work" "$image" "$what"
    wait "$gz"
    mv "$work/out.tar.gz" "$tarball"
    log "fleet: cached $tarball and $image in $((SECONDS - start))s"
  else
    log "fleet: deriving lxc-local image from $tarball"
    gzip -dc "$tarball" >"$work/plain.tar"
    build_lxc_image "$work/plain.tar" "$work" "$image" "$what"
  fi
}

ensure_debian_cache() {
  mkdir -p "$CACHE_DIR"
  rm -rf "$CACHE_DIR"/.work.* # left over by an interrupted run (we hold the fleet lock)
  ensure_rootfs_cache "$DEBIAN_TARBALL" "$DEBIAN_LXC_IMAGE" minbase
  ensure_rootfs_cache "$SYSTEMD_TARBALL" "$SYSTEMD_LXC_IMAGE" "minbase with systemd" --include=systemd,systemd-sysv
}

# --- network ----------------------------------------------------------------------------------
ensure_bridge() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip -4 addr show dev "$BRIDGE" | grep -q "inet $BRIDGE_ADDR/24" || ip addr add "$BRIDGE_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  ip route show "$NET_CIDR" type unreachable | grep -q . ||
    ip route add unreachable "$NET_CIDR" metric "$FALLBACK_METRIC"
  if [[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" == 1 ]] &&
    nft list ruleset 2>/dev/null | grep -q 'hook forward.*policy drop'; then
    warn "br_netfilter + a FORWARD drop policy (docker?) may block host-to-host traffic on $BRIDGE"
  fi
}

ensure_host_net() {
  local h="$1" ns veth addr
  ns="$(host_netns "$h")"
  veth="$(host_veth "$h")"
  addr="$(host_addr "$h")"
  if [[ ! -e "/run/netns/$ns" ]]; then
    ip link del "$veth" 2>/dev/null || true
    ip netns add "$ns"
  fi
  if ! ip link show "$veth" >/dev/null 2>&1 || ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip link del "$veth" 2>/dev/null || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $addr/24" || ip -n "$ns" addr add "$addr/24" dev eth0
}

# --- host files -------------------------------------------------------------------------------
ensure_host_files() {
  local h="$1" d addr
  d="$(host_dir "$h")"
  addr="$(host_addr "$h")"
  mkdir -p "$d/etc-lxc" "$d/log-lxc" "$d/cache-lxc"
  gen_key "$d/ssh_host_ed25519_key" ed25519 ""
  gen_key "$d/ssh_host_rsa_key" rsa "" -b 3072

  write_if_changed "$d/sshd_config" 644 <<EOF
# sshd of fleet host $h (generated by scripts/fleet/up.sh)
ListenAddress $addr
Port 22
HostKey $d/ssh_host_ed25519_key
HostKey $d/ssh_host_rsa_key
PidFile $d/sshd.pid
LogLevel VERBOSE
UseDNS no
UsePAM yes
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AuthorizedKeysFile $FLEET_DIR/authorized_keys/%u
# The keys live below /var/tmp (mode 1777), which StrictModes rejects as a parent directory.
StrictModes no
# MaxSessions and MaxStartups keep OpenSSH's stock values (10 and 10:30:100), as on users' hosts;
# a test that needs another value restarts sshd with it (fault.sh sshd-max-sessions) and restores it.
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
Subsystem sftp /usr/lib/openssh/sftp-server
EOF

  # /etc/lxc of the host: the machine's defaults, but no network (no lxcbr0 in the host).
  {
    printf '# LXC defaults of fleet host %s (generated by scripts/fleet/up.sh)\n' "$h"
    [[ -f /etc/lxc/default.conf ]] && grep -Ev '^[[:space:]]*lxc\.net\.' /etc/lxc/default.conf
    printf 'lxc.net.0.type = empty\n'
  } | write_if_changed "$d/etc-lxc/default.conf" 644

  {
    grep -Ev '[[:space:]]h[123]$' /etc/hosts || true
    printf '# pulumi-lxc-btrfs fleet\n'
    local o
    for o in "${HOSTS[@]}"; do printf '%s\t%s\n' "$(host_addr "$o")" "$o"; done
  } | write_if_changed "$d/hosts" 644

  # Mounts below /sys that `ip netns exec` hides and holder.sh re-creates (see holder.sh).
  awk '$2 ~ "^/sys/" { print $1, $3, $2, $4 }' /proc/self/mounts | write_if_changed "$d/sys-mounts" 644
}

# --- host processes ---------------------------------------------------------------------------
create_image() {
  local h="$1" img tmp
  img="$(host_image "$h")"
  tmp="$img.tmp"
  rm -f "$tmp" "$(host_pristine "$h")"
  truncate -s "$(host_size "$h")" "$tmp"
  if [[ "$(host_fs "$h")" == btrfs ]]; then
    mkfs.btrfs -q -L "plb-$h" "$tmp" >/dev/null
  else
    mkfs.ext4 -q -F -L "plb-$h" "$tmp"
  fi
  mv -f "$tmp" "$img"
  # Marker: the image has not been snapshotted to image.pristine.img yet.
  : >"$(host_dir "$h")/image.fresh"
  hlog "$h" "created $(host_size "$h") $(host_fs "$h") image $img"
}

start_holder() {
  local h="$1" d
  d="$(host_dir "$h")"
  rm -f "$d/holder.pid"
  (
    close_inherited_fds # the holder lives on: it must not hold our lock, or a lock held around up.sh
    exec setsid ip netns exec "$(host_netns "$h")" unshare --mount --uts --propagation private -- \
      bash "$FLEET_SCRIPTS/holder.sh" "$d" "$h" "$(host_image "$h")"
  ) </dev/null >"$d/holder.log" 2>&1 &
  for _ in $(seq 100); do
    holder_pid "$h" >/dev/null && break
    sleep 0.05
  done
  holder_pid "$h" >/dev/null || {
    cat "$d/holder.log" >&2
    die "$h: holder did not start"
  }
  local src fstype
  src="$(hexec "$h" findmnt -n -o SOURCE /var/lib/lxc)"
  fstype="$(hexec "$h" stat -f -c %T /var/lib/lxc)"
  [[ "$(losetup -n -O BACK-FILE "$src" 2>/dev/null | sed 's/[[:space:]]*$//')" == "$(host_image "$h")" ]] ||
    die "$h: /var/lib/lxc is not our image (source $src)"
  hlog "$h" "holder $(holder_pid "$h") up, /var/lib/lxc = $src ($fstype)"
}

ensure_container() { # HOST NAME KIND STARTABLE
  local h="$1" c="$2" kind="$3" startable="$4" d out
  d="$(host_dir "$h")"
  if hexec "$h" test -f "$LXC_PATH/$c/config"; then
    # A booted container is complete only once its journal was rotated (the last step of boot_systemd).
    [[ "$startable" != boot ]] && return 0
    [[ -n "$(hexec "$h" find "$LXC_PATH/$c/rootfs/var/log/journal" -name 'system@*.journal' 2>/dev/null)" ]] && return 0
  fi
  if hexec "$h" test -e "$LXC_PATH/$c"; then
    hlog "$h" "removing half-created container dir $c"
    hexec "$h" rm -rf "${LXC_PATH:?}/$c"
  fi
  hlog "$h" "creating container $c ($kind)"
  out="$d/create-$c.log"
  case "$kind" in
  busybox) hexec "$h" lxc-create -n "$c" -t busybox >"$out" 2>&1 || {
    cat "$out" >&2
    die "$h: lxc-create $c failed"
  } ;;
  debian | systemd)
    ensure_debian_cache
    local image="$DEBIAN_LXC_IMAGE"
    [[ "$kind" == systemd ]] && image="$SYSTEMD_LXC_IMAGE"
    hexec "$h" lxc-create -n "$c" -t local -- \
      --metadata "$image/meta.tar.xz" --fstree "$image/rootfs.tar.xz" >"$out" 2>&1 || {
      cat "$out" >&2
      die "$h: lxc-create $c failed"
    }
    ;;
  esac
  # A new container changes the image: save the pristine copy again (make_pristine).
  : >"$d/image.fresh"
  hexec "$h" grep -qx "lxc.rootfs.path = dir:$LXC_PATH/$c/rootfs" "$LXC_PATH/$c/config" ||
    die "$h: $c config has no dir: rootfs path"
  if [[ "$startable" == true ]]; then
    hexec "$h" lxc-start -n "$c" >>"$out" 2>&1 || {
      cat "$out" >&2
      die "$h: lxc-start $c failed"
    }
    local name
    name="$(hexec "$h" lxc-attach -n "$c" -- hostname)" || die "$h: lxc-attach $c failed"
    [[ "$name" == "$c" ]] || die "$h: $c says hostname '$name'"
    hexec "$h" lxc-stop -n "$c" -t 10 >>"$out" 2>&1 || die "$h: lxc-stop $c failed"
    hlog "$h" "$c starts, attaches ($name) and stops"
  elif [[ "$startable" == boot ]]; then
    boot_systemd "$h" "$c" "$out"
  fi
}

# Boots a systemd container once as users' containers have booted: systemd runs as init, its tmpfiles
# rule journal-nocow.conf marks /var/log/journal NOCOW on btrfs, journald writes there; a rotation (what
# journald does by itself after a while) makes the active journal a NOCOW file; then a clean shutdown.
boot_systemd() { # HOST NAME LOG
  local h="$1" c="$2" out="$3" st flagged
  hexec "$h" lxc-start -n "$c" >>"$out" 2>&1 || {
    cat "$out" >&2
    die "$h: lxc-start $c (systemd) failed"
  }
  local i
  # Until systemd has its bus up, systemctl says "Failed to connect to bus" and nothing on stdout.
  for i in $(seq 240); do
    st="$(hexec "$h" timeout 120 lxc-attach -n "$c" -- systemctl is-system-running --wait 2>>"$out" || true)"
    [[ -n "$st" ]] && break
    sleep 0.5
  done
  [[ "$st" == running || "$st" == degraded ]] || {
    hexec "$h" lxc-stop -n "$c" -k >/dev/null 2>&1 || true
    die "$h: systemd in $c did not come up (is-system-running: '${st:-no answer}')"
  }
  hexec "$h" lxc-attach -n "$c" -- sh -c 'logger "pulumi-lxc-btrfs fleet: first boot"; journalctl --flush && journalctl --rotate' >>"$out" 2>&1 ||
    die "$h: journalctl in $c failed"
  hexec "$h" lxc-stop -n "$c" -t 60 >>"$out" 2>&1 || die "$h: lxc-stop $c failed"
  # shellcheck disable=SC2016 # $1 is the inner sh's
  flagged="$(hexec "$h" sh -c 'find "$1" \( -type f -o -type d \) -exec lsattr -d {} + | grep -c "^[^ ]*C"' - "$LXC_PATH/$c/rootfs/var/log/journal")" ||
    die "$h: $c has no NOCOW entries under /var/log/journal after booting"
  hlog "$h" "$c booted systemd ($st), journal rotated, stopped; $flagged NOCOW entries under /var/log/journal"
}

stop_fleet_containers() {
  local h="$1" spec c
  for spec in $(host_containers "$h"); do
    c="${spec%%:*}"
    if [[ "$(hexec "$h" lxc-info -n "$c" -s -H 2>/dev/null || true)" == RUNNING ]]; then
      hlog "$h" "stopping $c"
      hexec "$h" lxc-stop -n "$c" -t 10 >/dev/null 2>&1 || hexec "$h" lxc-stop -n "$c" -k >/dev/null 2>&1 || true
    fi
  done
}

make_pristine() {
  local h="$1" d start=$SECONDS
  d="$(host_dir "$h")"
  [[ -f "$d/image.fresh" ]] || return 0
  stop_fleet_containers "$h"
  # Freeze: the filesystem is flushed and consistent while we copy its image.
  hexec "$h" fsfreeze --freeze "$LXC_PATH"
  if ! cp --sparse=always "$(host_image "$h")" "$(host_pristine "$h").tmp"; then
    hexec "$h" fsfreeze --unfreeze "$LXC_PATH"
    die "$h: copying the pristine image failed"
  fi
  hexec "$h" fsfreeze --unfreeze "$LXC_PATH"
  mv -f "$(host_pristine "$h").tmp" "$(host_pristine "$h")"
  rm -f "$d/image.fresh"
  hlog "$h" "saved pristine image ($((SECONDS - start))s)"
}

reset_host() {
  local h="$1" start=$SECONDS tmp
  teardown_host "$h"
  # Faults (nft tables of fault.sh) live in the network namespace: clear them too.
  ip netns exec "$(host_netns "$h")" nft flush ruleset 2>/dev/null || true
  if [[ -s "$(host_pristine "$h")" && ! -f "$(host_dir "$h")/image.fresh" ]]; then
    tmp="$(host_image "$h").tmp"
    cp --sparse=always "$(host_pristine "$h")" "$tmp"
    mv -f "$tmp" "$(host_image "$h")"
    hlog "$h" "image restored from pristine copy ($((SECONDS - start))s)"
  else
    rm -f "$(host_image "$h")"
    hlog "$h" "no pristine copy: image will be recreated"
  fi
}

ensure_host() {
  local h="$1" spec c kind startable
  if ! holder_pid "$h" >/dev/null; then
    teardown_host "$h" # leftovers of a half-dead host (sessions, containers) still hold the image
    [[ -s "$(host_image "$h")" ]] || create_image "$h"
    start_holder "$h"
  fi
  # A running sshd keeps the config it started with: restart it when ensure_host_files changed the file.
  if ! sshd_pid "$h" >/dev/null || [[ "$(host_dir "$h")/sshd_config" -nt "$(host_dir "$h")/sshd.pid" ]]; then
    stop_sshd "$h"
    start_sshd "$h"
    hlog "$h" "sshd $(sshd_pid "$h") listening on $(host_addr "$h"):22"
  fi
  for spec in $(host_containers "$h"); do
    IFS=: read -r c kind startable <<<"$spec"
    ensure_container "$h" "$c" "$kind" "$startable"
  done
  make_pristine "$h"
  stop_fleet_containers "$h"
}

# --- known_hosts + inventory ------------------------------------------------------------------
write_known_hosts() {
  local h k plain="$FLEET_DIR/known_hosts" hashed="$FLEET_DIR/known_hosts.hashed"
  {
    for h in "${HOSTS[@]}"; do
      for k in ed25519 rsa; do
        printf '%s %s\n' "$(host_addr "$h")" "$(cut -d' ' -f1,2 "$(host_dir "$h")/ssh_host_${k}_key.pub")"
      done
    done
  } | write_if_changed "$plain" 644
  if [[ ! -s "$hashed" || "$plain" -nt "$hashed" ]]; then
    cp "$plain" "$hashed.tmp"
    ssh-keygen -q -H -f "$hashed.tmp" >/dev/null 2>&1
    rm -f "$hashed.tmp.old"
    chmod 644 "$hashed.tmp"
    mv -f "$hashed.tmp" "$hashed"
  fi
}

write_inventory() {
  local f="$FLEET_DIR/inventory.json" h d first_h=1 spec c kind startable first_c k
  {
    printf '{\n  "version": 1,\n'
    printf '  "fleetDir": %s,\n' "$(json_str "$FLEET_DIR")"
    printf '  "knownHostsPath": %s,\n' "$(json_str "$FLEET_DIR/known_hosts")"
    printf '  "hashedKnownHostsPath": %s,\n' "$(json_str "$FLEET_DIR/known_hosts.hashed")"
    printf '  "cacheDir": %s,\n' "$(json_str "$CACHE_DIR")"
    printf '  "debianTarball": %s,\n' "$(json_str "$DEBIAN_TARBALL")"
    printf '  "bridge": {"name": %s, "address": %s, "cidr": %s},\n' \
      "$(json_str "$BRIDGE")" "$(json_str "$BRIDGE_ADDR")" "$(json_str "$NET_CIDR")"
    printf '  "postgres": {"url": %s, "host": %s, "port": %s, "database": %s, "user": %s,\n' \
      "$(json_str "$(pg_url)")" "$(json_str "$PG_ADDR")" "$PG_PORT" "$(json_str "$PG_DATABASE")" "$(json_str "$PG_ROLE")"
    printf '    "passwordPath": %s, "rootCertPath": %s, "dataDir": %s, "log": %s},\n' \
      "$(json_str "$PG_PASSWORD_FILE")" "$(json_str "$PG_CERT")" "$(json_str "$PG_DATA")" "$(json_str "$PG_LOG")"
    printf '  "users": {\n'
    printf '    "root": {"user": "root", "privateKeyPath": %s},\n' "$(json_str "$FLEET_DIR/id_root")"
    printf '    "admin": {"user": %s, "privateKeyPath": %s, "sudo": true},\n' \
      "$(json_str "$USERS_ADMIN")" "$(json_str "$FLEET_DIR/id_admin")"
    printf '    "encrypted": {"user": %s, "privateKeyPath": %s, "passphrasePath": %s, "sudo": true},\n' \
      "$(json_str "$USERS_ADMIN")" "$(json_str "$FLEET_DIR/id_enc")" "$(json_str "$FLEET_DIR/id_enc.pass")"
    printf '    "rsa": {"user": %s, "privateKeyPath": %s, "sudo": true},\n' \
      "$(json_str "$USERS_ADMIN")" "$(json_str "$FLEET_DIR/id_rsa")"
    printf '    "password": {"user": %s, "passwordPath": %s, "sudo": true, "sudoNeedsPassword": true}\n' \
      "$(json_str "$USERS_PASSWORD")" "$(json_str "$FLEET_DIR/plbpass.password")"
    printf '  },\n  "hosts": [\n'
    for h in "${HOSTS[@]}"; do
      d="$(host_dir "$h")"
      ((first_h)) || printf ',\n'
      first_h=0
      printf '    {\n'
      printf '      "name": %s, "address": %s, "port": 22,\n' "$(json_str "$h")" "$(json_str "$(host_addr "$h")")"
      printf '      "netns": %s, "vethRoot": %s, "vethHost": "eth0",\n' \
        "$(json_str "$(host_netns "$h")")" "$(json_str "$(host_veth "$h")")"
      printf '      "fs": %s, "lxcPath": %s,\n' "$(json_str "$(host_fs "$h")")" "$(json_str "$LXC_PATH")"
      printf '      "image": %s, "pristineImage": %s,\n' \
        "$(json_str "$(host_image "$h")")" "$(json_str "$(host_pristine "$h")")"
      printf '      "holderPidFile": %s, "sshdPidFile": %s,\n' \
        "$(json_str "$d/holder.pid")" "$(json_str "$d/sshd.pid")"
      printf '      "sshdConfig": %s, "sshdLog": %s,\n' "$(json_str "$d/sshd_config")" "$(json_str "$d/sshd.log")"
      printf '      "hostKeys": ['
      first_c=1
      for k in ed25519 rsa; do
        ((first_c)) || printf ', '
        first_c=0
        json_str "$(cut -d' ' -f1,2 "$d/ssh_host_${k}_key.pub")"
      done
      printf '],\n      "containers": [\n'
      first_c=1
      for spec in $(host_containers "$h"); do
        IFS=: read -r c kind startable <<<"$spec"
        ((first_c)) || printf ',\n'
        first_c=0
        local booted=false
        if [[ "$startable" == boot ]]; then booted=true startable=true; fi
        printf '        {"name": %s, "kind": %s, "startable": %s, "booted": %s}' \
          "$(json_str "$c")" "$(json_str "$kind")" "$startable" "$booted"
      done
      printf '\n      ]\n    }'
    done
    printf '\n  ]\n}\n'
  } >"$f.tmp"
  mv -f "$f.tmp" "$f"
}

# Run FUNC for every host in parallel; fail if one failed (its error is already printed).
for_each_host() {
  local fn="$1" h pids=() failed=0 i
  for h in "${HOSTS[@]}"; do
    "$fn" "$h" &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || {
      warn "${HOSTS[$i]}: $fn failed"
      failed=1
    }
  done
  ((failed == 0)) || die "fleet is not up"
}

# --- main -------------------------------------------------------------------------------------
main() {
  local start=$SECONDS h
  ensure_packages "${FLEET_PACKAGES[@]}"
  take_lock
  ensure_credentials
  ensure_bridge
  for h in "${HOSTS[@]}"; do
    ensure_host_net "$h"
    ensure_host_files "$h"
  done
  if ((RESET)); then
    rm -f "$FLEET_DIR/inventory.json"
    for_each_host reset_host
  fi
  ensure_debian_cache # before the hosts run in parallel (no-op when cached)
  if ((RESET)); then reset_postgres; else ensure_postgres; fi
  for_each_host ensure_host
  write_known_hosts
  write_inventory
  log "fleet: up in $((SECONDS - start))s: ${HOSTS[*]} ($FLEET_DIR/inventory.json)"
}

main
