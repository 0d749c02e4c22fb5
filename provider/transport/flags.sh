# Inode flags (lsattr's letters: NOCOW C, immutable i, append-only a, ...): reading them on a tree and
# setting them on a copy. Sent after the prelude and before the scripts that use it (step.sh for
# conversions and restores, clone.sh for cross-host clones; see remote-scripts.ts), so both share one copy.
# The inode flags of exactly the paths listed in LIST (NUL-separated "./PATH", files and directories
# reached through real directories, so lsattr never follows a symlink or opens a device), as sorted "FLAGS
# ./PATH" NUL-terminated records into OUT (temporary files: OUT.*). Paths holding a newline (which would
# break lsattr's line output) are read one by one.
# shellcheck disable=SC2016 # the single-quoted script is the inner sh's
flags_at() ( # DIR LIST OUT
  cd "$1" || exit 1
  sed -z '/\n/d' "$2" | xargs -0 -r lsattr -d -- >"$3.raw" || exit 1
  tr '\n' '\0' <"$3.raw" >"$3.all"
  sed -z -n '/\n/p' "$2" | xargs -0 -r sh -c '
    for f; do l=$(lsattr -d -- "$f") || exit 255; printf "%s %s\0" "${l%% *}" "$f"; done' plb-flags >>"$3.all" ||
    exit 1
  LC_ALL=C sort -z "$3.all" >"$3"
  rm -f "$3.raw" "$3.all"
)
# The entries of DIR's walk that have a flag, as flags_at writes them, into OUT (temporary files: OUT.*).
# Inode 2 is where a snapshot holds a nested subvolume: an empty directory without flags (lsattr:
# "Operation not supported"); btrfs gives no other inode 2.
flags_of() ( # DIR OUT
  (cd "$1" && find . \( -type f -o -type d \) ! -inum 2 -print0) >"$2.list" || exit 1
  flags_at "$1" "$2.list" "$2.at" || exit 1
  { grep -z -v '^-* ' "$2.at" || [ $? = 1 ]; } >"$2" || exit 1
  rm -f "$2.list" "$2.at"
)
need_chattr() {
  { command -v lsattr && command -v chattr; } >/dev/null 2>&1 ||
    fail "lsattr/chattr are missing on the host: install e2fsprogs (inode flags such as NOCOW and immutable must be copied)"
}
# cp copies no inode flags, and cannot reflink a NOCOW file into a COW one (EINVAL): give every NOCOW file
# of the source an empty NOCOW twin in DST first, which cp then reflinks into (hardlinked names included:
# cp replaces the twin of a second name by a link to the first).
precreate_nocow() ( # FLAGS SRC DST
  # shellcheck disable=SC2016 # expanded by the inner sh
  grep -z '^[^ ]*C' "$1" | sed -z 's/^[^ ]* //' | (cd "$3" && xargs -0 -r sh -c '
    src=$1; shift
    for p; do
      [ -f "$src/$p" ] && [ ! -L "$src/$p" ] || continue
      mkdir -p -- "${p%/*}" && : >"$p" && chattr +C -- "$p" || exit 255
    done' plb-nocow "$2")
)
# Sets on DST's entries the flags the source had and the copy lacks, deepest first (after cp, so that
# immutable and append-only entries were written first; chattr changes no mtime and refuses symlinks).
# Only missing letters: chattr +c on a file that has its compression property resets it to zlib.
apply_flags() ( # FLAGS DST
  LC_ALL=C sort -rz "$1" | (cd "$2" && xargs -0 -r sh -c "$set_flags_sh" plb-flags add)
)

