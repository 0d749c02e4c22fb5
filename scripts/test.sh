#!/usr/bin/env bash
# npm test: lint, unit tests, the language host's go vet and go tests, then (as root) integration and
# end-to-end tests against the local fleet with the real Pulumi CLI. With CI=true nothing is skipped:
# missing root or a missing go is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

# Node.js 22 (what @pulumi/pulumi requires) first on PATH for everything below: npm, mocha, and the Pulumi
# CLI's language host and dynamic-provider plugin, which find `node` on PATH. Installed from the npm
# registry by scripts/node-install.sh when the machine has another version; the machine's node is untouched.
PATH="$(bash scripts/node-install.sh 22 | tail -n 1):$PATH"
export PATH
log "node $(node --version) (npm $(npm --version)) from $(command -v node)"
# Go (the Pulumi CLI's build and the language host's tests) from PATH, else from /usr/local/go/bin.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then PATH="$PATH:/usr/local/go/bin"; fi

# What the tests need that a fresh clone or machine lacks, so that `npm test` works before or after
# `npm run demo`: the npm dependencies, and shellcheck for the lint (the fleet installs its own packages).
if [ ! -d node_modules/@pulumi/pulumi ]; then
  log "npm ci (no node_modules yet)"
  npm ci --no-audit --no-fund
fi
# shellcheck source=scripts/lib/packages.sh
. scripts/lib/packages.sh
ensure_packages shellcheck

log "lint (tsc + biome + shellcheck)"
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
gocount() { grep -Ec "^ *--- $1:" "$2" || true; }

# The language host (tools/pulumi-language-nodejs): go vet and go test, with the modules from the cache that
# scripts/pulumi-install.sh filled when it built the host (the Go module proxy only for what is missing).
goout=$(mktemp)
gorc=0
if command -v go >/dev/null 2>&1; then
  log "go vet + go test on $(go version | cut -d' ' -f3): tools/pulumi-language-nodejs"
  (cd tools/pulumi-language-nodejs && go vet ./... && go test -count=1 -v ./...) 2>&1 | tee "$goout" || gorc=$?
elif [ "${CI:-}" = true ]; then
  echo "npm test: CI=true but go is neither on PATH nor in /usr/local/go/bin (the language host's tests need it)." >&2
  exit 1
else
  echo "!! go is neither on PATH nor in /usr/local/go/bin: SKIPPING the language host's go vet and go tests. !!" >&2
fi
gopassed=$(gocount PASS "$goout")
gofailed=$(gocount FAIL "$goout")
goskipped=$(gocount SKIP "$goout")
# A vet finding or a build failure prints no "--- FAIL" line: it counts as one failure.
if [ "$gorc" -ne 0 ] && [ "$gofailed" -eq 0 ]; then gofailed=1; fi
rm -f "$goout"
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

passed=$(($(count passing "$out") + $(count passing "$out24") + gopassed))
failed=$(($(count failing "$out") + $(count failing "$out24") + gofailed))
pending=$(($(count pending "$out") + $(count pending "$out24") + goskipped))
rm -f "$out" "$out24"
echo
echo "tests: ${passed} passed, ${failed} failed, ${pending} skipped"
if [ "${CI:-}" = true ] && [ "$pending" != 0 ]; then
  echo "npm test: ${pending} test(s) pending/skipped under CI=true; every test must run." >&2
  exit 1
fi
[ "$rc" -ne 0 ] && exit "$rc"
[ "$gorc" -ne 0 ] && exit "$gorc"
exit "$rc24"
