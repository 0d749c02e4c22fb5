# Inspects one container in a single round trip. Args: LXCPATH NAME WALK(0|1|auto)
# Output: key=value lines, then NUL-terminated sections. Every list item is an absolute path
# (starts with /), so a section marker (starts with @@) can never be mistaken for one.
set -u
lxcpath=$1 name=$2 walk=$3
d=$lxcpath/$name r=$d/rootfs
kv() { printf '%s=%s\n' "$1" "$2"; }
kv btrfs_version "$(btrfs --version 2>/dev/null | head -n1)"
kv lxc_version "$(lxc-info --version 2>/dev/null | head -n1)"
kv has_lxc_copy "$(command -v lxc-copy >/dev/null 2>&1 && echo 1 || echo 0)"
kv has_getfattr "$(command -v getfattr >/dev/null 2>&1 && echo 1 || echo 0)"
if [ ! -d "$d" ]; then kv container_dir missing; exit 0; fi
kv container_dir present
kv fstype "$(stat -f -c %T "$d")"
kv avail_bytes "$(df -P -B1 "$d" | awk 'NR==2 {print $4}')"
if [ -L "$r" ]; then kv rootfs symlink
elif [ -d "$r" ]; then
  kv rootfs dir; kv rootfs_ino "$(stat -c %i "$r")"
  # The top directory's inode flags: an immutable or append-only one cannot be renamed by the swap.
  f=$(lsattr -d -- "$r" 2>/dev/null) && kv rootfs_flags "${f%% *}"
elif [ -e "$r" ]; then kv rootfs other
else kv rootfs missing; fi
for x in rootfs.plb-new rootfs.pre-btrfs rootfs.plb-old rootfs.plb-dir config.pre-btrfs; do
  if [ -e "$d/$x" ] || [ -L "$d/$x" ]; then kv "exists_$x" 1; else kv "exists_$x" 0; fi
done
state=$(lxc-info -n "$name" -P "$lxcpath" -s 2>/dev/null | awk '{print $2}')
kv state "${state:-UNKNOWN}"
if [ "$(stat -f -c %T "$d")" = btrfs ] && [ -d "$r" ] && [ ! -L "$r" ] && [ "$(stat -c %i "$r")" = 256 ]; then
  btrfs subvolume show "$r" 2>&1 | sed -n 's/^[[:space:]]*\(UUID\|Parent UUID\|Subvolume ID\|Generation\|Received UUID\):[[:space:]]*\(.*\)$/subvol \1=\2/p'
fi
if [ "$walk" = auto ]; then
  # Already a subvolume with no interrupted work: nothing will be copied, so nothing to count.
  if [ "$(stat -c %i "$r" 2>/dev/null)" = 256 ] && [ ! -e "$d/.plb-journal" ]; then walk=0; else walk=1; fi
fi
tmp=$(mktemp)
if [ "$walk" = 1 ] && [ -d "$r" ] && [ ! -L "$r" ]; then
  if [ "$(stat -f -c %T "$d")" = btrfs ]; then
    find "$r" -mindepth 1 \( -type d -inum 256 -fprint0 "$tmp" -prune \) -o -printf '%s\n' |
      awk '{n++; b+=$1} END {printf "files=%d\nbytes=%.0f\n", n, b}'
  else
    find "$r" -mindepth 1 -printf '%s\n' | awk '{n++; b+=$1} END {printf "files=%d\nbytes=%.0f\n", n, b}'
  fi
fi
printf '@@nested\0'
cat "$tmp"
rm -f "$tmp"
printf '@@mounts\0'
# mountinfo field 5 is the mount point with space, tab, newline and backslash written as octal escapes.
awk -v r="$r" '{ p = $5; if (index(p, r "/") == 1 || p == r) printf "%s%c", p, 0 }' /proc/self/mountinfo
printf '@@journal\0'
if [ -f "$d/.plb-journal" ]; then cat "$d/.plb-journal"; fi
printf '\0@@config\0'
if [ -f "$d/config" ] && [ -r "$d/config" ]; then cat "$d/config"; else printf '@@unreadable'; fi
