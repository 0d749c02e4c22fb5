# Steps of a conversion, run in one round trip as:
#   sh -c "$this" plb-step LXCPATH NAME OP NARGS ARG... [OP NARGS ARG...]...
# Each step prints "@@step I OP" before it starts, so the caller knows how far a failed batch got.
# Every step is idempotent or checks the state it expects, so a step re-run after a crash is safe.
# Paths come from the validated LXCPATH and NAME; nothing is evaluated from arguments.
# Sections, in the order a conversion uses them: inode flags (for the copy and the catch-up); the copy of a
# stopped tree; the live pre-copy and catch-up; the verification; nested subvolumes; removing trees; the
# steps themselves.
set -eu
lxcpath=$1 name=$2
shift 2
d=$lxcpath/$name
j=$d/.plb-journal
sync_dir() { sync -f "$1" 2>/dev/null || sync; }
# Stdin, on disk, as the journal $j: written beside it, flushed, renamed over it, the directory flushed.
# syncfs, not fsync of the file and then of the directory: on btrfs the directory's fsync after a
# rename commits the whole transaction anyway, and measured slower than two syncfs (16 vs 13 ms).
write_journal() {
  cat >"$j.tmp"
  sync -f "$j.tmp" 2>/dev/null || sync
  mv -f "$j.tmp" "$j"
  sync_dir "$d"
}

# ---- Inode flags: flags_at, flags_of, need_chattr, precreate_nocow, apply_flags are in
# provider/transport/flags.sh, sent before this script (remote-scripts.ts), shared with clone.sh.

# ---- Copy of a stopped tree (the copy step) ----------------------------------------------------------------
# Reflink copy of SRC into DST with its inode flags, its list of SRC's flags kept in FLAGS; progress every
# EVERY entries. cp copies no flags and cannot reflink a NOCOW file into a COW one: NOCOW twins first.
copy_tree() { # SRC DST EVERY FLAGS
  flags_of "$1" "$4" || fail "could not read the inode flags of $1"
  precreate_nocow "$4" "$1" "$2" || fail "could not prepare the NOCOW files in $2"
  # -a keeps hardlinks, ACLs, owners, modes, times, special files; --preserve=xattr makes xattr
  # failures errors instead of silent (coreutils: -a alone does not diagnose them). The btrfs
  # compression property is the xattr btrfs.compression and travels with the others.
  { cp -a --preserve=xattr --reflink=always -v -- "$1/." "$2/" 2>&3; echo "rc=$?"; } 3>&2 |
    awk -v every="$3" '/^rc=[0-9]+$/ { rc = $0; next } { n++; if (n % every == 0) { print "progress " n; fflush() } } END { print rc }' |
    { rc=; while IFS= read -r line; do case $line in rc=*) rc=${line#rc=} ;; *) printf '%s\n' "$line" ;; esac; done; exit "${rc:-1}"; }
  apply_flags "$4" "$2" || fail "could not set the inode flags of the copy in $2"
}

# ---- Live conversion (ifRunning "live"): the pre-copy ------------------------------------------------------
# The pre-copy runs while the container does; its start time (host clock, ns) is kept in $j.since, taken
# before the copy reads anything. It copies from a read-only snapshot of the subvolume holding the rootfs
# (the precopy step).

# The top directory of the btrfs subvolume holding the real path DIR (not itself a subvolume): the
# nearest directory above it with the subvolume inode on the same device (each subvolume has its own).
holding_subvol() ( # DIR
  dev=$(stat -c %d -- "$1") || exit 1
  p=$1
  while [ -n "$p" ] && [ "$p" != / ]; do
    p=${p%/*}
    [ "$(stat -c %d:%i -- "${p:-/}")" = "$dev:$SUBVOL_INO" ] && { printf '%s\n' "${p:-/}"; exit 0; }
  done
  exit 1
)

# ---- Live conversion: the catch-up -------------------------------------------------------------------------
# The catch-up runs with the container stopped and touches only what changed since the pre-copy started:
# entries whose ctime (which no process can set) is at or after that time, minus a second (file times
# come from the kernel's coarse clock, which may lag the clock `date` reads by a tick), plus every path on
# one side only or of another type on each side (deletions, renames, a file replaced by a directory: a
# renamed directory keeps its children's ctimes, so its subtree is found by path). Paths come from find -P
# walks of both trees and are used below the walked roots only: no symlink in either tree is ever
# followed. The verification that follows decides, as after a full copy.
#
# Its lists are NUL-terminated records, "TYPE ./PATH" (find's %y), "INODE ./PATH" or "./PATH", sorted by
# path, in files of its work directory $wd named for what they hold.
paths() { sed -z 's/^[^ ]* //' "$@"; }     # the paths of records
parents() { sed -z 's,/[^/]*$,,'; }        # the directory of each path
bypath() { LC_ALL=C sort -z -t ' ' -k 2; } # records sorted by path

# Removes whole directories of the copy DST, their immutable and append-only flags cleared first; the
# NUL-separated "./PATH"s on stdin come from a find -P walk of DST (real directories only).
# shellcheck disable=SC2016 # the single-quoted script is the inner sh's
remove_dirs_of_copy() ( # DST
  cd "$1" && xargs -0 -r sh -c '
    for p; do
      [ -d "$p" ] && [ ! -L "$p" ] || continue
      find "$p" \( -type f -o -type d \) -exec chattr -i -a -- {} + 2>/dev/null
      rm -rf -- "$p" || exit 255
    done' plb-remove-dirs
)

# NUL-terminated records ("DEV:INODE ./PATH", or "./PATH") as text lines, their paths percent-encoded (%,
# space, tab, newline: what awk splits fields or records on), so that line tools (awk, sort, paste) can join
# them by path; dec_paths turns such lines of paths back into NUL-terminated ones.
enc_paths() {
  sed -z 's/%/%25/g; s/ /%20/g; s/\t/%09/g; s/\n/%0A/g; s/^\([0-9][0-9]*:[0-9][0-9]*\)%20/\1 /' "$1" | tr '\0' '\n'
}
dec_paths() { tr '\n' '\0' | sed -z 's/%0A/\n/g; s/%09/\t/g; s/%20/ /g; s/%25/%/g'; }

# The phases, in the order live_catchup runs them, in its subshell: they share its $src, $dst, $wd, $dirs0
# and $all0, and each exits that subshell when a command it checks fails.

# Walks the source once: src.entries ("TYPE ./PATH", sorted), src.dirs ("INODE ./PATH" of directories),
# src.newer (entries changed since the pre-copy started) and src.multi ("DEV:INODE ./PATH" of files with
# more than one link: see catchup_relink).
catchup_walk_source() {
  (cd "$src" && find -P . -fprintf "$wd/src.entries" '%y %p\0' , \( -type f -links +1 -fprintf "$wd/src.multi" '%D:%i %p\0' \) \
    , \( -newercm "$wd/ref" -fprintf "$wd/src.newer" '%y %p\0' \) , \( -type d -fprintf "$wd/src.dirs" '%i %p\0' \)) || exit 1
  LC_ALL=C sort -z -o "$wd/src.entries" "$wd/src.entries" || exit 1
}

# A directory at a path where another one was at the pre-copy (renamed over it, swapped, or deleted and
# made again) may hold entries whose ctimes predate the pre-copy: its whole subtree is copied again. Its
# copy is removed first (paths from a find -P walk of the copy: real directories only), so that the
# comparison finds that subtree in the source only. Writes copy.entries, the copy's "TYPE ./PATH": those
# of the image it was copied from, unless whole directories were removed here, which a walk then lists.
catchup_replaced_dirs() {
  LC_ALL=C sort -z "$wd/src.dirs" | LC_ALL=C comm -z -13 "$dirs0" - | paths | LC_ALL=C sort -z >"$wd/replaced.dirs" ||
    exit 1
  if [ -s "$wd/replaced.dirs" ]; then
    (cd "$dst" && find -P . -type d -print0) | LC_ALL=C sort -z | LC_ALL=C comm -z -12 - "$wd/replaced.dirs" |
      remove_dirs_of_copy "$dst" || exit 1
    (cd "$dst" && find -P . -printf '%y %p\0') | LC_ALL=C sort -z >"$wd/copy.entries" || exit 1
  else
    cp -- "$all0" "$wd/copy.entries" || exit 1
  fi
}

# Compares the entries of both trees: gone (in the copy only, or of another type there), src.only (in the
# source only, or of another type there), changed (src.only and src.newer); the copy's paths by kind; and
# touched, every gone or changed path and its directory.
catchup_compare() {
  LC_ALL=C comm -z -13 "$wd/src.entries" "$wd/copy.entries" | bypath >"$wd/gone" || exit 1
  LC_ALL=C comm -z -23 "$wd/src.entries" "$wd/copy.entries" >"$wd/src.only" || exit 1
  cat "$wd/src.only" "$wd/src.newer" | LC_ALL=C sort -z -u | bypath >"$wd/changed" || exit 1
  sed -z -n 's/^d //p' "$wd/copy.entries" | LC_ALL=C sort -z >"$wd/copy.dirs"
  sed -z -n 's/^f //p' "$wd/copy.entries" | LC_ALL=C sort -z >"$wd/copy.files"
  LC_ALL=C sort -z -m "$wd/copy.files" "$wd/copy.dirs" >"$wd/copy.files+dirs"
  sed -z '/^d /d; s/^[^ ]* //' "$wd/copy.entries" | LC_ALL=C sort -z >"$wd/copy.nondirs"
  { paths "$wd/gone" "$wd/changed"; paths "$wd/gone" "$wd/changed" | parents; } | LC_ALL=C sort -z -u >"$wd/touched"
}

# Clears immutable and append-only on the touched files and directories of the copy (their flags come
# back from the source in catchup_flags): listed in unlock.
catchup_unlock() {
  LC_ALL=C comm -z -12 "$wd/touched" "$wd/copy.files+dirs" >"$wd/unlock" || exit 1
  flags_at "$dst" "$wd/unlock" "$wd/unlock.flags" || exit 1
  { grep -z '^[^ ]*[ia]' "$wd/unlock.flags" || [ $? = 1 ]; } | paths | (cd "$dst" && xargs -0 -r chattr -i -a --) ||
    exit 1
}

# The changed files that cp can rewrite in place (same inode, so their directory's mtime stays: restoring
# it costs a process per directory), into inplace: a regular file on both sides, with one link on both
# sides (never written through to other names), without xattrs in the copy (cp would keep those the source
# dropped), and with the same NOCOW flag on both sides (cp cannot reflink across a difference). Names with
# a backslash or control character are not tried.
catchup_inplace() {
  sed -z -n 's/^f //p' "$wd/changed" >"$wd/changed.files"
  paths "$wd/src.multi" | LC_ALL=C sort -z >"$wd/src.multi.paths"
  LC_ALL=C comm -z -12 "$wd/copy.files" "$wd/changed.files" | LC_ALL=C comm -z -23 - "$wd/src.multi.paths" |
    sed -z '/[\\[:cntrl:]]/d' >"$wd/inplace.try" || exit 1
  (cd "$dst" && xargs -0 -r stat --printf '%h %n\0' -- <"$wd/inplace.try") | sed -z -n 's/^1 //p' >"$wd/inplace.onelink" ||
    exit 1
  : >"$wd/inplace.hasxattr"
  if [ -s "$wd/inplace.onelink" ] && command -v getfattr >/dev/null 2>&1; then
    (cd "$dst" && xargs -0 -r getfattr -h -m - --absolute-names -- <"$wd/inplace.onelink" 2>/dev/null) |
      sed -n 's/^# file: //p' | tr '\n' '\0' | LC_ALL=C sort -z >"$wd/inplace.hasxattr"
  fi
  LC_ALL=C sort -z "$wd/inplace.onelink" | LC_ALL=C comm -z -23 - "$wd/inplace.hasxattr" >"$wd/inplace.noxattr" || exit 1
  flags_at "$src" "$wd/inplace.noxattr" "$wd/inplace.src.flags" &&
    flags_at "$dst" "$wd/inplace.noxattr" "$wd/inplace.copy.flags" || exit 1
  # "C ./PATH" or "- ./PATH": NOCOW or not, on each side.
  for s in src copy; do
    sed -z 's/^[^ ]*C[^ ]* /C /; t; s/^[^ ]* /- /' "$wd/inplace.$s.flags" | LC_ALL=C sort -z >"$wd/inplace.$s.nocow" || exit 1
  done
  LC_ALL=C comm -z -12 "$wd/inplace.src.nocow" "$wd/inplace.copy.nocow" | paths | LC_ALL=C sort -z >"$wd/inplace" || exit 1
}

# Removes the gone directories of the copy whole (their flags cleared first), then every non-directory of
# the copy that is gone or will be copied again, except those rewritten in place: listed in removed. After
# this, every path of the source resolves in the copy through real directories or not at all.
catchup_remove() {
  sed -z -n 's/^d //p' "$wd/gone" | remove_dirs_of_copy "$dst" || exit 1
  paths "$wd/gone" "$wd/changed" | LC_ALL=C sort -z -u | LC_ALL=C comm -z -12 - "$wd/copy.nondirs" |
    LC_ALL=C comm -z -23 - "$wd/inplace" | tee "$wd/removed" | (cd "$dst" && xargs -0 -r rm -f --) || exit 1
}

# Makes the changed directories (changed.dirs) that the copy lacks, parents first.
catchup_new_dirs() {
  sed -z -n 's/^d //p' "$wd/changed" >"$wd/changed.dirs"
  (cd "$dst" && xargs -0 -r mkdir -p -- <"$wd/changed.dirs") || exit 1
}

# Copies the changed non-directories: NOCOW twins first (as the pre-copy does), then cp.
catchup_copy_files() {
  flags_at "$src" "$wd/changed.files" "$wd/changed.flags" || exit 1
  precreate_nocow "$wd/changed.flags" "$src" "$dst" || exit 1
  sed -z '/^d /d; s/^[^ ]* //' "$wd/changed" | (cd "$src" && xargs -0 -r cp -a --preserve=xattr --reflink=always --parents -t "$dst" --) ||
    exit 1
}

# Makes the copied files' hardlinks again. cp keeps them only among the names of one run (xargs splits a
# long list into several), and a name copied again under a moved directory is linked to nothing: every
# copied name of a source inode with several names is linked again, in the copy, to the first of its names
# that was not copied (or, when all were, to the first): records as text lines with their paths encoded.
catchup_relink() {
  enc_paths "$wd/changed.files" >"$wd/changed.files.enc" && enc_paths "$wd/src.multi" >"$wd/src.multi.enc" || exit 1
  # "DEV:INODE COPIED(0|1) PATH", by inode, then the pairs "FIRST\nNAME" to link.
  awk 'NR == FNR { c[$0] = 1; next } { print $1, (($2 in c) ? 1 : 0), $2 }' "$wd/changed.files.enc" "$wd/src.multi.enc" |
    LC_ALL=C sort -k 1,1 -k 2,2n | awk '$1 != ino { ino = $1; first = $3; next } $2 == 1 { print first; print $3 }' \
    >"$wd/relink.pairs" || exit 1
  # Only the pairs not already one inode in the copy.
  dec_paths <"$wd/relink.pairs" | (cd "$dst" && xargs -0 -r stat --printf '%d:%i\n' --) >"$wd/relink.inodes" || exit 1
  [ "$(wc -l <"$wd/relink.inodes")" = "$(wc -l <"$wd/relink.pairs")" ] || exit 1
  paste -d ' ' "$wd/relink.inodes" "$wd/relink.pairs" |
    awk 'NR % 2 { i = $1; f = $2; next } $1 != i { print f; print $2 }' | dec_paths |
    (cd "$dst" && xargs -0 -r -n 2 ln -f -T --) || exit 1
}

# Gives the changed directories the source's owner, mode and xattrs (ACLs included).
# shellcheck disable=SC2016 # the single-quoted script is the inner sh's
catchup_dir_meta() {
  (cd "$dst" && xargs -0 -r sh -c '
    src=$1; shift
    for p; do
      chown --reference="$src/$p" -- "$p" && chmod --reference="$src/$p" -- "$p" || exit 255
      command -v getfattr >/dev/null 2>&1 || continue
      getfattr -h -m - --absolute-names -- "$p" 2>/dev/null | sed -n "/^[^#]/p" | while IFS= read -r x; do
        setfattr -h -x "$x" -- "$p" || exit 1
      done || exit 255
      (cd "$src" && getfattr -h -d -m - -e hex -- "$p") | setfattr -h --restore=- || exit 255
    done' plb-dirmeta "$src" <"$wd/changed.dirs") || exit 1
}

# Sets the source's mtime, deepest first, on every directory whose entries or metadata changed here
# (mtime.dirs).
# shellcheck disable=SC2016 # the single-quoted script is the inner sh's
catchup_dir_mtimes() {
  # removed holds bare paths, not records.
  { { paths "$wd/gone" "$wd/src.only"; cat "$wd/removed"; } | parents; cat "$wd/changed.dirs"; } |
    LC_ALL=C sort -z -u >"$wd/mtime.any"
  sed -z -n 's/^d //p' "$wd/src.entries" | LC_ALL=C sort -z | LC_ALL=C comm -z -12 - "$wd/mtime.any" >"$wd/mtime.dirs"
  LC_ALL=C sort -z -r "$wd/mtime.dirs" | (cd "$dst" && xargs -0 -r sh -c '
    src=$1; shift
    for p; do touch -c -m -r "$src/$p" -- "$p" || exit 255; done' plb-mtime "$src") || exit 1
}

# Gives every touched file and directory still there exactly the source's inode flags, deepest first.
catchup_flags() {
  { paths "$wd/changed"; cat "$wd/mtime.dirs" "$wd/unlock"; } | LC_ALL=C sort -z -u >"$wd/flags.any"
  sed -z -n 's/^[fd] //p' "$wd/src.entries" | LC_ALL=C sort -z | LC_ALL=C comm -z -12 - "$wd/flags.any" >"$wd/flags.paths"
  flags_at "$src" "$wd/flags.paths" "$wd/flags.src" || exit 1
  flags_at "$dst" "$wd/flags.paths" "$wd/flags.copy" || exit 1
  LC_ALL=C comm -z -23 "$wd/flags.src" "$wd/flags.copy" | LC_ALL=C sort -z -r -t ' ' -k 2 |
    (cd "$dst" && xargs -0 -r sh -c "$set_flags_sh" plb-flags exact) || exit 1
}

# Brings the copy DST up to date with SRC. WORKDIR holds ref, whose mtime is the threshold; DIRS ("INODE
# ./PATH" of the image's directories) and ALL ("TYPE ./PATH" of its entries, sorted) are the pre-copy's.
live_catchup() ( # SRC DST WORKDIR DIRS ALL
  src=$1 dst=$2 wd=$3 dirs0=$4 all0=$5
  catchup_walk_source
  catchup_replaced_dirs
  catchup_compare
  catchup_unlock
  catchup_inplace
  catchup_remove
  catchup_new_dirs
  catchup_copy_files
  catchup_relink
  catchup_dir_meta
  catchup_dir_mtimes
  catchup_flags
  printf 'caught up: %s changed, %s gone\n' "$(tr -cd '\0' <"$wd/changed" | wc -c)" "$(tr -cd '\0' <"$wd/gone" | wc -c)" >&2
)

# ---- Verification: both trees' metadata (the verify step) --------------------------------------------------
# One walk of DIR, as TAG, into files under $w: TAG.main (every entry's path, type, mode, owner, size,
# mtime, nlink and link target), TAG.hl (inode and path of every non-directory with more than one link)
# and TAG.dev (block and char devices). Both trees are walked at the same time.
walk() (
  cd "$1" && find . -printf '%p\n%y %#m %U %G %s %T@ %n\n%l\0' \
    , \( ! -type d -links +1 -fprintf "$w/$2.hl" '%D:%i %p\0' \) \
    , \( \( -type b -o -type c \) -fprint0 "$w/$2.dev" \) >"$w/$2.main"
)
# Every xattr and ACL of DIR, one line per entry that has any (its path and each name=hex value, joined by
# \001; getfattr escapes control characters in names), sorted, into $w/TAG.xattr; none if getfattr is missing.
# -h: a symlink's own xattrs (lgetxattr); without it getfattr reads its target's, which for an absolute
# link in a container's tree is a host file.
xattrs() ( # DIR TAG
  cd "$1" || exit 1
  command -v getfattr >/dev/null 2>&1 || exit 0
  getfattr -R -P -h -d -m - -e hex . 2>/dev/null | awk 'BEGIN { RS = "" } { gsub(/\n/, "\001"); print }' |
    LC_ALL=C sort >"$w/$2.xattr"
)
# The verification's three walks of one tree (walk, xattrs, flags_of) at once, into $w as TAG.*; fails
# if any of them did, once all have ended. With "noflags", TAG.flags comes from elsewhere (a copy's list).
tree_walks() ( # DIR TAG [noflags]
  r=0 q3=
  walk "$1" "$2" & q1=$!
  xattrs "$1" "$2" & q2=$!
  if [ "${3:-}" != noflags ]; then flags_of "$1" "$w/$2.flags" & q3=$!; fi
  wait $q1 || r=1
  wait $q2 || r=1
  if [ -n "$q3" ]; then wait "$q3" || r=1; fi
  exit $r
)
# The report lines of both walked trees A and B: for each, the sha256 of its sorted manifest, its entry
# count, and the sha256 of its device numbers, xattrs and inode flags. In few processes (at a thousand
# entries, each costs about as much as a walk): one grep counts and one sha256sum hashes for both trees.
summary() ( # A B
  LC_ALL=C sort -z -o "$w/a.sorted" "$w/a.main" & s1=$!
  LC_ALL=C sort -z -o "$w/b.sorted" "$w/b.main" & s2=$!
  # Device numbers of the block and char devices each walk found; none: an empty list, and no stat.
  : >"$w/a.rdev"
  : >"$w/b.rdev"
  if [ -s "$w/a.dev" ]; then (cd "$1" && xargs -0 -r stat -c '%t:%T %n' <"$w/a.dev") | LC_ALL=C sort >"$w/a.rdev"; fi
  if [ -s "$w/b.dev" ]; then (cd "$2" && xargs -0 -r stat -c '%t:%T %n' <"$w/b.dev") | LC_ALL=C sort >"$w/b.rdev"; fi
  { wait $s1 && wait $s2; } || exit 1
  cd "$w" || exit 1
  # "a.main:N" and "b.main:N": NUL-terminated records (grep exits 1 if it counts none: a count the provider refuses).
  counts=$(grep -zc '' a.main b.main) || [ $? = 1 ] || exit 1
  ax=unavailable bx=unavailable
  set -- a.sorted a.rdev a.flags b.sorted b.rdev b.flags
  if [ -e a.xattr ]; then set -- "$@" a.xattr; fi
  if [ -e b.xattr ]; then set -- "$@" b.xattr; fi
  sums=$(sha256sum -- "$@") || exit 1
  set -f
  IFS=$nl
  for l in $sums $counts; do
    case $l in
      *"  a.sorted") am=${l%% *} ;; *"  a.rdev") ar=${l%% *} ;; *"  a.flags") af=${l%% *} ;; *"  a.xattr") ax=${l%% *} ;;
      *"  b.sorted") bm=${l%% *} ;; *"  b.rdev") br=${l%% *} ;; *"  b.flags") bf=${l%% *} ;; *"  b.xattr") bx=${l%% *} ;;
      a.main:*) ac=${l#a.main:} ;; b.main:*) bc=${l#b.main:} ;;
    esac
  done
  # A value missing from sha256sum's or grep's output is an unset variable here: set -u ends the subshell.
  printf 'a_main=%s\na_count=%s\na_rdev=%s\na_xattr=%s\na_flags=%s\n' "$am" "$ac" "$ar" "$ax" "$af"
  printf 'b_main=%s\nb_count=%s\nb_rdev=%s\nb_xattr=%s\nb_flags=%s\n' "$bm" "$bc" "$br" "$bx" "$bf"
)

# ---- Nested subvolumes (the move-nested step) --------------------------------------------------------------
# The move of one nested subvolume SUBVOL to PLACE in the new tree (sh -c "$move_nested_sh" plb-nested
# SUBVOL PLACE, run by nested_into, which refuses a PLACE that is a symlink or reached through one),
# replacing the flattened copy cp made there (its immutable and append-only flags cleared first).
# Replacing an entry changes its directory's mtime: the verified one is put back. Exits with mv's status.
# shellcheck disable=SC2016 # expanded by the inner sh
move_nested_sh='
  ref=$(mktemp)
  touch -r "${2%/*}" "$ref"
  if [ -e "$2" ]; then
    if [ -d "$2" ] && command -v chattr >/dev/null 2>&1; then
      find "$2" \( -type f -o -type d \) -print0 | xargs -0 -r chattr -i -a -- 2>/dev/null || true
    fi
    rm -rf -- "$2"
  fi
  mv -T -- "$1" "$2"
  r=$?
  touch -r "$ref" "${2%/*}"
  rm -f "$ref"
  exit $r'

# ---- Removing trees (a discarded copy, the pre-copy's snapshot, the old tree) ------------------------------
# Clears immutable and append-only flags in a tree we are about to remove (rm -rf cannot delete them).
unlock() ( # DIR
  if [ ! -d "$1" ] || [ -L "$1" ] || ! command -v chattr >/dev/null 2>&1; then exit 0; fi
  f=$(mktemp)
  trap 'rm -f "$f" "$f".*' EXIT
  flags_of "$1" "$f" || exit 1
  grep -z '^[^ ]*[ia]' "$f" | sed -z 's/^[^ ]* //' | (cd "$1" && xargs -0 -r chattr -i -a --)
)
# PATH: a subvolume (deleted whole, whatever its flags) or a directory. Most trees hold no immutable or
# append-only entry: rm -rf alone removes them, and only a tree it could not remove whole is unlocked (a
# walk reading every entry's flags) and removed again.
remove_tree() {
  if [ -e "$1" ] || [ -L "$1" ]; then
    if is_subvol "$1"; then btrfs subvolume delete "$1" >/dev/null
    else rm -rf -- "$1" 2>/dev/null || { unlock "$1" && rm -rf -- "$1"; }; fi
  fi
}

# ---- Restore (restoreFrom): the rootfs becomes a writable snapshot of snaps/NAME/rootfs ------------------
# Refuses unless the snapshot's directories (snaps and snaps/NAME) are real directories and its rootfs a
# read-only subvolume, none of them a symlink: nothing here follows one, and btrfs snapshots the
# subvolume itself, never what its entries point to.
snapshot_ok() { # SNAP (<d>/snaps/NAME)
  for p in "${1%/*}" "$1" "$1/rootfs"; do
    if [ -L "$p" ]; then fail "$p is a symlink, not a snapshot's own directory (restoreFrom never follows one); remove it and make the snapshot again"; fi
  done
  [ -d "$1" ] || fail "there is no snapshot ${1##*/} of $name: $1 is missing; make the snapshot first (LxcSnapshot or lxc-snapshot) or correct restoreFrom"
  is_subvol "$1/rootfs" || fail "$1/rootfs is not a btrfs subvolume, so not a snapshot of $name; make the snapshot again"
  [ "$(btrfs property get -ts "$1/rootfs" ro 2>/dev/null)" = ro=true ] ||
    fail "$1/rootfs is not read-only, so it may have changed since it was taken; restore only from a read-only snapshot (btrfs property set -ts $1/rootfs ro true, if you know it is intact)"
}
# The value of one field of `btrfs subvolume show DIR` (UUID, Parent UUID...).
subvol_value() { btrfs subvolume show "$1" 2>/dev/null | sed -n "s/^[[:space:]]*$2:[[:space:]]*//p" | head -n 1; }

# ---- The steps ---------------------------------------------------------------------------------------------
step() {
op=$1
shift
case $op in
journal)    # PHASE OP WAS_RUNNING
  printf 'op=%s\nphase=%s\nwas_running=%s\n' "$2" "$1" "$3" | write_journal
  ;;
journal-clear)  # not flushed: a journal that a power loss brings back only makes the next run redo no-ops
  # A pre-copy's snapshot left by a crash during it first: if a power loss undoes what follows, the
  # journal that comes back leads the next run here again.
  remove_tree "$d/.plb-precopy"
  rm -f "$j" "$j.tmp" "$j.since" "$j.since.tmp" "$j.dirs" "$j.dirs.tmp" "$j.all" "$j.all.tmp"
  ;;
subvol-create)  # PATH (under d)
  [ -e "$1" ] && fail "$1 already exists"
  btrfs subvolume create "$1" >/dev/null
  ;;
mkdir-new)      # PATH
  [ -e "$1" ] && fail "$1 already exists"
  mkdir "$1"
  ;;
unswapped)      # CUR OLD: a rollback's first step; refuses once the swap's first rename may have happened
  { [ -e "$1" ] && [ ! -e "$2" ] && [ ! -L "$2" ]; } ||
    fail "the swap into $1 had started; not rolling back (the next run finishes it)"
  ;;
discard)        # PATH: remove a partial copy (subvolume or directory); absent is fine
  remove_tree "$1"
  ;;
copy)           # SRC DST EVERY: reflink copy of a stopped tree, progress every EVERY entries, inode flags too
  # The verification's walks of SRC start now, beside the copy (cp is one process, and 2 cores), and the
  # verify step that follows in this batch takes them over, with the copy's own list of SRC's inode
  # flags. A change to SRC after they started would slip between them: REF is made first, and the
  # verification refuses a SRC with any entry changed (ctime) after it.
  need_chattr
  pre=$(mktemp -d)
  : >"$pre/ref"
  w=$pre
  tree_walks "$1" a noflags & pre_pid=$!
  pre_src=$1
  trap 'kill $pre_pid 2>/dev/null; rm -rf "$pre"' EXIT
  copy_tree "$1" "$2" "$3" "$pre/a.flags"
  ;;
precopy)        # SRC DST EVERY: the live pre-copy, from a read-only snapshot of the subvolume holding SRC
  # The container runs: its tree changes under any walk of it, and a directory it swaps for a symlink
  # between a copier's look and its descent would send the copier through the symlink into the host's
  # files. So the copy is taken from a still image: a read-only snapshot (O(1)) of the subvolume that holds
  # SRC, which nothing running can change. The start time is read first: whatever changes after it,
  # whether or not the snapshot has it, the catch-up copies again.
  date +%s%N >"$j.since.tmp"
  mv -f -- "$j.since.tmp" "$j.since"
  snap=$d/.plb-precopy
  remove_tree "$snap"
  real=$(cd -P -- "$1" && pwd -P) || fail "cannot resolve $1"
  # A rootfs that is a subvolume (a revert) is snapshotted itself.
  if is_subvol "$real"; then top=$real; else top=$(holding_subvol "$real"); fi ||
    fail "cannot find the btrfs subvolume that holds $real (a bind mount of a directory?): \"live\" copies from a snapshot of it; use ifRunning \"restart\""
  btrfs subvolume snapshot -r "$top" "$snap" >/dev/null || fail "cannot snapshot $top (it holds $real) for the pre-copy"
  img=$snap${real#"${top%/}"}
  # Inode numbers are unique in a subvolume and a snapshot keeps them: the same one at that path is the
  # image of SRC, not of another directory the path reached through a mount.
  # And on the snapshot's own device: not through a symlink or mount that leads back out of it.
  [ "$(stat -c %d:%i -- "$img" 2>/dev/null)" = "$(stat -c %d -- "$snap"):$(stat -c %i -- "$real")" ] ||
    fail "the snapshot of $top does not hold $real at ${img#"$snap"} (a bind mount?): use ifRunning \"restart\""
  hold "$name" precopy-image
  # Which directory is at each path at the snapshot (a snapshot keeps inode numbers): one renamed over
  # another keeps its children's ctimes, so the catch-up finds it by its inode being new at that path.
  # And every entry of the image, which the copy will hold exactly: the catch-up's list of the copy.
  (cd "$img" && find -P . -fprintf "$j.all.tmp" '%y %p\0' , \( -type d -fprintf "$j.dirs.tmp" '%i %p\0' \)) ||
    fail "cannot list the entries of $1"
  for f in "$j.dirs.tmp" "$j.all.tmp"; do LC_ALL=C sort -z -o "$f" "$f" || fail "cannot sort $f"; done
  mv -f -- "$j.dirs.tmp" "$j.dirs" && mv -f -- "$j.all.tmp" "$j.all"
  need_chattr
  fl=$(mktemp)
  trap 'rm -f "$fl" "$fl".*' EXIT
  copy_tree "$img" "$2" "$3" "$fl"
  rm -f "$fl"
  trap - EXIT
  remove_tree "$snap"
  ;;
catchup)        # SRC DST: with the container stopped, only what changed since the pre-copy started
  since=$(cat "$j.since" 2>/dev/null) || fail "no pre-copy start time in $j.since; run again"
  case $since in '' | *[!0-9]*) fail "unreadable pre-copy start time in $j.since; run again" ;; esac
  [ "$(date +%s%N)" -ge "$since" ] || fail "the host clock went back during the pre-copy; run again"
  need_chattr
  { [ -f "$j.dirs" ] && [ -f "$j.all" ]; } || fail "no pre-copy lists in $j.dirs and $j.all; run again"
  cw=$(mktemp -d) pre=$(mktemp -d)
  # The container is stopped and the catch-up only reads the source: the verification's walks of the
  # source start now, beside it (2 cores: the catch-up is mostly one pipeline), and the verify step that
  # follows in this batch takes them over.
  w=$pre
  tree_walks "$1" a & pre_pid=$!
  pre_src=$1
  trap 'rm -rf "$cw"; kill $pre_pid 2>/dev/null; rm -rf "$pre"' EXIT
  touch -d "@$((since / 1000000000 - 1)).$(printf %09d $((since % 1000000000)))" "$cw/ref"
  live_catchup "$1" "$2" "$cw" "$j.dirs" "$j.all" || fail "could not bring $2 up to date with $1"
  rm -rf "$cw"
  trap 'kill $pre_pid 2>/dev/null; rm -rf "$pre"' EXIT
  ;;
verify)         # A B: compare both trees' metadata; six walks (three per tree) run at once, while the
                # copy is flushed to disk (the "swapping" journal's flush then finds little left to do).
                # After a catch-up in this batch, A's walks are the ones it started.
  need_chattr
  r=0
  if [ -n "${pre_pid:-}" ] && [ "${pre_src:-}" = "$1" ]; then
    w=$pre p1=$pre_pid pre_pid=
  else
    w=$(mktemp -d)
    tree_walks "$1" a & p1=$!
  fi
  trap 'rm -rf "$w"' EXIT
  sync -f "$2" 2>/dev/null & p0=$!
  tree_walks "$2" b & p2=$!
  wait "$p1" || r=1
  wait $p2 || r=1
  if [ $r != 0 ]; then
    kill $p0 2>/dev/null || true
    wait
    fail "could not walk both trees"
  fi
  wait $p0 || true
  # After a copy whose walks of the source ran beside it: nothing of the source may have changed since.
  if [ -e "$w/ref" ] && [ -n "$(find "$1" -newercm "$w/ref" -print -quit)" ]; then
    fail "$1 changed while it was being copied (was $name started, or its tree written to from the host?); the copy is discarded: run again"
  fi
  summary "$1" "$2" >"$w/report" || fail "could not summarize both trees"
  printf '@@a\0' >"$w/a.mark"
  printf '@@b\0' >"$w/b.mark"
  cat "$w/report" "$w/a.mark" "$w/a.hl" "$w/b.mark" "$w/b.hl"
  rm -rf "$w"
  trap - EXIT
  ;;
inspect)        # NONCE: the inspection after the batch (inspect-rootfs.sh, sent as the function inspect_rootfs,
                # WALK auto), printed after "@@inspect NONCE": one round trip fewer than inspecting on its own.
                # Read-only; if it fails, the provider inspects again on its own.
  printf '@@inspect %s\n' "$1"
  inspect_rootfs "$lxcpath" "$name" auto || :
  ;;
verify-diff)    # A B: the first differing manifest entries, for the error message
  ta=$(mktemp) tb=$(mktemp)
  (cd "$1" && find . -printf '%p %y %#m %U %G %s %T@ %n %l\0' | LC_ALL=C sort -z | tr '\0\n' '\n ') >"$ta"
  (cd "$2" && find . -printf '%p %y %#m %U %G %s %T@ %n %l\0' | LC_ALL=C sort -z | tr '\0\n' '\n ') >"$tb"
  diff "$ta" "$tb" | head -n 8 || true
  if command -v lsattr >/dev/null 2>&1 && flags_of "$1" "$ta" && flags_of "$2" "$tb"; then
    tr '\0\n' '\n ' <"$ta" >"$ta.txt"; tr '\0\n' '\n ' <"$tb" >"$tb.txt"
    diff "$ta.txt" "$tb.txt" | sed -n 's/^\([<>]\) /\1 flags /p' | head -n 8 || true
    rm -f "$ta.txt" "$tb.txt"
  fi
  if command -v getfattr >/dev/null 2>&1; then # "PATH NAME=VALUE..." per entry, values cut at 40 characters
    for t in "$1:$ta" "$2:$tb"; do
      (cd "${t%:*}" && getfattr -R -P -h -d -m - -e hex . 2>/dev/null) | awk 'BEGIN { RS = "" } {
        n = split($0, l, "\n"); s = substr(l[1], 9)
        for (i = 2; i <= n; i++) s = s " " (length(l[i]) > 40 ? substr(l[i], 1, 40) "..." : l[i])
        print s }' | LC_ALL=C sort >"${t##*:}"
    done
    diff "$ta" "$tb" | sed -n 's/^\([<>]\) /\1 xattrs /p' | head -n 8 || true
  fi
  rm -f "$ta" "$tb"
  ;;
swap)           # CUR NEW OLD: CUR -> OLD, NEW -> CUR; resumes a half-done swap
  cur=$1 new=$2 old=$3
  if [ -e "$cur" ] && [ -e "$new" ] && [ ! -e "$old" ]; then
    # Never from under a running container (started by hand or by autostart since its stop): what it
    # writes would go to the tree being swapped away, after the verification.
    case $(lxc-info -n "$name" -P "$lxcpath" -s -H 2>/dev/null) in
    RUNNING | FROZEN) fail "$name is running (started since it was stopped for the conversion); not swapping its rootfs: run again" ;;
    esac
    mv -- "$cur" "$old"; mv -- "$new" "$cur"
  elif [ ! -e "$cur" ] && [ -e "$new" ] && [ -e "$old" ]; then mv -- "$new" "$cur"
  elif [ -e "$cur" ] && [ ! -e "$new" ] && [ -e "$old" ]; then :
  else fail "cannot swap $new into $cur: unexpected state (cur/new/old exist: $([ -e "$cur" ] && echo y || echo n)/$([ -e "$new" ] && echo y || echo n)/$([ -e "$old" ] && echo y || echo n))"
  fi
  sync_dir "$d"
  ;;
write-config)   # EXPECTED_SHA BACKUP_NAME; new content on stdin
  c=$d/config
  tmp=$d/config.plb-tmp
  cat >"$tmp"
  have=$(sha256sum "$c" | cut -d' ' -f1)
  if [ "$have" != "$1" ]; then rm -f "$tmp"; fail "$c changed while the conversion ran; run again"; fi
  [ -e "$d/$2" ] || cp -p -- "$c" "$d/$2"
  chmod --reference="$c" "$tmp"
  chown --reference="$c" "$tmp"
  sync -f "$tmp" 2>/dev/null || sync
  mv -f -- "$tmp" "$c"
  sync_dir "$d"
  ;;
move-nested)    # FROM TO: move every subvolume nested in FROM to the same place in TO, by rename,
                # replacing the flattened copy cp made there (snapshots and cp are not recursive).
  nested_into "$1" "$2" outermost "a symlink on the way; not moving the nested subvolume there" "$move_nested_sh"
  sync_dir "$d"
  ;;
remove)         # PATH: delete the old tree (directory or subvolume)
  # Not flushed: if a power loss undoes the removal, the journal (still "swapped") makes the next run
  # remove it again. Only the copy must be durable before the swap, and the "swapping" journal made it so.
  remove_tree "$1"
  ;;
stop)
  lxc-stop -n "$name" -P "$lxcpath" -t 30
  ;;
start)          # idempotent: a rollback may find the container still running (failed before its stop), or
                # frozen by someone since (it runs; lxc-start would fail on it)
  case $(lxc-info -n "$name" -P "$lxcpath" -s -H 2>/dev/null) in RUNNING | FROZEN) return 0 ;; esac
  start_and_wait "$name" "$lxcpath"
  ;;
snapshot-check) # SNAP CUR KEEP: the snapshot is usable, and (KEEP 0) CUR holds no nested subvolume to lose
  snapshot_ok "$1"
  if [ "$3" = 0 ]; then
    nested=$(btrfs subvolume list -o "$2") || fail "cannot list the subvolumes below $2"
    [ -z "$nested" ] || fail "$2 holds nested subvolumes (${nested##* path }...), which removing the replaced rootfs would lose; set keepBackup: true (they stay in rootfs.pre-restore) or move them out first"
  fi
  ;;
journal-restore) # PHASE SNAPSHOT WAS_RUNNING: as journal, with the snapshot's name
  printf 'op=restore\nphase=%s\nsnapshot=%s\nwas_running=%s\n' "$1" "$2" "$3" | write_journal
  ;;
restore-snapshot) # SNAP NEW: a writable snapshot of SNAP/rootfs at NEW
  snapshot_ok "$1"
  if [ -e "$2" ] || [ -L "$2" ]; then fail "$2 already exists"; fi
  btrfs subvolume snapshot "$1/rootfs" "$2" >/dev/null
  ;;
restore-verify) # SNAP NEW: NEW is a writable snapshot of exactly SNAP/rootfs, which is still read-only
  snapshot_ok "$1"
  is_subvol "$2" || fail "$2 is not a subvolume; not swapping it in"
  su=$(subvol_value "$1/rootfs" UUID) pu=$(subvol_value "$2" "Parent UUID")
  if [ -z "$su" ] || [ "$su" != "$pu" ]; then
    fail "$2 is not a snapshot of $1/rootfs (its Parent UUID is ${pu:-unknown}, the snapshot's UUID ${su:-unknown}); not swapping it in"
  fi
  [ "$(btrfs property get -ts "$2" ro 2>/dev/null)" = ro=false ] || fail "$2 is not writable; not swapping it in"
  ;;
*) fail "unknown step $op" ;;
esac
}

i=0
while [ $# -gt 0 ]; do
  op=$1 n=$2
  shift 2
  i=$((i + 1))
  hold "$name" "$op"
  printf '@@step %d %s\n' "$i" "$op"
  step "$op" "$@"
  shift "$n"
done
