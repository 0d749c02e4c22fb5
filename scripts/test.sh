#!/usr/bin/env bash
# npm test: lint, unit tests, then (as root) integration and end-to-end tests against the local fleet
# with the real Pulumi CLI. With CI=true nothing is skipped: missing root is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

# Node.js 22 (what @pulumi/pulumi requires) first on PATH for everything below: npm, mocha, and the Pulumi
# CLI's language host and dynamic-provider plugin, which find `node` on PATH. Installed from the npm
# registry by scripts/node-install.sh when the machine has another version; the machine's node is untouched.
PATH="$(bash scripts/node-install.sh 22 | tail -n 1):$PATH"
export PATH
log "node $(node --version) (npm $(npm --version)) from $(command -v node)"

log "lint (tsc + biome)"
npm run --silent lint

log "build"
npm run --silent build

suites=(dist/test/unit)
if [ "$(id -u)" -eq 0 ]; then
  log "fleet (npm run fleet:up)"
  bash scripts/fleet/up.sh --reset   # every run starts from the pristine containers
  log "pulumi CLI (npm run pulumi:install)"
  bash scripts/pulumi-install.sh >/dev/null
  suites+=(dist/test/integration dist/test/e2e)
elif [ "${CI:-}" = true ]; then
  echo "npm test: CI=true but not root: the integration and end-to-end tests need root (network namespaces, loop devices)." >&2
  exit 1
else
  cat >&2 <<'MSG'
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! Not root: SKIPPING the integration and end-to-end tests (real SSH, BTRFS, LXC and Pulumi).  !!
!! Only the unit tests run. Run `sudo npm test` for the whole suite.                           !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
MSG
fi

count() { grep -Eo "^ +[0-9]+ $1" "$2" | grep -Eo '[0-9]+' || echo 0; }
run_mocha() { # OUT_FILE SUITES...: mocha's exit code; its output is shown and kept in OUT_FILE
  local file=$1
  shift
  set +e
  npx mocha --recursive --timeout 900000 --reporter spec "$@" 2>&1 | tee "$file"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

log "mocha on node $(node --version): ${suites[*]}"
out=$(mktemp)
out24=$(mktemp)
rc=0
run_mocha "$out" "${suites[@]}" || rc=$?

node24="$(bash scripts/node-install.sh 24 | tail -n 1)"
log "mocha on node $("$node24/node" --version): dist/test/unit (the unit tests again, on Node.js 24)"
rc24=0
PATH="$node24:$PATH" run_mocha "$out24" dist/test/unit || rc24=$?

passed=$(($(count passing "$out") + $(count passing "$out24")))
failed=$(($(count failing "$out") + $(count failing "$out24")))
pending=$(($(count pending "$out") + $(count pending "$out24")))
rm -f "$out" "$out24"
echo
echo "tests: ${passed} passed, ${failed} failed, ${pending} skipped"
if [ "${CI:-}" = true ] && [ "$pending" != 0 ]; then
  echo "npm test: ${pending} test(s) pending/skipped under CI=true; every test must run." >&2
  exit 1
fi
[ "$rc" -ne 0 ] && exit "$rc"
exit "$rc24"
