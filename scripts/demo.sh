#!/usr/bin/env bash
# npm run demo: from a fresh clone, as root: install what is missing, bring the local fleet up, set the
# demo stack's config from the fleet's inventory, run `pulumi up --yes` on the demo (the root Pulumi.yaml)
# with a local file backend, and report.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "npm run demo needs root (it builds a sandbox fleet of network namespaces and loop-mounted btrfs)" >&2; exit 1; }

# Node.js 22, as @pulumi/pulumi requires (the machine's own node is left alone); the Pulumi CLI's language
# host and dynamic providers find it on PATH too.
PATH="$(bash scripts/node-install.sh 22 | tail -n 1):$PATH"
export PATH

echo "== dependencies"
[ -d node_modules/@pulumi/pulumi ] || npm ci --no-audit --no-fund
npm run --silent build
ln -sfn .. node_modules/pulumi-lxc-btrfs   # the demo imports the package by name, as users do

echo "== fleet"
bash scripts/fleet/up.sh

echo "== pulumi"
# shellcheck source=scripts/pulumi-env.sh
. scripts/pulumi-env.sh
mkdir -p "${PULUMI_BACKEND_URL#file://}"
# The program is type-checked by `npm run lint` (tsconfig.json includes demo/); here it is only transpiled,
# as the e2e tests run the examples: type-checking it under ts-node inside this repository, where the
# package imports itself by name through its exports map, fails with TS2209 ("the project root is ambiguous").
export PULUMI_NODEJS_TRANSPILE_ONLY=true
pulumi stack select demo --create --non-interactive >/dev/null
# The demo program reads only stack config, as a user's would: set it from the fleet's inventory.
node scripts/demo-config.js demo
echo "stack config (Pulumi.demo.yaml):"
pulumi config --stack demo --non-interactive
start=$(date +%s%N)
pulumi up --yes --non-interactive --stack demo
end=$(date +%s%N)
pulumi stack output --json --stack demo >/tmp/plb-demo-outputs.json
node scripts/demo-report.js /tmp/plb-demo-outputs.json "$(( (end - start) / 1000000 ))"
