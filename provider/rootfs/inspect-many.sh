# Inspects many containers of one LXCPATH for reads and adoptions, with as few processes as it can:
#   sh -c "$this" plb-inspect-many INSPECT_ROOTFS_SCRIPT LXCPATH WALK(0|auto) NAME...
# For each NAME, in order: "@@plb-item INDEX 0 BYTES 0\n" and then exactly what inspect-rootfs.sh prints
# for (LXCPATH NAME WALK). A converted container with no journal, what a fleet is made of, costs one
# `btrfs subvolume show` (and an lxc-info when it runs): the host's facts, one statfs and one stat for all,
# which containers run (one lxc-ls), the rest with shell builtins. Any other container (not converted, a
# journal, not on btrfs) is inspected by inspect-rootfs.sh itself. Names were validated by the provider.
set -u
export LC_ALL=C
insp=$1 lxcpath=$2 walk=$3
shift 3
v=$(btrfs --version 2>/dev/null)
facts="btrfs_version=${v%%"$nl"*}${nl}"
v=$(lxc-info --version 2>/dev/null)
facts="${facts}lxc_version=${v%%"$nl"*}${nl}"
if command -v lxc-copy >/dev/null 2>&1; then facts="${facts}has_lxc_copy=1$nl"; else facts="${facts}has_lxc_copy=0$nl"; fi
if command -v getfattr >/dev/null 2>&1; then facts="${facts}has_getfattr=1$nl"; else facts="${facts}has_getfattr=0$nl"; fi
# Containers that run (LXC's command sockets); every other one is STOPPED.
active=" $(lxc-ls -P "$lxcpath" --active -1 2>/dev/null | tr '\n' ' ') "

# One statfs for every container directory, one stat for every rootfs directory.
dirs='' roots=''
for n; do
  d=$lxcpath/$n
  if [ -d "$d" ]; then dirs="$dirs $d"; fi
  if [ -d "$d/rootfs" ] && [ ! -L "$d/rootfs" ]; then roots="$roots $d/rootfs"; fi
done
# shellcheck disable=SC2086 # $dirs and $roots split on spaces: validated names and lxcPath hold none
sfs=$(if [ -n "$dirs" ]; then stat -f -c '%n %T %a %S' $dirs; fi)
# shellcheck disable=SC2086 # as above
inos=$(if [ -n "$roots" ]; then stat -c '%n %i' $roots; fi)
# Inode flags of every rootfs directory ("FLAGS PATH" lines), for WALK auto, as inspect-rootfs.sh reports them.
# shellcheck disable=SC2086 # as above
flags=$(if [ "$walk" != 0 ] && [ -n "$roots" ]; then lsattr -d $roots 2>/dev/null; fi)
# Mount points below LXCPATH (mountinfo writes space, tab, newline and backslash as octal escapes, so one
# per line), for WALK auto: a rootfs with something mounted inside is not converted.
mnts=$(if [ "$walk" != 0 ]; then awk -v p="$lxcpath/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo; fi)
lookup() { # TEXT KEY: the rest of the line of TEXT that starts with "KEY "
  case "$nl$1$nl" in *"$nl$2 "*) v=${1#*"$2 "}; v=${v%%"$nl"*}; return 0 ;; esac
  v=; return 1
}

i=0
t=
for n; do
  d=$lxcpath/$n r=$d/rootfs
  fast=0
  # shellcheck disable=SC2086 # split on purpose: "TYPE AVAIL BSIZE"
  if lookup "$sfs" "$d" && set -- $v && [ "$1" = btrfs ] && lookup "$inos" "$r" && [ "$v" = "$SUBVOL_INO" ] &&
    [ ! -e "$d/.plb-journal" ] && [ ! -L "$d/.plb-journal" ]; then
    fast=1 avail=$(($2 * $3))
  fi
  if [ $fast = 0 ]; then
    t=${t:-$(mktemp)}
    sh -c "$insp" plb-inspect-rootfs "$lxcpath" "$n" "$walk" >"$t" 2>/dev/null
    printf '@@plb-item %d 0 %d 0\n' "$i" "$(stat -c %s "$t")"
    cat "$t"
    i=$((i + 1))
    continue
  fi
  h="${facts}container_dir=present${nl}fstype=btrfs${nl}avail_bytes=$avail${nl}rootfs=dir${nl}rootfs_ino=$SUBVOL_INO$nl"
  case "$nl$flags$nl" in
  *"$nl"*" $r$nl"*)
    v="$nl$flags$nl"
    v=${v%%" $r$nl"*}
    h="${h}rootfs_flags=${v##*"$nl"}$nl"
    ;;
  esac
  for x in rootfs.plb-new rootfs.pre-btrfs rootfs.plb-old rootfs.plb-dir config.pre-btrfs rootfs.plb-restore rootfs.pre-restore; do
    if [ -e "$d/$x" ] || [ -L "$d/$x" ]; then h="${h}exists_$x=1$nl"; else h="${h}exists_$x=0$nl"; fi
  done
  s=STOPPED
  case $active in *" $n "*) s=$(lxc-info -n "$n" -P "$lxcpath" -s -H 2>/dev/null) ;; esac
  h="${h}state=${s:-UNKNOWN}$nl"
  subvol_fields "$r" subvol
  h="$h$fields"
  if [ -f "$d/config" ] && [ -r "$d/config" ]; then
    c='' l=''
    while IFS= read -r l; do c="$c$l$nl"; done <"$d/config"
    c="$c$l"
  else
    c=@@unreadable
  fi
  # The mount points inside this rootfs, each NUL-terminated (WALK auto only, as inspect-rootfs.sh).
  m='' mlen=0
  if [ -n "$mnts" ]; then
    set -f
    IFS=$nl
    for l in $mnts; do
      case $l in "$r" | "$r"/*) m="$m$l$nl" mlen=$((mlen + ${#l} + 1)) ;; esac
    done
    unset IFS
    set +f
  fi
  # The sections: a converted rootfs has no nested subvolumes to move (nothing is walked), and no journal.
  printf '@@plb-item %d 0 %d 0\n' "$i" $((${#h} + 38 + mlen + ${#c}))
  printf '%s@@nested\000@@mounts\000' "$h"
  if [ -n "$m" ]; then
    set -f
    IFS=$nl
    for l in $m; do printf '%s\000' "$l"; done
    unset IFS
    set +f
  fi
  printf '@@journal\000\000@@config\000%s' "$c"
  i=$((i + 1))
done
if [ -n "$t" ]; then rm -f "$t"; fi
