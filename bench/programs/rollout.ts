/**
 * Pulumi program of the fleet benchmark: discovers the bench containers on the hosts named in
 * BENCH_HOSTS (e.g. `h1,h2`) and converts them with LxcFleetRollout, no canary wave (hosts run in
 * parallel), at most BENCH_PER_HOST conversions at once per host.
 */
import { LxcFleetRollout } from "../../provider";
import { loadInventory } from "../../test/support/fleet";

export = async () => {
  const inv = loadInventory();
  const names = (process.env.BENCH_HOSTS ?? "h1,h2").split(",");
  const rollout = await LxcFleetRollout.discover("bench", {
    hosts: inv.hosts
      .filter((h) => names.includes(h.name))
      .map((h) => ({
        name: h.name,
        connection: {
          host: h.address,
          privateKeyPath: inv.users.root.privateKeyPath,
          knownHostsPath: inv.knownHostsPath,
        },
        include: [process.env.BENCH_INCLUDE ?? "bench-r*"],
      })),
    canary: 0,
    maxConcurrentPerHost: Number(process.env.BENCH_PER_HOST ?? "2"),
  });
  return { summary: rollout.summary };
};
