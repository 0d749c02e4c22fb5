# Inspects one container in a single round trip. Args: LXCPATH NAME WALK(0|1|auto); 0 is a read (refresh):
# no tree walk, no inode flags, no mount points.
# Output: key=value lines, then NUL-terminated sections. Every list item is an absolute path
# (starts with /), so a section marker (starts with @@) can never be mistaken for one.
# A lone read or adoption runs this, and inspect-many.sh runs it for each container it cannot inspect
# itself, so it forks as little as it can: each process costs about a millisecond of host CPU.
set -u
lxcpath=$1 name=$2 walk=$3 mode=$3
d=$lxcpath/$name r=$d/rootfs
v=$(btrfs --version 2>/dev/null)
kv btrfs_version "${v%%"$nl"*}"
v=$(lxc-info --version 2>/dev/null)
kv lxc_version "${v%%"$nl"*}"
if command -v lxc-copy >/dev/null 2>&1; then kv has_lxc_copy 1; else kv has_lxc_copy 0; fi
if command -v getfattr >/dev/null 2>&1; then kv has_getfattr 1; else kv has_getfattr 0; fi
if [ ! -d "$d" ]; then kv container_dir missing; exit 0; fi
kv container_dir present
# One statfs for the filesystem type and the space available (what df calls Available: f_bavail * f_frsize).
# shellcheck disable=SC2046 # split on purpose: three fields, none empty or holding a space
set -- $(stat -f -c '%T %a %S' "$d")
fstype=$1
kv fstype "$fstype"
kv avail_bytes "$(($2 * $3))"
ino=
if [ -L "$r" ]; then kv rootfs symlink
elif [ -d "$r" ]; then
  ino=$(stat -c %i "$r")
  kv rootfs dir; kv rootfs_ino "$ino"
  # The top directory's inode flags: an immutable or append-only one cannot be renamed by the swap. A
  # read (WALK 0) plans nothing, and neither needs these nor the mount points below.
  if [ "$mode" != 0 ]; then f=$(lsattr -d -- "$r" 2>/dev/null) && kv rootfs_flags "${f%% *}"; fi
elif [ -e "$r" ]; then kv rootfs other
else kv rootfs missing; fi
for x in rootfs.plb-new rootfs.pre-btrfs rootfs.plb-old rootfs.plb-dir config.pre-btrfs rootfs.plb-restore rootfs.pre-restore; do
  if [ -e "$d/$x" ] || [ -L "$d/$x" ]; then kv "exists_$x" 1; else kv "exists_$x" 0; fi
done
state=$(lxc-info -n "$name" -P "$lxcpath" -s -H 2>/dev/null)
kv state "${state:-UNKNOWN}"
if [ "$fstype" = btrfs ] && [ "$ino" = "$SUBVOL_INO" ]; then subvol_fields "$r" subvol; printf %s "$fields"; fi
if [ "$walk" = auto ]; then
  # Already a subvolume with no interrupted work: nothing will be copied, so nothing to count.
  if [ "$ino" = "$SUBVOL_INO" ] && [ ! -e "$d/.plb-journal" ]; then walk=0; else walk=1; fi
fi
nested=0
if [ "$walk" = 1 ] && [ -n "$ino" ]; then
  if [ "$fstype" = btrfs ]; then
    # A nested subvolume is neither counted nor entered, only noted ("n"; awk then exits 1), and the few
    # trees that hold one are walked again below to list them: the usual tree needs no temp file to
    # hold the list (mktemp, cat, rm: three processes of the five this walk took).
    find "$r" -mindepth 1 \( -type d -inum "$SUBVOL_INO" -printf 'n\n' -prune \) -o -printf '%s\n' |
      awk '$0 == "n" { s++; next } { n++; b += $1 } END { printf "files=%d\nbytes=%.0f\n", n, b; exit (s > 0) }' ||
      nested=1
  else
    find "$r" -mindepth 1 -printf '%s\n' | awk '{n++; b+=$1} END {printf "files=%d\nbytes=%.0f\n", n, b}'
  fi
fi
printf '@@nested\0'
if [ $nested = 1 ]; then find "$r" -mindepth 1 -type d -inum "$SUBVOL_INO" -print0 -prune; fi
printf '@@mounts\0'
# mountinfo field 5 is the mount point with space, tab, newline and backslash written as octal escapes.
if [ "$mode" != 0 ]; then
  awk -v r="$r" '{ p = $5; if (index(p, r "/") == 1 || p == r) printf "%s%c", p, 0 }' /proc/self/mountinfo
fi
printf '@@journal\0'
if [ -f "$d/.plb-journal" ]; then cat "$d/.plb-journal"; fi
printf '\0@@config\0'
if [ -f "$d/config" ] && [ -r "$d/config" ]; then cat "$d/config"; else printf '@@unreadable'; fi
