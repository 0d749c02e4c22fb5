# Runs one of our scripts once per group of NARGS arguments, in a single round trip, at most P at a time:
#   sh -c "$this" plb-batch SCRIPT NARGS P ARG...
# and frames each group's result, in order, as
#   @@plb-item INDEX EXIT_CODE STDOUT_BYTES STDERR_BYTES\n<stdout bytes><stderr bytes>
# Byte counts, not markers: the outputs carry names from container trees, which may contain anything.
# Nothing is evaluated from the arguments: the eval below only expands "$1" ... "$NARGS".
set -u
# shellcheck disable=SC2034 # script is read by the eval below
script=$1 n=$2 p=$3
shift 3
case $n$p in *[!0-9]*) fail 'bad batch arguments' ;; esac
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
refs='' k=1
while [ "$k" -le "$n" ]; do refs="$refs \"\$$k\""; k=$((k + 1)); done
i=0 running=0
while [ $# -ge "$n" ] && [ $# -gt 0 ]; do
  eval "{ sh -c \"\$script\" plb-item $refs >\"\$t/\$i.out\" 2>\"\$t/\$i.err\" </dev/null; echo \$? >\"\$t/\$i.rc\"; } &"
  shift "$n"
  i=$((i + 1)) running=$((running + 1))
  if [ "$running" -ge "$p" ]; then wait; running=0; fi
done
wait
j=0
while [ "$j" -lt "$i" ]; do
  read -r rc <"$t/$j.rc"
  # shellcheck disable=SC2046 # split on purpose: two sizes
  set -- $(stat -c %s "$t/$j.out" "$t/$j.err")
  printf '@@plb-item %d %s %s %s\n' "$j" "$rc" "$1" "$2"
  cat "$t/$j.out" "$t/$j.err"
  j=$((j + 1))
done
