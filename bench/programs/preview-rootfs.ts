/** Pulumi program of the preview benchmark: one LxcSubvolumeRootfs per container in BENCH_CONTAINERS. */
import { LxcSubvolumeRootfs } from "../../provider";
import { loadInventory } from "../../test/support/fleet";

const inv = loadInventory();
const host = inv.hosts.find((h) => h.name === (process.env.BENCH_HOST ?? "h1"));
if (!host) throw new Error(`no fleet host ${process.env.BENCH_HOST}`);
for (const c of (process.env.BENCH_CONTAINERS ?? "").split(",").filter(Boolean)) {
  new LxcSubvolumeRootfs(c, {
    connection: {
      host: host.address,
      privateKeyPath: inv.users.root.privateKeyPath,
      knownHostsPath: inv.knownHostsPath,
    },
    container: c,
  });
}
