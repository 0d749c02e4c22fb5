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
