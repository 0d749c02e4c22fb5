// Sets the demo stack's config for the local sandbox fleet from its inventory.json, as a user would set it
// for real hosts with `pulumi config set` (demo/index.ts reads nothing else): every host, the fleet's root
// key and known_hosts, two clones, and the name globs of containers that the repository's tests and
// benchmarks make on the same hosts, so the demo leaves those alone.
//
//   node scripts/demo-config.js STACK      (pulumi on PATH, run from the repository root)
const { execFileSync } = require("node:child_process");
// Built by `npm run build`, which scripts/demo.sh runs first: what the e2e tests use to read the fleet and
// set stack config.
const { loadInventory, TEST_CONTAINER_GLOBS } = require("../dist/test/support/fleet");
const { configSetAllArgs } = require("../dist/test/support/pulumi");

const stack = process.argv[2];
if (!stack) {
  console.error("usage: node scripts/demo-config.js STACK");
  process.exit(2);
}
const inv = loadInventory();

const config = {
  hosts: inv.hosts.map((h) => ({ name: h.name, host: h.address })),
  privateKeyPath: inv.users.root.privateKeyPath,
  knownHostsPath: inv.knownHostsPath,
  exclude: TEST_CONTAINER_GLOBS,
  clones: [
    { host: "h1", source: "web1", name: "web1-clone", hostname: "web1-clone" },
    { host: "h2", source: "app1", name: "app1-clone", start: false },
  ],
};

// Lists are replaced whole, not merged with what an earlier run set.
for (const k of ["hosts", "exclude", "clones"])
  execFileSync("pulumi", ["config", "rm", k, "--stack", stack, "--non-interactive"], { stdio: "ignore" });
execFileSync("pulumi", [...configSetAllArgs(config), "--stack", stack, "--non-interactive"], {
  stdio: "inherit",
});
