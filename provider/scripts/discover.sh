# Lists the containers under LXCPATH with each one's rootfs state, in one round trip.
# Args: LXCPATH. Output: one NUL-terminated record per container:
#   name<TAB>fstype<TAB>rootfs-kind<TAB>rootfs-inode<TAB>state<TAB>rootfs-line
set -u
lxcpath=$1
[ -d "$lxcpath" ] || { printf 'lxcpath %s does not exist\n' "$lxcpath" >&2; exit 3; }
printf 'fstype=%s\n' "$(stat -f -c %T "$lxcpath")"
for c in "$lxcpath"/*/config; do
  [ -f "$c" ] || continue
  d=${c%/config}
  n=${d##*/}
  r=$d/rootfs
  if [ -L "$r" ]; then k=symlink; i=0; elif [ -d "$r" ]; then k=dir; i=$(stat -c %i "$r"); else k=missing; i=0; fi
  s=$(lxc-info -n "$n" -P "$lxcpath" -s 2>/dev/null | awk '{print $2}')
  l=$(grep -E '^[[:space:]]*lxc\.rootfs(\.path)?[[:space:]]*=' "$c" | head -n 1 | sed 's/^[^=]*=[[:space:]]*//')
  printf '%s\t%s\t%s\t%s\t%s\t%s\0' "$n" "$(stat -f -c %T "$d")" "$k" "$i" "${s:-UNKNOWN}" "$l"
done
