# Clone operations, run as: sh -c "$this" plb-clone OP LXCPATH SOURCE NAME [ARGS...]
# A create takes three round trips: inspect; make (snapshot, nested subvolumes, inspect); finish (write
# config and identity files, start or stop, inspect). Each op that changes something ends with the
# inspection the provider needs next, so no round trip is spent only on looking; and only with the parts
# it reads next (see op_inspect), since every process started here costs about a millisecond.
set -eu
op=$1 lxcpath=$2 src=$3 name=$4
shift 4
sd=$lxcpath/$src cd=$lxcpath/$name
# SOURCE may name a read-only snapshot of a container, SRC/snaps/SNAP (LxcSnapshot's and LXC's layout):
# the clone is then made from it (op_copy_snapshot), and the source side of the inspection is the snapshot.
# SOURCE "-" (no container name can be): the source is on another host (a cross-host clone's target side);
# the inspection then has no source side.
snap=
case $src in */snaps/*) snap=${src##*/} src=${src%%/*} ;; -) sd= ;; esac
# Cross-host clones: where a btrfs receive lands until it is complete and checked (rd), and where the
# received read-only subvolume is kept on the target as the parent of the next incremental send (kept).
rd=$lxcpath/.plb-receiving-$name kept=$cd/snaps/.plb-received
# Sets $state to what lxc-info says (UNKNOWN if it says nothing), or to "" if lxc-info fails. A variable,
# not $(state_of): a subshell for the function would be one more fork.
state_of() { if state=$(lxc-info -n "$1" -P "$lxcpath" -s -H 2>/dev/null); then state=${state:-UNKNOWN}; else state=; fi; }
# A regular file inside a rootfs, refusing symlinks anywhere on the way (a container must not be able
# to point our writes at the host's files).
safe_file() { [ ! -L "$1/etc" ] && [ -d "$1/etc" ] && [ ! -L "$1/etc/$2" ] && { [ -f "$1/etc/$2" ] || [ ! -e "$1/etc/$2" ]; }; }

op_inspect() { # [SCOPE]: all (default); made or finished: what the provider reads after make or finish
  # After make it reads the clone side, the source's subvolume (its generation is an output), the MACs of
  # every container, both configs and the clone's identity files (to compute finish's edits); after
  # finish, only the clone side, the source's subvolume and the clone's config (the outputs). Left out
  # there: the source's filesystem type and state, the clone's filesystem type, the nested subvolumes
  # (a walk of the whole source tree) and, after finish, the MACs, the source's config and the identity
  # files. The keys and sections are printed all the same, empty; a field left out is absent.
  scope=${1:-all}
  # A marker next to the containers says a create of NAME started and has not finished.
  # if/else instead of $(...): each command substitution is a fork, and inspections run on every step.
  if [ -e "$lxcpath/.plb-making-$name" ]; then kv making 1; else kv making 0; fi
  if command -v lxc-copy >/dev/null 2>&1; then kv has_lxc_copy 1; else kv has_lxc_copy 0; fi
  if command -v lxc-clone >/dev/null 2>&1; then kv has_lxc_clone 1; else kv has_lxc_clone 0; fi
  for side in source clone; do
    if [ $side = source ]; then dir=$sd n=$src; else dir=$cd n=$name; fi
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then kv "${side}_dir" missing; continue; fi
    kv "${side}_dir" present
    if [ "$scope" = all ]; then kv "${side}_fstype" "$(stat -f -c %T "$dir")"; fi
    if [ "$scope" = all ] || [ $side = clone ]; then state_of "$n"; kv "${side}_state" "$state"; fi
    if is_subvol "$dir/rootfs"; then kv "${side}_subvol" 1; subvol_fields "$dir/rootfs" "$side"; printf %s "$fields"
    else kv "${side}_subvol" 0; fi
  done
  printf '@@hwaddrs\0'
  # Every MAC of every container, as "NAME MAC" lines, in one awk over all configs (a process per container
  # or per MAC costs milliseconds each, and hosts run hundreds of containers). The section is one item,
  # closed by the \0 before the next; newlines, not NULs, separate its lines: awk cannot print a NUL
  # everywhere, and a `tr` would be one more process.
  set --
  if [ "$scope" != finished ]; then
    for c in "$lxcpath"/*/config; do if [ -f "$c" ] && [ -r "$c" ]; then set -- "$@" "$c"; fi; done
  fi
  if [ $# -gt 0 ]; then
    awk '{
      if (!match($0, /^[ \t]*lxc\.net\.[0-9]*\.hwaddr[ \t]*=[ \t]*/)) next
      v = substr($0, RSTART + RLENGTH); sub(/[ \t].*$/, "", v)
      n = FILENAME; sub(/\/config$/, "", n); sub(/^.*\//, "", n)
      print n " " v
    }' "$@"
  fi
  printf '\0@@source_config\0'
  if [ "$scope" != finished ] && [ -n "$sd" ] && [ -f "$sd/config" ]; then cat "$sd/config"; fi
  printf '\0@@clone_config\0'
  [ -f "$cd/config" ] && cat "$cd/config"
  printf '\0@@clone_hostname\0'
  if [ "$scope" = finished ]; then :
  elif [ -d "$cd/rootfs" ] && safe_file "$cd/rootfs" hostname && [ -f "$cd/rootfs/etc/hostname" ]; then head -c 300 "$cd/rootfs/etc/hostname"; fi
  printf '\0@@clone_hosts\0'
  if [ "$scope" = finished ]; then :
  elif [ -d "$cd/rootfs" ] && safe_file "$cd/rootfs" hosts && [ -f "$cd/rootfs/etc/hosts" ]; then head -c 65536 "$cd/rootfs/etc/hosts"; fi
  printf '\0@@nested\0'
  if [ "$scope" = all ] && [ -n "$sd" ] && [ -d "$sd/rootfs" ]; then find "$sd/rootfs" -mindepth 1 -type d -inum "$SUBVOL_INO" -printf '%P\0'; fi
}
op_snapshot() ( # MODE(fail|freeze|restart|stopped) TOOL(lxc-copy|lxc-clone|sent)
  mode=$1 tool=$2
  restart=0 frozen=0
  # shellcheck disable=SC2317 # run by the EXIT trap below
  cleanup() {
    if [ "$frozen" = 1 ]; then lxc-unfreeze -n "$src" -P "$lxcpath" || true; fi
    if [ "$restart" = 1 ]; then lxc-start -n "$src" -P "$lxcpath" -d || true; fi
  }
  trap cleanup EXIT
  # A dropped connection (HUP, or PIPE on the next write) must still unfreeze or restart the source.
  trap 'exit 1' HUP INT TERM PIPE
  extra=
  case $mode in
  freeze)
    freeze_bounded "$src" "$lxcpath" ||
      fail "$src did not freeze within 10 s, 3 times (a task of it would not stop); it runs on, thawed: try again, or set ifSourceRunning: \"restart\""
    frozen=1 extra=--allowrunning
    ;;
  restart) lxc-stop -n "$src" -P "$lxcpath" -t 30; restart=1 ;;
  esac
  # -K (keep name): without it LXC writes the new name into <clone rootfs>/etc/hostname on the host and
  # follows a symlink planted there by the source container (e.g. to /etc/shadow: a host file). We set
  # lxc.uts.name and write /etc/hostname ourselves in finish, never through a symlink.
  if [ "$tool" = sent ]; then
    btrfs subvolume snapshot -r -- "$sd/rootfs" "$to/rootfs" >/dev/null
  elif [ "$tool" = lxc-copy ]; then
    lxc-copy -n "$src" -N "$name" -P "$lxcpath" -p "$lxcpath" -s -B btrfs -K $extra
  else
    lxc-clone -o "$src" -n "$name" -P "$lxcpath" -s -K
  fi
)
op_nested() { # snapshot each nested subvolume of the source into place, shallowest first
  # shellcheck disable=SC2016 # expanded by the inner sh
  nested_into "$sd/rootfs" "$cd/rootfs" all \
    "a symlink on the way in the clone; not snapshotting the nested subvolume there" '
    rmdir -- "$2" 2>/dev/null || true
    btrfs subvolume snapshot "$1" "$2" >/dev/null'
}
# finish's files: each is written to a temp file beside it and fsynced (op_write), then all are checked and
# only then each renamed over its file (op_commit): every file is on disk before its rename. A failure
# before the renames removes the temp files (drop_tmps, the EXIT trap of finish) and leaves every file as
# it was. The clone may be running (an update): its root can plant or swap symlinks in /etc at any moment,
# so nothing here acts on a path that could be one and follows it: the temp file is created with O_EXCL
# (dd conv=excl; noclobber's > would follow a symlink to a device or FIFO), its mode comes from the umask
# (chmod follows symlinks), its owner is set with chown -h, and the modes and owners copied come from
# stat, which does not follow.
written= # "WHAT:BYTES ..." of the temp files written so far
path_of() { if [ "$1" = config ]; then f=$cd/config; else f=$cd/rootfs/etc/$1; fi; }
drop_tmps() { for w in $written; do path_of "${w%%:*}"; rm -f -- "$f.plb-tmp"; done; }
op_write() { # WHAT(config|hostname|hosts) BYTES: the next BYTES of stdin into WHAT's temp file
  case $1 in
  config) path_of "$1" ;;
  hostname|hosts)
    path_of "$1"
    e=$cd/rootfs/etc
    { [ ! -L "$e" ] && [ -d "$e" ]; } ||
      fail "$e is a symlink or not a directory in the source's snapshot; the clone's /etc/$1 cannot be written without following it: make /etc a directory in $src and run again"
    # A symlink here is the clone's own (its snapshot of the source's): replace it by a regular file
    # rather than write through it. Anything else that is not a regular file is refused.
    if [ -L "$f" ]; then rm -f -- "$f"; fi
    { [ -f "$f" ] || [ ! -e "$f" ]; } || fail "$f is not a regular file; not writing it"
    ;;
  *) fail "unknown file $1" ;;
  esac
  # A temp file left by a run cut short (or a symlink planted under its name) is removed first (tested
  # first: rm is a process); one planted again before dd opens makes dd fail instead of following it.
  if [ -e "$f.plb-tmp" ] || [ -L "$f.plb-tmp" ]; then rm -f -- "$f.plb-tmp"; fi
  # The permission bits of the file it replaces (special bits are not kept), or 644 for a new one.
  if [ -e "$f" ] && [ ! -L "$f" ]; then m=$(stat -c %a -- "$f"); else m=644; fi
  written="$written $1:$2"
  (umask "$(printf %04o $((0777 & ~0$m)))" && head -c "$2" | dd of="$f.plb-tmp" conv=excl,fsync status=none)
}
op_commit() { # the temp files of op_write: sizes checked, owner set, renamed
  [ -n "$written" ] || return 0
  set --
  want=
  for w in $written; do path_of "${w%%:*}"; set -- "$@" "$f.plb-tmp"; want=$want${want:+$nl}${w#*:}; done
  # One stat for all the sizes; only if they are not all as expected, one per file to say which.
  if [ "$(stat -c %s -- "$@" 2>/dev/null)" != "$want" ]; then
    for w in $written; do
      path_of "${w%%:*}"
      if [ "$(stat -c %s -- "$f.plb-tmp")" != "${w#*:}" ]; then
        fail "short input for $f: expected ${w#*:} bytes; nothing written"
      fi
    done
  fi
  for w in $written; do
    path_of "${w%%:*}"
    [ -L "$f.plb-tmp" ] && fail "$f.plb-tmp was replaced by a symlink; not writing $f"
    if [ -e "$f" ] && [ ! -L "$f" ]; then
      chown -h "$(stat -c %u:%g -- "$f")" "$f.plb-tmp"
    elif [ "${w%%:*}" != config ]; then
      chown -h "$(stat -c %u:%g -- "$cd/rootfs/etc")" "$f.plb-tmp" # the container's root, mapped or not
    fi
  done
  for w in $written; do path_of "${w%%:*}"; mv -f -- "$f.plb-tmp" "$f"; done
  written=
}
op_stop() {
  lxc-stop -n "$name" -P "$lxcpath" -t 30
}
op_destroy() { # stop if running, remove nested subvolumes deepest first, then lxc-destroy
  drop_receiving
  if [ ! -d "$cd" ]; then rm -f -- "$lxcpath/.plb-making-$name"; exit 0; fi
  state_of "$name"
  case $state in RUNNING|FROZEN) lxc-stop -n "$name" -P "$lxcpath" -k || true ;; esac
  # A cross-host clone's kept received parent and a rootfs not yet renamed into place: ours, by their
  # reserved names, reached through real directories only (lxc-destroy refuses a container with snaps/).
  if [ ! -L "$cd/snaps" ] && [ ! -L "$kept" ] && is_subvol "$kept/rootfs"; then btrfs subvolume delete -- "$kept/rootfs" >/dev/null; fi
  if [ -d "$kept" ] && [ ! -L "$kept" ]; then rmdir -- "$kept"; fi
  if [ -d "$cd/snaps" ] && [ ! -L "$cd/snaps" ]; then rmdir -- "$cd/snaps" 2>/dev/null || :; fi
  for x in "$cd/rootfs.plb-new" "$cd/rootfs.plb-old"; do if is_subvol "$x"; then drop_subvol_tree "$x"; fi; done
  if [ -d "$cd/rootfs" ]; then
    find "$cd/rootfs" -mindepth 1 -depth -type d -inum "$SUBVOL_INO" -exec btrfs subvolume delete {} + >/dev/null
  fi
  # lxc-destroy needs a config with its rootfs; an interrupted lxc-copy can leave one without it.
  if [ -f "$cd/config" ] && grep -q '^[[:space:]]*lxc\.rootfs\.path[[:space:]]*=' "$cd/config"; then
    lxc-destroy -n "$name" -P "$lxcpath"
  else
    if is_subvol "$cd/rootfs"; then btrfs subvolume delete "$cd/rootfs" >/dev/null; fi
    rm -rf -- "$cd"
  fi
  rm -f -- "$lxcpath/.plb-making-$name" "$lxcpath/.plb-refreshing-$name"
}
op_copy_snapshot() { # a writable snapshot clone of the read-only snapshot $sd (SRC/snaps/SNAP)
  # LXC sees <lxcpath>/SRC/snaps as a directory of containers holding one named SNAP; it must be reached
  # through real directories only, or lxc-copy would snapshot whatever a symlink there points at.
  { [ ! -L "$lxcpath/$src/snaps" ] && [ ! -L "$sd" ] && is_subvol "$sd/rootfs"; } ||
    fail "$sd: snaps/ or the snapshot is a symlink, or its rootfs is not a subvolume; not cloning it"
  lxc-copy -n "$snap" -N "$name" -P "$lxcpath/$src/snaps" -p "$lxcpath" -s -B btrfs -K
}

# ---- Cross-host clones -------------------------------------------------------------------------------------
# The source host keeps the read-only snapshot it sent, $sp: <lxcpath>/SRC/snaps/.plb-sent-<tag>-<name>/rootfs,
# TAG naming the target (host and lxcPath, see clone/xhost.ts): the parent of the next incremental send. The
# target receives into $rd, keeps the received subvolume at $kept/rootfs, and the clone's rootfs is a
# writable snapshot of it. Nothing is reached through a symlink: every directory on the way is checked.
sent_path() { # TAG: sets sp; fails if the container's directory or snaps/ is a symlink
  sp=$lxcpath/$src/snaps/.plb-sent-$1-$name np=$lxcpath/$src/snaps/.plb-next-$1-$name
  { [ ! -L "$lxcpath/$src" ] && [ -d "$lxcpath/$src" ]; } || fail "$lxcpath/$src is not the container's directory"
  [ ! -L "$lxcpath/$src/snaps" ] || fail "$lxcpath/$src/snaps is a symlink; not keeping a snapshot through it: remove it (what it points at is left alone)"
  [ ! -L "$sp" ] || fail "$sp is a symlink; remove it (what it points at is left alone)"
  [ ! -L "$np" ] || fail "$np is a symlink; remove it (what it points at is left alone)"
}
drop_sent() { # [DIR]: removes $sp, or DIR (ours by their reserved names)
  set -- "${1:-$sp}"
  [ -e "$1" ] || return 0
  [ -d "$1" ] || fail "$1 is not a directory; remove it"
  if is_subvol "$1/rootfs"; then btrfs subvolume delete -- "$1/rootfs" >/dev/null
  elif [ -e "$1/rootfs" ] || [ -L "$1/rootfs" ]; then fail "$1/rootfs is not a subvolume; not this provider's: remove it"; fi
  rmdir -- "$1" || fail "$1 holds files this provider did not make; remove them"
}
# The UUID of subvolume DIR, into $uuid ("" if it is none).
uuid_of() { uuid=; if is_subvol "$1"; then subvol_fields "$1" u; uuid=${fields#*"u UUID="}; uuid=${uuid%%"$nl"*}; fi; }
# Ends a receive of this clone that an earlier create left running. A link cut while the provider closed
# its channel loses that close: sshd never hears of it (no keepalive by default) and the receive waits for
# input for ever. The marker names it (xreceive writes its PID there and execs btrfs receive); it is ended
# only if that PID still runs exactly that receive into $rd.
stop_stale_receive() {
  for m in "$lxcpath/.plb-making-$name" "$lxcpath/.plb-refreshing-$name"; do stop_receive_of "$m"; done
}
stop_receive_of() { # MARKER
  old=
  if [ -f "$1" ] && [ ! -L "$1" ]; then read -r old <"$1" 2>/dev/null || :; fi
  case $old in '' | *[!0-9]*) return 0 ;; esac
  [ "$(tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null)" = "btrfs receive -C -E 1 -e -- $rd " ] || return 0
  kill -TERM "$old" 2>/dev/null || return 0
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$old" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$old" 2>/dev/null || :
  sleep 0.5
  kv stopped_receive 1
}
# Removes $rd, what an interrupted receive left: only subvolumes right in it (a receive makes nothing else
# there), never through a symlink; anything else in it is refused.
drop_receiving() {
  if [ -L "$rd" ]; then fail "$rd is a symlink; remove it (what it points at is left alone)"; fi
  stop_stale_receive
  [ -e "$rd" ] || return 0
  [ -d "$rd" ] || fail "$rd is not a directory; remove it"
  for e in "$rd"/* "$rd"/.[!.]* "$rd"/..?*; do
    if [ ! -e "$e" ] && [ ! -L "$e" ]; then continue; fi
    is_subvol "$e" || fail "$e is not a subvolume a receive made; remove it"
    btrfs subvolume delete -- "$e" >/dev/null
  done
  rmdir -- "$rd"
  kv dropped_receiving 1
}
op_xsource() { # TAG [nosize]: the kept sent snapshot (and a refresh's new one), the source's size, then the
  # inspection (all)
  sp=$lxcpath/$src/snaps/.plb-sent-$1-$name
  if [ -L "$sp" ]; then kv xsent_dir symlink
  elif is_subvol "$sp/rootfs"; then
    kv xsent_dir subvol; subvol_fields "$sp/rootfs" xsent; printf %s "$fields"
  elif [ -e "$sp" ]; then kv xsent_dir other
  else kv xsent_dir missing; fi
  # A refresh's new snapshot, left by a refresh cut off before it became the kept one.
  np=$lxcpath/$src/snaps/.plb-next-$1-$name
  if [ ! -L "$np" ] && is_subvol "$np/rootfs"; then kv xnext_dir subvol; subvol_fields "$np/rootfs" xnext; printf %s "$fields"; fi
  # Bytes the source's tree takes (allocated blocks, each file once): what a receive will write, roughly.
  # Not for a refresh ("nosize"): it sends only what changed, and the walk grows with the tree.
  if [ "${2:-}" != nosize ] && [ -n "$sd" ] && is_subvol "$sd/rootfs"; then kv xsize "$(du -sxB1 -- "$sd/rootfs" | cut -f1)"; fi
  op_inspect all
}
op_xsent() ( # MODE TAG [PARENT_UUID|-]: a fresh read-only snapshot $sp of the source (or of its snapshot
  # SRC/snaps/SNAP). With a third argument (a refresh), the new snapshot is $np instead, and $sp is the
  # common parent PARENT_UUID the target has (moved there from $np if a refresh was cut off after the
  # target took $np), or "-": no common parent, $sp stays until the refresh is done.
  sent_path "$2"
  [ -d "$lxcpath/$src/snaps" ] || mkdir -- "$lxcpath/$src/snaps"
  if [ $# -ge 3 ]; then
    if [ "$3" != - ]; then
      uuid_of "$np/rootfs"
      if [ "$uuid" = "$3" ]; then drop_sent "$sp"; mv -T -- "$np" "$sp"; kv moved_next 1; fi
      uuid_of "$sp/rootfs"
      [ "$uuid" = "$3" ] || fail "$sp/rootfs is not the parent the target has (UUID $3); not refreshing from it"
    fi
    drop_sent "$np"
    to=$np
  else
    drop_sent
    to=$sp
  fi
  mkdir -- "$to"
  if [ -n "$snap" ]; then
    { [ ! -L "$sd" ] && is_subvol "$sd/rootfs"; } || fail "$sd: the snapshot is a symlink or its rootfs is not a subvolume; not sending it"
    btrfs subvolume snapshot -r -- "$sd/rootfs" "$to/rootfs" >/dev/null
  else
    op_snapshot "$1" sent
  fi
  subvol_fields "$to/rootfs" xsent
  printf %s "$fields"
  # Its inode flags, which btrfs send does not carry: the target sets them on the clone (op_xplace).
  need_chattr
  w=$(mktemp -d)
  trap 'rm -rf -- "$w"' EXIT
  flags_of "$to/rootfs" "$w/flags" || fail "could not read the inode flags of $to/rootfs"
  printf '@@flags\0'
  cat -- "$w/flags"
)
sendable() { # DIR UUID: DIR/rootfs is the read-only subvolume UUID
  uuid_of "$1/rootfs"
  [ -n "$uuid" ] || fail "$1/rootfs is not a subvolume; not sending it"
  [ "$uuid" = "$2" ] || fail "$1/rootfs is not the snapshot taken for this clone (UUID $2); not sending it"
  [ "$(btrfs property get -ts "$1/rootfs" ro)" = ro=true ] || fail "$1/rootfs is not read-only; not sending it"
}
op_xsend() { # TAG UUID [PARENT_UUID]: btrfs send of $sp to stdout, or with a parent (a refresh) of $np
  # against $sp, if they are those read-only subvolumes
  sent_path "$1"
  if [ $# -ge 3 ]; then
    sendable "$np" "$2"
    sendable "$sp" "$3"
    hold "$name" send
    exec btrfs send -q -p "$sp/rootfs" -- "$np/rootfs"
  fi
  sendable "$sp" "$2"
  hold "$name" send
  exec btrfs send -q -- "$sp/rootfs"
}
op_xdrop() { # TAG: removes the kept sent snapshot $sp and a refresh's $np (deleting a cross-host clone)
  if [ ! -d "$lxcpath/$src" ] || [ -L "$lxcpath/$src" ] || [ -L "$lxcpath/$src/snaps" ]; then kv dropped_sent 0; return 0; fi
  sent_path "$1"
  drop_sent "$np"
  drop_sent
  kv dropped_sent 1
}
op_xdropnext() { # TAG: removes a refresh's new snapshot $np (the refresh failed; $sp stays the parent)
  if [ ! -d "$lxcpath/$src" ] || [ -L "$lxcpath/$src" ] || [ -L "$lxcpath/$src/snaps" ]; then return 0; fi
  sent_path "$1"
  drop_sent "$np"
}
op_xrotate() { # TAG UUID: once the target took $np (UUID), it becomes the kept $sp, the old parent goes
  hold "$name" rotate
  sent_path "$1"
  uuid_of "$np/rootfs"
  if [ "$uuid" = "$2" ]; then drop_sent "$sp"; mv -T -- "$np" "$sp"; fi
  uuid_of "$sp/rootfs"
  [ "$uuid" = "$2" ] || fail "$sp/rootfs is not the snapshot sent (UUID $2)"
  kv rotated 1
}
op_xtarget() { # [recover]: the target's filesystem and free space, the receive in progress, the kept parent,
  # then inspect; with "recover" (a refresh), what an interrupted refresh left is put right first
  if [ "${1:-}" = recover ]; then recover_refresh; fi
  kv lxc_fstype "$(stat -f -c %T "$lxcpath")"
  if free=$(btrfs filesystem usage -b -- "$lxcpath" 2>/dev/null | awk '/Free \(estimated\)/ { print $3; exit }') && [ -n "$free" ]; then
    kv free_bytes "$free"
  else
    kv free_bytes "$(df -B1 --output=avail -- "$lxcpath" | tail -n 1 | tr -d ' ')"
  fi
  if [ -L "$rd" ]; then kv receiving symlink; elif [ -e "$rd" ]; then kv receiving present; else kv receiving missing; fi
  if [ ! -L "$cd/snaps" ] && [ ! -L "$kept" ] && is_subvol "$kept/rootfs"; then
    kv received 1; subvol_fields "$kept/rootfs" received; printf %s "$fields"
  else kv received 0; fi
  op_inspect all
}
op_xreceive() { # [refresh]: btrfs receive of stdin into $rd, after the marker (a create of NAME under way,
  # or with "refresh" a refresh of the existing clone NAME)
  hold "$name" receive
  [ "$(stat -f -c %T "$lxcpath")" = btrfs ] || fail "$lxcpath is not on btrfs; a cross-host clone needs btrfs on both hosts"
  mk=$lxcpath/.plb-making-$name
  if [ "${1:-}" = refresh ]; then
    { [ ! -L "$cd" ] && [ -d "$cd" ] && [ ! -e "$mk" ]; } || fail "$cd is not a finished clone; not refreshing it"
    mk=$lxcpath/.plb-refreshing-$name
  elif [ -e "$cd" ] || [ -L "$cd" ]; then printf '%s\n' "$cd already exists" >&2; exit "$EXIT_NAME_TAKEN"; fi
  stop_stale_receive >/dev/null
  # The marker names this receive (the exec below keeps the PID), for a next run to end it if its
  # connection is lost without a word.
  printf '%s\n' "$$" >"$mk"
  drop_receiving >/dev/null
  mkdir -- "$rd"
  # --chroot: receive works inside $rd and cannot write outside it whatever the stream says; -E 1: the
  # first error ends it; -e: it ends at the stream's end marker.
  exec btrfs receive -C -E 1 -e -- "$rd" >&2
}
# UUID: $rd/rootfs ($r) is a complete receive of the snapshot UUID: a subvolume reached through no symlink,
# with that Received UUID, read-only (receive sets that last), and alone in $rd.
check_received() {
  r=$rd/rootfs
  { [ ! -L "$rd" ] && is_subvol "$r"; } || fail "$r is not a received subvolume"
  subvol_fields "$r" r
  case $fields in *"r Received UUID=$1$nl"*) ;; *) fail "$r is not the receive of the snapshot sent (Received UUID $1)" ;; esac
  [ "$(btrfs property get -ts "$r" ro)" = ro=true ] || fail "$r is not read-only: its receive did not finish"
  [ "$(ls -A -- "$rd")" = rootfs ] || fail "$rd holds more than the received rootfs; not using it"
}
# FROM NEW WORK: NEW, a writable snapshot of FROM given the source's inode flags (WORK/flags), checked equal
# to them, and on disk.
flagged_snapshot() {
  btrfs subvolume snapshot -- "$1" "$2" >/dev/null
  set_nocow "$3/flags" "$2" || fail "could not make the NOCOW files of $2 NOCOW again"
  apply_flags "$3/flags" "$2" || fail "could not set the inode flags of $2"
  flags_of "$2" "$3/got" || fail "could not read the inode flags of $2"
  cmp -s -- "$3/flags" "$3/got" ||
    fail "the inode flags of $2 differ from the source's after setting them: $(LC_ALL=C comm -z -3 "$3/flags" "$3/got" | tr '\0' ' ' | head -c 300)"
  sync -f -- "$2"
}
# Places a complete receive: the received subvolume (read-only, with the Received UUID of the snapshot that
# was sent) is kept as $kept/rootfs (its directory $rd renamed), the clone's rootfs is a writable snapshot of it, made as rootfs.plb-new,
# given the source's inode flags (stdin after the config) and checked, then renamed into place; the config
# (the first CONFIG_BYTES of stdin) last. Ends with the inspection made's.
op_xplace() { # UUID CONFIG_BYTES
  hold "$name" place
  [ -e "$lxcpath/.plb-making-$name" ] || fail "no receive of $name is under way here (no $lxcpath/.plb-making-$name)"
  if [ -e "$cd" ] || [ -L "$cd" ]; then printf '%s\n' "$cd already exists" >&2; exit "$EXIT_NAME_TAKEN"; fi
  check_received "$1"
  w=$(mktemp -d)
  trap 'rm -rf -- "$w"' EXIT
  head -c "$2" >"$w/config"
  [ "$(stat -c %s -- "$w/config")" = "$2" ] || fail "short input for the config: expected $2 bytes; nothing placed"
  cat >"$w/flags"
  need_chattr
  # A read-only subvolume cannot be renamed itself (EROFS: its root's backref would change), but the plain
  # directory holding it can: the receive directory becomes the kept one.
  mkdir -- "$cd" "$cd/snaps"
  mv -T -- "$rd" "$kept"
  new=$cd/rootfs.plb-new
  flagged_snapshot "$kept/rootfs" "$new" "$w"
  mv -T -- "$new" "$cd/rootfs"
  dd of="$cd/config" conv=excl,fsync status=none <"$w/config"
  sync -- "$cd"
  op_inspect made
}
# ---- Refresh of a cross-host clone: its rootfs re-made from an incremental receive ------------------------
# The receive (xreceive refresh) lands in $rd as a create's does, with -p's parent found by its Received UUID
# at $kept/rootfs. xrefresh then makes the new rootfs beside the old one (rootfs.plb-new), gives it the
# source's inode flags, checks them, and only then swaps: rootfs -> rootfs.plb-old, rootfs.plb-new -> rootfs.
# The received subvolume becomes the kept parent, and the old rootfs goes last. Every state a cut leaves
# is put right by recover_refresh, forward if the new rootfs is in place, back otherwise.
drop_subvol_tree() { # DIR: a subvolume and the subvolumes nested in it, deepest first
  find "$1" -mindepth 1 -depth -type d -inum "$SUBVOL_INO" -exec btrfs subvolume delete {} + >/dev/null
  btrfs subvolume delete -- "$1" >/dev/null
}
recover_refresh() {
  [ -d "$cd" ] && [ ! -L "$cd" ] && [ ! -e "$lxcpath/.plb-making-$name" ] || return 0
  if [ ! -e "$cd/rootfs" ] && [ ! -L "$cd/rootfs" ] && is_subvol "$cd/rootfs.plb-old"; then
    mv -T -- "$cd/rootfs.plb-old" "$cd/rootfs"; kv refresh_rolled_back 1
  fi
  if is_subvol "$cd/rootfs.plb-new"; then drop_subvol_tree "$cd/rootfs.plb-new"; fi
  if is_subvol "$cd/rootfs.plb-old"; then drop_subvol_tree "$cd/rootfs.plb-old"; kv refresh_finished 1; fi
  # Cut between dropping the old kept parent and keeping the new: the new one is the rootfs's parent.
  if [ ! -L "$cd/snaps" ] && [ ! -L "$kept" ] && ! is_subvol "$kept/rootfs" && [ ! -L "$rd" ] && is_subvol "$rd/rootfs" &&
    [ "$(btrfs property get -ts "$rd/rootfs" ro)" = ro=true ]; then
    uuid_of "$rd/rootfs" && r=$uuid
    subvol_fields "$cd/rootfs" c
    case $fields in *"c Parent UUID=$r$nl"*)
      if [ -d "$kept" ]; then rmdir -- "$kept"; fi
      mkdir -p -- "$cd/snaps"; mv -T -- "$rd" "$kept"; kv refresh_kept 1 ;;
    esac
  fi
  if [ -e "$rd" ] || [ -L "$rd" ] || [ -e "$lxcpath/.plb-refreshing-$name" ]; then drop_receiving >/dev/null; fi
  rm -f -- "$lxcpath/.plb-refreshing-$name"
}
op_xrefresh() { # UUID MODE(fail|restart): the complete receive (of UUID) becomes the clone's rootfs; stdin is
  # the source's inode flags. A running clone is stopped with "restart" (was_running=1: the provider starts
  # it again once its identity files are written). Ends with the inspection made's.
  hold "$name" refresh
  mk=$lxcpath/.plb-refreshing-$name
  [ -e "$mk" ] || fail "no refresh of $name is under way here (no $mk)"
  { [ ! -L "$cd" ] && [ -d "$cd" ] && [ ! -L "$cd/snaps" ] && [ ! -L "$kept" ] && is_subvol "$cd/rootfs"; } ||
    fail "$cd is not a finished clone (a symlink on the way, or no rootfs subvolume); not refreshing it"
  check_received "$1"
  w=$(mktemp -d)
  trap 'rm -rf -- "$w"' EXIT
  cat >"$w/flags"
  need_chattr
  new=$cd/rootfs.plb-new
  if is_subvol "$new"; then drop_subvol_tree "$new"; fi
  flagged_snapshot "$r" "$new" "$w"
  state_of "$name"
  case $state in RUNNING|FROZEN)
    [ "$2" = restart ] || fail "$name is $state; stop it, or set ifRunning: \"restart\" (nothing was changed in the clone)"
    lxc-stop -n "$name" -P "$lxcpath" -t 30
    kv was_running 1 ;;
  esac
  hold "$name" swap
  mv -T -- "$cd/rootfs" "$cd/rootfs.plb-old"
  mv -T -- "$new" "$cd/rootfs"
  sync -- "$cd"
  hold "$name" keep
  if is_subvol "$kept/rootfs"; then btrfs subvolume delete -- "$kept/rootfs" >/dev/null; fi
  if [ -d "$kept" ]; then rmdir -- "$kept"; fi
  mkdir -p -- "$cd/snaps"
  mv -T -- "$rd" "$kept"
  drop_subvol_tree "$cd/rootfs.plb-old"
  rm -f -- "$mk"
  op_inspect made
}

# btrfs send carries no inode flags, and chattr +C is ignored on a file that has data: each regular file the
# source had NOCOW (FLAGS records "FLAGS ./PATH" with a C) is emptied and refilled in place, NOCOW, from a
# reflink copy of its data taken first (same inode: its other names, owner, mode and xattrs stay; its
# mtime is put back). The copy is $cd/rootfs.plb-nocow, beside the rootfs, never inside it. Paths come from
# find walks of the source snapshot, whose tree the clone is; nothing runs in the clone yet.
set_nocow() ( # FLAGS DIR
  # shellcheck disable=SC2016 # expanded by the inner sh
  { grep -z '^[^ ]*C[^ ]* ' "$1" || [ $? = 1 ]; } | sed -z 's/^[^ ]* //' | (cd "$2" && xargs -0 -r sh -c '
    t=$1; shift
    for p; do
      if [ -L "$p" ] || [ ! -f "$p" ]; then continue; fi
      l=$(lsattr -d -- "$p") || exit 255
      case ${l%% *} in *C*) continue ;; esac
      cp -p --reflink=always -- "$p" "$t" &&
        truncate -s 0 -- "$p" && chattr +C -- "$p" &&
        cp --reflink=never --sparse=always -- "$t" "$p" && touch -c -m -r "$t" -- "$p" && rm -f -- "$t" ||
        { printf "cannot make %s NOCOW\n" "$p" >&2; exit 255; }
    done' plb-nocow "$cd/rootfs.plb-nocow")
)

case $op in
inspect|destroy|xsource|xsend|xdrop|xdropnext|xrotate|xtarget|xreceive|xrefresh) "op_$op" "$@" ;;
xrecover)       # a refresh that failed: the clone as it was (or as refreshed, if the swap was done)
  recover_refresh
  ;;
xdropreceiving) drop_receiving ;;
xabandon)       # a create that found the name taken by another container: only our receive and marker go
  drop_receiving
  rm -f -- "$lxcpath/.plb-making-$name"
  ;;
xsent) hold "$name" sent; op_xsent "$@" ;;
xplace) op_xplace "$@" ;;
make)           # MODE TOOL NESTED(0|1): snapshot (the source is unfrozen or restarted before going on), then
                # snapshot nested subvolumes into place, then inspect
  hold "$name" snapshot
  # Checked once, before the marker: a marker says that what is there is ours.
  if [ -e "$cd" ]; then printf '%s\n' "$cd already exists" >&2; exit "$EXIT_NAME_TAKEN"; fi
  : >"$lxcpath/.plb-making-$name"
  if [ -n "$snap" ]; then op_copy_snapshot; else op_snapshot "$1" "$2"; fi
  hold "$name" nested
  if [ "$3" = 1 ]; then op_nested; fi
  op_inspect made
  ;;
finish)         # CONFIG_BYTES HOSTNAME_BYTES HOSTS_BYTES ACTION(start|stop|-): stdin holds the new contents
                # back to back (a count of - leaves that file alone), then start or stop, then inspect
  hold "$name" finish
  case $4 in start|stop|-) ;; *) fail "unknown action $4" ;; esac
  trap drop_tmps EXIT
  for what in config hostname hosts; do
    if [ "$1" != - ]; then op_write "$what" "$1"; fi
    shift
  done
  op_commit
  trap - EXIT
  case $1 in start) start_and_wait "$name" "$lxcpath" ;; stop) op_stop ;; esac
  rm -f -- "$lxcpath/.plb-making-$name"
  op_inspect finished
  ;;
*) fail "unknown clone op $op" ;;
esac
