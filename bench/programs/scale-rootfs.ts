/**
 * Pulumi program of the scale benchmark: one LxcSubvolumeRootfs per container listed in the JSON file
 * BENCH_SPEC (`[{ "address": "10.x.y.z", "containers": ["bench-s-0001", ...] }, ...]`), all converted
 * already, so `up` adopts and `preview --refresh` reads.
 */
import { readFileSync } from "node:fs";
import { LxcSubvolumeRootfs } from "../../provider";
import { loadInventory } from "../../test/support/fleet";

const inv = loadInventory();
const spec: { address: string; containers: string[] }[] = JSON.parse(
  readFileSync(process.env.BENCH_SPEC as string, "utf8"),
);
for (const h of spec) {
  const connection = {
    host: h.address,
    privateKeyPath: inv.users.root.privateKeyPath,
    knownHostsPath: inv.knownHostsPath,
  };
  for (const c of h.containers) new LxcSubvolumeRootfs(c, { connection, container: c });
}
