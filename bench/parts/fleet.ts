/**
 * Part 3: a fleet rollout through the real Pulumi CLI. 10 containers on each btrfs host (h1, h2, h4; h3
 * is ext4 and cannot take part), converted by LxcFleetRollout with hosts in parallel; each host alone is
 * the baseline. Interleaved per iteration: each host alone, then all. SSH logins per host from the sshd logs.
 */
import * as path from "node:path";
import { countAccepted, type FleetHost } from "../../test/support/fleet";
import type { BenchContext } from "../lib/context";
import { cloneTemplateMany, createBusybox, destroy, LXC, settle, sh } from "../lib/host";
import { makeProject } from "../lib/pulumi-project";

export const PER_HOST = 10;
export const FLEET_TREE_ENTRIES = 1000;
export const MAX_PER_HOST = 2;

export interface FleetResult {
  /** The btrfs hosts, in order. */
  hosts: string[];
  /** Wall time of each run of one host alone, per host. */
  alone: Record<string, number[]>;
  /** Wall time of each run of all hosts at once. */
  all: number[];
  /** SSH logins per host during each run of the whole fleet. */
  accepted: Record<string, number[]>;
  acceptedAlone: Record<string, number[]>;
  entries: number;
}

const tpl = "bench-tpl-fleet";
const names = (h: FleetHost) =>
  Array.from({ length: PER_HOST }, (_, i) => `bench-r${h.name.slice(1)}-${String(i + 1).padStart(2, "0")}`);

async function makeTemplate(ctx: BenchContext, h: FleetHost): Promise<number> {
  await createBusybox(h, tpl);
  const base = Number((await sh(h, `find "${LXC}/$1/rootfs" -mindepth 1 | wc -l`, tpl)).trim());
  await sh(h, `mkdir "${LXC}/$1/rootfs/bulk"`, tpl);
  await sh(
    h,
    `exec "${process.execPath}" "$@"`,
    path.join(ctx.buildDir, "tree-gen.js"),
    `${LXC}/${tpl}/rootfs/bulk`,
    String(FLEET_TREE_ENTRIES - base - 1),
  );
  return Number((await sh(h, `find "${LXC}/$1/rootfs" -mindepth 1 | wc -l`, tpl)).trim());
}

async function freshContainers(hosts: FleetHost[]): Promise<void> {
  for (const h of hosts) {
    for (const n of names(h)) await destroy(h, n);
    await cloneTemplateMany(h, tpl, names(h));
    await settle(h);
  }
}

export async function benchFleet(ctx: BenchContext): Promise<FleetResult> {
  const hosts = ctx.btrfsHosts;
  let entries = 0;
  for (const h of hosts) entries = await makeTemplate(ctx, h);
  const project = makeProject(
    ctx.workDir,
    "bench-rollout",
    path.join(ctx.buildDir, "programs", "rollout.js"),
  );
  const per = () => Object.fromEntries(hosts.map((h) => [h.name, [] as number[]]));
  const res: FleetResult = {
    hosts: hosts.map((h) => h.name),
    alone: per(),
    all: [],
    accepted: per(),
    acceptedAlone: per(),
    entries,
  };
  const everyone = hosts.map((h) => h.name).join(",");
  for (let i = 0; i < ctx.runs; i++) {
    for (const cfg of [...hosts.map((h) => h.name), everyone]) {
      const involved = hosts.filter((h) => cfg.split(",").includes(h.name));
      await freshContainers(involved);
      const stack = `r${i}-${cfg.replace(/,/g, "-")}`;
      await project.init(stack);
      const before = hosts.map((h) => countAccepted(h));
      const { ms, stdout } = await project.run(["up", "--yes", "--skip-preview"], stack, {
        BENCH_HOSTS: cfg,
        BENCH_PER_HOST: String(MAX_PER_HOST),
      });
      const summary = JSON.parse((await project.run(["stack", "output", "--json"], stack)).stdout).summary;
      for (const h of involved) {
        const s = summary[h.name];
        if (!s || s.failed.length || s.converted.length !== PER_HOST)
          throw new Error(
            `rollout ${cfg}: ${h.name} did not convert ${PER_HOST}: ${JSON.stringify(s)}\n${stdout}`,
          );
      }
      if (cfg === everyone) res.all.push(ms);
      else res.alone[cfg].push(ms);
      hosts.forEach((h, k) => {
        const n = countAccepted(h) - before[k];
        if (cfg === everyone) res.accepted[h.name].push(n);
        else if (cfg === h.name) res.acceptedAlone[h.name].push(n);
      });
    }
    ctx.log(
      `fleet run ${i + 1}/${ctx.runs}: ${hosts.map((h) => `${h.name} ${res.alone[h.name][i].toFixed(0)} ms`).join(", ")}, all ${res.all[i].toFixed(0)} ms`,
    );
  }
  for (const h of hosts) {
    for (const n of [...names(h), tpl]) await destroy(h, n);
    await settle(h);
  }
  return res;
}
