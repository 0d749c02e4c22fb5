# Prelude: remote-scripts.ts sends this before every remote script, without its comment lines (it
# travels with every command, so keep it small).
# shellcheck disable=SC2034 # not every script uses every name
{
# Exit codes the provider reads; exit-codes.ts has the same names and values (a unit test compares them).
# EXIT_REFUSED: fail (a check refused to go on; the reason is on stderr).
# EXIT_NAME_TAKEN: clone.sh make found a directory with the clone's name; nothing was made.
EXIT_REFUSED=3
EXIT_NAME_TAKEN=4
# On btrfs, the top directory of every subvolume has inode 256, and only it.
SUBVOL_INO=256
nl='
'
}
# Scripts for inner shells: a sh that xargs or find -exec starts (the only way to hand it NUL-separated
# paths) has none of these functions, so a check that two scripts share is kept here as a text, run as
# `sh -c "$NAME" plb-NAME ARG...`: one copy, which cannot drift apart.
# shellcheck disable=SC2016,SC2034 # expanded by the inner sh; not every script uses every name
{
# set_flags_sh MODE RECORD...: in the current directory, for each RECORD "FLAGS ./PATH" (lsattr's letters,
# "-" for none), sets the letters PATH lacks; with MODE exact, first clears those it has beyond FLAGS (MODE
# add clears none). PATH must not be a symlink (lsattr -d would read the link's own flags; chattr refuses
# links). A failure names PATH and exits 255, which stops xargs.
set_flags_sh='
  missing() {
    r= l=$1
    while [ -n "$l" ]; do
      c=${l%"${l#?}"} l=${l#?}
      case $c in -) ;; *) case $2 in *"$c"*) ;; *) r=$r$c ;; esac ;; esac
    done
  }
  mode=$1; shift
  for e; do
    want=${e%% *} p=${e#* } del=
    [ ! -L "$p" ] && have=$(lsattr -d -- "$p") || { printf "cannot read the flags of %s\n" "$p" >&2; exit 255; }
    have=${have%% *}
    if [ "$mode" = exact ]; then missing "$have" "$want"; del=$r; fi
    missing "$want" "$have"; add=$r
    [ -z "$del" ] || chattr "-$del" -- "$p" || { printf "cannot clear flags %s on %s\n" "$del" "$p" >&2; exit 255; }
    [ -z "$add" ] || chattr "+$add" -- "$p" || { printf "cannot set flags %s on %s\n" "$add" "$p" >&2; exit 255; }
  done'
# nested_sh INO FROM TO REFUSAL ACT SUBVOL...: what nested_into (below) runs for each nested subvolume.
nested_sh='
  ino=$1 from=$2 to=$3 refusal=$4 act=$5; shift 5
  real=$(cd -P -- "$to" && pwd -P) || exit 1
  for p; do
    rel=${p#"$from"/} up=
    case $rel in */*) up=/${rel%/*} ;; esac
    t=$to/$rel
    if [ "$(cd -P -- "$to$up" 2>/dev/null && pwd -P)" != "$real$up" ] || [ -L "$t" ]; then
      printf "%s: %s\n" "$t" "$refusal" >&2
      exit 1
    fi
    [ "$(stat -c %i -- "$t" 2>/dev/null)" = "$ino" ] || sh -c "$act" plb-nested "$p" "$t" || exit 1
  done'
}
fail() { printf '%s\n' "$*" >&2; exit "$EXIT_REFUSED"; }
kv() { printf '%s=%s\n' "$1" "$2"; }
is_subvol() { [ -d "$1" ] && [ ! -L "$1" ] && [ "$(stat -f -c %T "$1")" = btrfs ] && [ "$(stat -c %i "$1")" = "$SUBVOL_INO" ]; }
# DIR PREFIX: the fields of `btrfs subvolume show DIR` that we read, in its order, as "PREFIX KEY=VALUE\n"
# lines into $fields. Builtins only, no sed: reads run this for every container of a host.
subvol_fields() {
  fields='' sf_out=$(btrfs subvolume show "$1" 2>&1) || :
  set -f; IFS=$nl
  for sf_l in $sf_out; do
    sf_l=${sf_l#"${sf_l%%[![:space:]]*}"}; sf_v=${sf_l#*:}
    case $sf_l in UUID:* | "Parent UUID:"* | "Received UUID:"* | "Subvolume ID:"* | Generation:*)
      fields="$fields$2 ${sf_l%%:*}=${sf_v#"${sf_v%%[![:space:]]*}"}$nl" ;;
    esac
  done
  unset IFS; set +f
}
# NAME POINT: failpoint for the fault tests. While the root-only file /run/plb-hold/NAME.POINT exists,
# waits (at most 5 minutes) after writing NAME.POINT.reached. Unused, it costs one stat.
hold() {
  [ -e "/run/plb-hold/$1.$2" ] || return 0
  : >"/run/plb-hold/$1.$2.reached"
  hold_n=0
  while [ -e "/run/plb-hold/$1.$2" ] && [ $hold_n -lt 6000 ]; do sleep 0.05; hold_n=$((hold_n + 1)); done
}
# FROM TO ALL|OUTERMOST REFUSAL ACT: each subvolume nested in FROM (all of them, shallowest first, or only
# the outermost) to the same place in TO, by `sh -c ACT plb-nested SUBVOL PLACE`, unless PLACE is a
# subvolume already. PLACE is reached through real directories only and is no symlink: one planted on the
# way must not send a snapshot or a rename elsewhere on the host. Else prints "PLACE: REFUSAL" and stops,
# as does a failed ACT: find exits 1, and so does the script (set -e; not $EXIT_REFUSED).
nested_into() (
  prune=; [ "$3" = all ] || prune=-prune
  find "$1" -mindepth 1 -type d -inum "$SUBVOL_INO" ${prune:+"$prune"} \
    -exec sh -c "$nested_sh" plb-nested "$SUBVOL_INO" "$1" "$2" "$4" "$5" {} +
)
# NAME LXCPATH: starts the container and waits (30 s at most) until it runs.
# NAME LXCPATH: lxc-freeze, bounded. lxc-freeze waits until every task of the container is frozen, and a
# cgroup v1 freezer can wait for ever (seen on a fleet host: a shell waiting in vfork for a child that froze
# first never freezes; the cgroup stayed FREEZING for minutes). After 10 s the container is thawed and the
# freeze tried again, 3 times in all; returns 1 (thawed) if none took.
freeze_bounded() {
  for _ in 1 2 3; do
    timeout 10 lxc-freeze -n "$1" -P "$2" && return 0
    lxc-unfreeze -n "$1" -P "$2" 2>/dev/null || :
    sleep 0.2
  done
  return 1
}
start_and_wait() { lxc-start -n "$1" -P "$2" -d && lxc-wait -n "$1" -P "$2" -s RUNNING -t 30; }
