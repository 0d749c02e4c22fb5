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
snap=
case $src in */snaps/*) snap=${src##*/} src=${src%%/*} ;; esac
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
    if [ ! -d "$dir" ]; then kv "${side}_dir" missing; continue; fi
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
  if [ "$scope" != finished ] && [ -f "$sd/config" ]; then cat "$sd/config"; fi
  printf '\0@@clone_config\0'
  [ -f "$cd/config" ] && cat "$cd/config"
  printf '\0@@clone_hostname\0'
  if [ "$scope" = finished ]; then :
  elif [ -d "$cd/rootfs" ] && safe_file "$cd/rootfs" hostname && [ -f "$cd/rootfs/etc/hostname" ]; then head -c 300 "$cd/rootfs/etc/hostname"; fi
  printf '\0@@clone_hosts\0'
  if [ "$scope" = finished ]; then :
  elif [ -d "$cd/rootfs" ] && safe_file "$cd/rootfs" hosts && [ -f "$cd/rootfs/etc/hosts" ]; then head -c 65536 "$cd/rootfs/etc/hosts"; fi
  printf '\0@@nested\0'
  if [ "$scope" = all ] && [ -d "$sd/rootfs" ]; then find "$sd/rootfs" -mindepth 1 -type d -inum "$SUBVOL_INO" -printf '%P\0'; fi
}
op_snapshot() ( # MODE(fail|freeze|restart|stopped) TOOL(lxc-copy|lxc-clone)
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
  if [ "$tool" = lxc-copy ]; then
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
  if [ ! -d "$cd" ]; then rm -f -- "$lxcpath/.plb-making-$name"; exit 0; fi
  state_of "$name"
  case $state in RUNNING|FROZEN) lxc-stop -n "$name" -P "$lxcpath" -k || true ;; esac
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
  rm -f -- "$lxcpath/.plb-making-$name"
}
op_copy_snapshot() { # a writable snapshot clone of the read-only snapshot $sd (SRC/snaps/SNAP)
  # LXC sees <lxcpath>/SRC/snaps as a directory of containers holding one named SNAP; it must be reached
  # through real directories only, or lxc-copy would snapshot whatever a symlink there points at.
  { [ ! -L "$lxcpath/$src/snaps" ] && [ ! -L "$sd" ] && is_subvol "$sd/rootfs"; } ||
    fail "$sd: snaps/ or the snapshot is a symlink, or its rootfs is not a subvolume; not cloning it"
  lxc-copy -n "$snap" -N "$name" -P "$lxcpath/$src/snaps" -p "$lxcpath" -s -B btrfs -K
}

case $op in
inspect|destroy) "op_$op" "$@" ;;
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
