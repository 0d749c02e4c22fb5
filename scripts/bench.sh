#!/usr/bin/env bash
# npm run bench: benchmarks on the local fleet (as root), written to bench/RESULTS.md, bench/chart.svg and
# bench/results.json. Waits for any running test suite first (the fleet is shared), compiles the bench
# into dist/.bench/build, runs `npm run build` for the providers and removes every bench- container at the end.
#
# Env: BENCH_RUNS (5), BENCH_SIZES (1k,debian,10k,50k,100k), BENCH_SCALE (20,200:1,1000),
#      BENCH_PARTS (clone,preview,fleet,scale,transport,conversion,downtime,rollback,snapshot,xhost), BENCH_DOWNTIME_ENTRIES (100000), BENCH_DOWNTIME_HOST (h2),
#      BENCH_ROLLBACK_ENTRIES (100000),
# BENCH_BUDGET_S (1200: a conversion size that would not fit is skipped and the report says so).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "npm run bench: needs root (the fleet of network namespaces and loop-mounted btrfs); run it with sudo" >&2
  exit 1
fi

# Other test runs use the same hosts (and may reset them); timings taken next to them would be noise.
busy() { pgrep -f mocha >/dev/null || pgrep -f 'scripts/(test|fleet/up|fleet/down)\.sh' >/dev/null; }
while busy; do
  echo "npm run bench: a test run (mocha) is using the fleet; waiting..." >&2
  sleep 20
done

# Node.js 22, as for npm test (the Pulumi language host and dynamic providers find it on PATH).
PATH="$(bash scripts/node-install.sh 22 | tail -n 1):$PATH"
export PATH

t0=$(date +%s%3N) # the bench's own time starts here, after any wait
bash scripts/fleet/up.sh >/dev/null
bash scripts/pulumi-install.sh >/dev/null

base=dist/.bench
rm -rf "$base/build"
mkdir -p "$base"
npx tsc -p tsconfig.json --outDir "$base/build"
(cd provider && find . -name '*.sh' -exec cp --parents {} "../$base/build/provider/" \;)
# The providers that Pulumi runs load this package by name (pulumi-lxc-btrfs/dynamic, i.e. dist/provider),
# resolved from the bench's project directories inside the repository.
npm run --silent build
ln -sfn .. node_modules/pulumi-lxc-btrfs

main=$base/build/bench/main.js
trap 'node "$main" --cleanup' EXIT
rc=0
BENCH_T0=$t0 node "$main" "$@" || rc=$?
# results.json is checked by biome (npm run lint): write it in biome's format
npx biome format --write "${BENCH_OUT:-bench}/results.json" >/dev/null 2>&1 || true
exit "$rc"
