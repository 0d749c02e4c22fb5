# Snapshot operations, run as: sh -c "$this" plb-snapshot OP LXCPATH CONTAINER NAME [ARGS...]
# A snapshot lives where LXC keeps its own: <lxcpath>/<container>/snaps/<name>/ with `rootfs` (a read-only
# subvolume), `config` (the container's, its lxc.rootfs.path pointing at that rootfs) and `ts`. It is built
# under snaps/.plb-making-<name> and renamed into place only once complete and on disk, so a crash at any
# point leaves either nothing under <name> or the whole snapshot; the next make or delete removes a
# leftover build (thawing the container first if the build froze it: a `frozen` file in the build says so).
# Nothing here follows a symlink: the container's directory and snaps/ must be real directories (checked,
# then entered with cd -P and the path compared), everything else is reached relative to snaps/.
set -eu
op=$1 lxcpath=$2 ct=$3 name=$4
shift 4
ctd=$lxcpath/$ct sdir=$lxcpath/$ct/snaps tmp=.plb-making-$name
# Sets $k to what is at a path, without following a symlink: missing, symlink, dir, file or other.
kind_of() {
  if [ -L "$1" ]; then k=symlink; elif [ -d "$1" ]; then k=dir; elif [ -f "$1" ]; then k="file"
  elif [ -e "$1" ]; then k=other; else k=missing; fi
}
# Sets $state as clone.sh's state_of does: what lxc-info says, UNKNOWN if nothing, "" if it fails.
state_of() { if state=$(lxc-info -n "$ct" -P "$lxcpath" -s -H 2>/dev/null); then state=${state:-UNKNOWN}; else state=; fi; }
# cd into snaps/ (made when missing and $1 is 1; returns 1 when missing and $1 is 0), never through a symlink.
enter_snaps() {
  kind_of "$ctd"
  if [ "$k" = missing ] && [ "$1" = 0 ]; then return 1; fi
  [ "$k" = dir ] || fail "$ctd is $k, not the container's directory"
  kind_of "$sdir"
  case $k in
  missing) [ "$1" = 1 ] || return 1; mkdir -- "$sdir" ;;
  symlink) fail "$sdir is a symlink; snapshots are made only in a real directory there: remove the symlink (what it points at is left alone)" ;;
  file|other) fail "$sdir is not a directory" ;;
  esac
  real=$(cd -P -- "$ctd" && pwd -P)
  cd -P -- "$sdir"
  [ "$(pwd -P)" = "$real/snaps" ] || fail "$sdir was replaced while in use"
}
# Deletes the subvolume $1 (relative to snaps/) and every subvolume below it, after clearing their
# read-only flags (a read-only parent keeps its nested ones: all are cleared first, then deleted deepest
# first). Walks the tree only if the plain delete fails, which it does when there are nested ones.
delete_tree() {
  btrfs property set -ts "$1" ro false
  if btrfs subvolume delete "$1" >/dev/null 2>&1; then return 0; fi
  find "$1" -mindepth 1 -type d -inum "$SUBVOL_INO" -exec btrfs property set -ts {} ro false \;
  find "$1" -depth -type d -inum "$SUBVOL_INO" -exec btrfs subvolume delete {} + >/dev/null
}
# Removes a build left by a make cut short (in snaps/), thawing the container first if that build froze it.
drop_making() {
  kind_of "$tmp"
  case $k in
  missing) return 0 ;;
  dir) ;;
  *) fail "$sdir/$tmp is a $k, not a build of this provider; remove it" ;;
  esac
  if [ -e "$tmp/frozen" ]; then
    state_of
    if [ "$state" = FROZEN ]; then lxc-unfreeze -n "$ct" -P "$lxcpath"; kv thawed 1; fi
    rm -f -- "$tmp/frozen"
  fi
  if is_subvol "$tmp/rootfs"; then delete_tree "$tmp/rootfs"; fi
  rm -rf -- "$tmp"
  kv dropped_build 1
}
# The nested subvolumes of the container's rootfs, relative to it, NUL-terminated. `btrfs subvolume list -o`
# (the rootfs's direct children, read from the filesystem's tree of subvolumes: no walk of the rootfs)
# says whether there are any; only then is the tree walked for their paths (list prints them relative
# to the filesystem's top, which the rootfs's own path may not be a prefix of). A list that fails walks.
nested_of_rootfs() {
  if children=$(btrfs subvolume list -o "$ctd/rootfs" 2>/dev/null) && [ -z "$children" ]; then return 0; fi
  find "$ctd/rootfs" -mindepth 1 -type d -inum "$SUBVOL_INO" -printf '%P\0'
}
op_inspect() { # [SCOPE]: all (default: also lists the rootfs's nested subvolumes), read, or made
  scope=${1:-all} snapk=
  if [ "$scope" = made ]; then inspect_made; return 0; fi
  if command -v lxc-freeze >/dev/null 2>&1; then kv has_lxc_freeze 1; else kv has_lxc_freeze 0; fi
  kind_of "$ctd"
  kv ct_dir "$k"
  if [ "$k" = dir ]; then
    kv ct_fstype "$(stat -f -c %T "$ctd")"
    state_of
    kv ct_state "$state"
    if is_subvol "$ctd/rootfs"; then kv ct_subvol 1; subvol_fields "$ctd/rootfs" ct; printf %s "$fields"
    else kv ct_subvol 0; fi
    kind_of "$sdir"
    kv snaps "$k"
    if [ "$k" = dir ]; then
      kind_of "$sdir/$tmp"
      kv making "$k"
      if [ -e "$sdir/$tmp/frozen" ]; then kv making_frozen 1; else kv making_frozen 0; fi
      kind_of "$sdir/$name"
      kv snap_dir "$k"
      if [ "$k" = dir ]; then
        kind_of "$sdir/$name/rootfs"
        if [ "$k" = dir ] && is_subvol "$sdir/$name/rootfs"; then k=subvol; fi
        kv snap_rootfs "$k"
        snapk=$k
        kind_of "$sdir/$name/config"
        kv snap_config "$k"
      fi
    fi
  fi
  printf '@@config\0'
  if [ -f "$ctd/config" ]; then cat -- "$ctd/config"; fi
  printf '\0@@snap_show\0'
  if [ "$snapk" = subvol ]; then LC_ALL=C btrfs subvolume show "$sdir/$name/rootfs"; fi
  printf '\0@@snap_ts\0'
  if [ "$snapk" = subvol ] && [ -f "$sdir/$name/ts" ] && [ ! -L "$sdir/$name/ts" ]; then head -c 100 -- "$sdir/$name/ts"; fi
  printf '\0@@snap_nested\0'
  if [ "$snapk" = subvol ] && [ -f "$sdir/$name/nested" ] && [ ! -L "$sdir/$name/nested" ]; then head -c 65536 -- "$sdir/$name/nested"; fi
  printf '\0@@nested\0'
  if [ "$scope" = all ] && is_subvol "$ctd/rootfs"; then nested_of_rootfs; fi
}
# What the provider reads after make, and nothing else: the snapshot it just made and renamed into place
# (its `btrfs subvolume show`, and the nested list of an "include" make). make checked the rest itself;
# each process here costs about a millisecond or two, and a full read inspection is ten of them.
inspect_made() {
  printf 'ct_dir=dir\nsnaps=dir\nsnap_dir=dir\nsnap_rootfs=subvol\nsnap_config=file\n@@config\0\0@@snap_show\0'
  LC_ALL=C btrfs subvolume show "$sdir/$name/rootfs"
  printf '\0@@snap_ts\0\0@@snap_nested\0'
  if [ -f "$sdir/$name/nested" ] && [ ! -L "$sdir/$name/nested" ]; then head -c 65536 -- "$sdir/$name/nested"; fi
  printf '\0@@nested\0'
}
# Snapshots every nested subvolume of the container into its place in the build ($tmp/rootfs, writable
# until done): a btrfs snapshot holds an empty directory with inode 2 where a nested subvolume was, and
# each one found in the build is replaced by a snapshot of the subvolume at that path of the container
# (which must still be one, reached through real directories only), then walked again for its own.
place_nested() {
  realroot=$(cd -P -- "$ctd/rootfs" && pwd -P)
  while :; do
    placed=$(find "$tmp/rootfs" -mindepth 1 -type d -inum 2 -exec sh -c '
      sr=$1 br=$2 ino=$3; shift 3
      for p; do
        rel=${p#"$br"/}
        at=$(cd -P -- "$sr/$rel" 2>/dev/null && pwd -P) || at=
        if [ "$at" != "$sr/$rel" ] || [ "$(stat -c %i -- "$at")" != "$ino" ]; then
          printf "%s: not a subvolume reached through real directories in the container any more; not snapshotting it\n" "$sr/$rel" >&2
          exit 1
        fi
        rmdir -- "$p"
        btrfs subvolume snapshot -- "$at" "$p" >/dev/null
        # The directory holding it keeps the mtime it has in the container (the rmdir and the snapshot set it).
        touch -c -m -r "$(dirname -- "$at")" -- "$(dirname -- "$p")"
        printf "%s\n" "$rel"
      done' plb-nested "$realroot" "$tmp/rootfs" "$SUBVOL_INO" {} +)
    [ -n "$placed" ] || break
    printf '%s\n' "$placed" >>"$tmp/nested"
  done
}
op_make() { # IFRUNNING(freeze|live|fail) NESTED(0|1)
  ifr=$1 nested=$2
  frozen=0 t0=0 t1=0
  # shellcheck disable=SC2317 # run by the EXIT trap below
  undo() {
    rc=$?
    if [ "$frozen" = 1 ]; then lxc-unfreeze -n "$ct" -P "$lxcpath" || true; rm -f -- "$tmp/frozen"; fi
    if [ "$rc" != 0 ] && [ -d "$tmp" ] && [ ! -L "$tmp" ]; then
      if is_subvol "$tmp/rootfs"; then delete_tree "$tmp/rootfs" || true; fi
      rm -rf -- "$tmp"
    fi
  }
  enter_snaps 1
  kind_of "$name"
  if [ "$k" != missing ]; then printf '%s\n' "$sdir/$name already exists ($k)" >&2; exit "$EXIT_NAME_TAKEN"; fi
  drop_making
  is_subvol "$ctd/rootfs" || fail "$ctd/rootfs is not a btrfs subvolume"
  trap undo EXIT
  # A dropped connection (HUP, or PIPE on the next write) must still thaw the container.
  trap 'exit 1' HUP INT TERM PIPE
  mkdir -- "$tmp"
  state_of
  kv state "$state"
  freeze=0
  case $state in
  RUNNING) case $ifr in fail) fail "$ct is RUNNING" ;; freeze) freeze=1 ;; esac ;;
  STOPPED|FROZEN) ;;
  *) fail "cannot tell the state of $ct (lxc-info says '$state')" ;;
  esac
  hold "$name" snapshot
  if [ "$freeze" = 1 ]; then
    # The marker first, on disk: a run killed while the container is frozen leaves it for the next one.
    : >"$tmp/frozen"
    sync -- "$tmp/frozen" "$tmp"
    t0=$(date +%s%N)
    frozen=1
    freeze_bounded "$ct" "$lxcpath" ||
      fail "$ct did not freeze within 10 s, 3 times (a task of it would not stop); it runs on, thawed: try again, or set ifRunning: \"live\""
    hold "$name" frozen
  fi
  if [ "$nested" = 1 ]; then
    btrfs subvolume snapshot -- "$ctd/rootfs" "$tmp/rootfs" >/dev/null
    place_nested
  else
    btrfs subvolume snapshot -r -- "$ctd/rootfs" "$tmp/rootfs" >/dev/null
  fi
  if [ "$frozen" = 1 ]; then
    lxc-unfreeze -n "$ct" -P "$lxcpath"
    t1=$(date +%s%N)
    frozen=0
    rm -f -- "$tmp/frozen"
  fi
  if [ "$nested" = 1 ]; then
    find "$tmp/rootfs" -type d -inum "$SUBVOL_INO" -exec btrfs property set -ts {} ro true \;
  elif ! children=$(btrfs subvolume list -o "$ctd/rootfs") || [ -n "$children" ]; then
    # The inspection found none; one made since would be an empty directory in the snapshot. Read from the
    # filesystem's tree of subvolumes, not by a walk of the snapshot: its cost does not grow with the tree.
    fail "$ct's rootfs holds a nested subvolume made since the inspection (${children##* path }); it would be an empty directory in the snapshot: run again"
  fi
  # The config as LXC's own snapshots have it: the container's, with lxc.rootfs.path at the snapshot.
  awk -v p="btrfs:$sdir/$name/rootfs" '
    /^[ \t]*lxc\.rootfs\.path[ \t]*=/ { print "lxc.rootfs.path = " p; next } { print }' "$ctd/config" >"$tmp/config"
  date '+%Y:%m:%d %H:%M:%S' | tr -d '\n' >"$tmp/ts"
  # Everything on disk before the rename: one syncfs commits the filesystem's transaction, which holds the
  # files, the build directory's entries and the subvolumes' flags.
  sync -f -- "$tmp"
  hold "$name" rename
  mv -n -T -- "$tmp" "$name"
  kind_of "$tmp"
  if [ "$k" != missing ]; then printf '%s\n' "$sdir/$name appeared while the snapshot was made" >&2; exit "$EXIT_NAME_TAKEN"; fi
  sync -- .
  trap - EXIT HUP INT TERM PIPE
  if [ "$t0" != 0 ]; then kv frozen_ns $((t1 - t0)); fi
  cd /
  inspect_made
}
op_delete() { # UUID: removes snaps/NAME only if its rootfs is the subvolume with that UUID
  if ! enter_snaps 0; then kv deleted none; return 0; fi
  drop_making
  kind_of "$name"
  case $k in
  missing) kv deleted none; return 0 ;;
  symlink) fail "$sdir/$name is a symlink, not this snapshot; remove it yourself (what it points at is left alone)" ;;
  file|other) fail "$sdir/$name is not a directory" ;;
  esac
  kind_of "$name/rootfs"
  if [ "$k" != missing ]; then
    is_subvol "$name/rootfs" || fail "$sdir/$name/rootfs is not a subvolume ($k); not this snapshot"
    subvol_fields "$name/rootfs" s
    case $fields in
    *"s UUID=$1$nl"*) ;;
    *) fail "$sdir/$name/rootfs is not the snapshot this resource made (UUID $1); it was replaced: remove it yourself or rename it" ;;
    esac
    delete_tree "$name/rootfs"
  fi
  rm -f -- "$name/config" "$name/ts" "$name/nested" "$name/comment"
  rmdir -- "$name" 2>/dev/null || fail "$sdir/$name still holds files this provider did not make: $(find "$name" -mindepth 1 -maxdepth 1 -printf '%f ' | head -c 300)"
  kv deleted 1
}

case $op in
inspect) op_inspect "$@" ;;
make) hold "$name" make; op_make "$@" ;;
delete) op_delete "$@" ;;
*) fail "unknown snapshot op $op" ;;
esac
