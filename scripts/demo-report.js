// Prints what the demo did: per host, containers converted or adopted, skipped, failed; the clones;
// the time taken; and shows that `lxc-copy -s -B btrfs` now works on a converted container.
const { readFileSync } = require("node:fs");
const { execFileSync } = require("node:child_process");

const [outputsPath, millis] = process.argv.slice(2);
const out = JSON.parse(readFileSync(outputsPath, "utf8"));
const dir = process.env.PLB_FLEET_DIR || "/var/tmp/pulumi-lxc-btrfs/fleet";
const inv = JSON.parse(readFileSync(`${dir}/inventory.json`, "utf8"));

console.log("\n== what the demo did");
for (const [host, s] of Object.entries(out.summary || {})) {
  console.log(
    `${host}: converted ${s.converted.length} [${s.converted.join(", ")}], adopted ${s.adopted.length} [${s.adopted.join(", ")}]`,
  );
  if (s.skipped.length) console.log(`    skipped: ${s.skipped.join("; ")}`);
  if (s.failed.length) console.log(`    failed: ${s.failed.join("; ")}`);
}
for (const [clone, c] of Object.entries(out.clones || {}))
  console.log(`clone ${clone}: ${c.state}, subvolume ${c.subvolumeUuid}`);
console.log(`pulumi up took ${(Number(millis) / 1000).toFixed(1)} s`);

const h1 = inv.hosts.find((h) => h.name === "h1");
const converted = (out.summary?.h1?.converted || []).concat(out.summary?.h1?.adopted || []);
if (h1 && converted.length) {
  const src = converted[0];
  const ssh = [
    "-i",
    inv.users.root.privateKeyPath,
    "-o",
    `UserKnownHostsFile=${inv.knownHostsPath}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    `root@${h1.address}`,
  ];
  const cmd = `lxc-copy -n ${src} -N ${src}-snapcheck -s -B btrfs && lxc-destroy -n ${src}-snapcheck`;
  const t = process.hrtime.bigint();
  execFileSync("ssh", [...ssh, cmd], { stdio: "inherit" });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(`\nnow works on h1: \`${cmd.split(" && ")[0]}\` (${ms.toFixed(0)} ms, then destroyed again)`);
}
