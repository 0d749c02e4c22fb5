#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repository (part of `npm run lint`):
#  - the remote scripts, provider/**/*.sh, as POSIX sh, each as hosts run it: after
#    provider/transport/prelude.sh (a finding is reported at its own file and line);
#  - the repository's own scripts (scripts/**/*.sh, .ci/run, test/fixtures/capture.sh), as their shebang
#    or `# shellcheck shell=` line says (bash or sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "lint: shellcheck is not installed; install it (Debian/Ubuntu: apt-get install -y shellcheck) and run again" >&2
  exit 1
fi

prelude=provider/transport/prelude.sh
plines=$(wc -l <"$prelude")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0

shellcheck -s sh -f gcc "$prelude" || rc=1
# The shell libraries sent between the prelude and the scripts that use them (remote-scripts.ts SCRIPT_LIBS):
# provider/transport/flags.sh, before step.sh and clone.sh.
flags=provider/transport/flags.sh
while IFS= read -r -d '' f; do
  [ "$f" = "$prelude" ] && continue
  lib=/dev/null
  case $f in provider/rootfs/step.sh | provider/clone/clone.sh) lib=$flags ;; esac
  llines=$(wc -l <"$lib")
  cat "$prelude" "$lib" "$f" >"$tmp/script.sh"
  # gcc format, FILE:LINE:COL: MESSAGE; the lines after the prelude's and the library's are the script's.
  shellcheck -s sh -f gcc "$tmp/script.sh" >"$tmp/out" || rc=1
  awk -F: -v p="$plines" -v l="$llines" -v pre="$prelude" -v lib="$lib" -v f="$f" '{
    rest = substr($0, length($1) + length($2) + 3)
    if ($2 > p + l) print f ":" ($2 - p - l) ":" rest; else if ($2 > p) print lib ":" ($2 - p) ":" rest; else print pre ":" $2 ":" rest
  }' "$tmp/out"
done < <(find provider -name '*.sh' -print0 | sort -z)

mapfile -d '' own < <(find scripts -name '*.sh' -print0 | sort -z)
shellcheck -x -f gcc "${own[@]}" .ci/run test/fixtures/capture.sh || rc=1

[ "$rc" = 0 ] && echo "shellcheck: no findings"
exit "$rc"
