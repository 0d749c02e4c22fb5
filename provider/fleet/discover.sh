# Lists the containers under LXCPATH with each one's rootfs state, in one round trip.
# Args: LXCPATH. Output: "fstype=FS\n", then one NUL-terminated record per directory holding a config:
#   ok<TAB>name<TAB>fstype<TAB>rootfs-kind<TAB>rootfs-inode<TAB>state<TAB>rootfs-line
#   odd<TAB>name-as-hex
# A name LXC allows but we do not (whitespace, shell characters, a leading dash, non-UTF-8 bytes, over 64
# bytes) is never passed to a command nor printed raw: it comes back as hex, so no record breaks apart.
set -u
export LC_ALL=C
lxcpath=$1
[ -d "$lxcpath" ] || fail "lxcpath $lxcpath does not exist"
printf 'fstype=%s\n' "$(stat -f -c %T "$lxcpath")"
for c in "$lxcpath"/*/config; do
  [ -f "$c" ] || continue
  d=${c%/config}
  n=${d##*/}
  case $n in
  [A-Za-z0-9]*[!A-Za-z0-9_.-]* | [!A-Za-z0-9]* | *..*) ok=0 ;;
  *) if [ ${#n} -le 64 ]; then ok=1; else ok=0; fi ;;
  esac
  if [ $ok = 0 ]; then
    printf 'odd\t%s\0' "$(printf %s "$n" | od -An -v -tx1 | tr -d ' \n')"
    continue
  fi
  r=$d/rootfs
  if [ -L "$r" ]; then k=symlink; i=0; elif [ -d "$r" ]; then k=dir; i=$(stat -c %i "$r"); else k=missing; i=0; fi
  s=$(lxc-info -n "$n" -P "$lxcpath" -s 2>/dev/null | awk '{print $2}')
  l=$(grep -E '^[[:space:]]*lxc\.rootfs(\.path)?[[:space:]]*=' "$c" | head -n 1 | sed 's/^[^=]*=[[:space:]]*//' | tr '\t' ' ')
  printf 'ok\t%s\t%s\t%s\t%s\t%s\t%s\0' "$n" "$(stat -f -c %T "$d")" "$k" "$i" "${s:-UNKNOWN}" "$l"
done
