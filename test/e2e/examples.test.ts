/**
 * Every program in examples/ runs with the real Pulumi CLI against the local fleet: up, a no-op preview,
 * destroy, with the host state checked; the fleet rollout also proves its waves and per-host limit from
 * the engine's own event log.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect } from "chai";
import { countAccepted, type FleetHost, hostExec, loadInventory } from "../support/fleet";
import { pulumiEnv, repoRoot, runPulumi } from "../support/pulumi";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;

async function sh(host: FleetHost, script: string, ...args: string[]): Promise<string> {
  const r = await hostExec(host, ["sh", "-c", script, "sh", ...args]);
  if (r.code !== 0) throw new Error(`${host.name}: ${script}: ${r.stderr}`);
  return r.stdout;
}

function example(name: string) {
  const cwd = path.join(repoRoot(), "examples", name);
  const state = fs.mkdtempSync(path.join(os.tmpdir(), `plb-ex-${name}-`));
  const env = pulumiEnv({ stateDir: state, extra: { PULUMI_NODEJS_TRANSPILE_ONLY: "true" } });
  const run = (args: string[], extra: string[] = ["--stack", "ex"]) =>
    runPulumi([...args, ...extra], { cwd, env, timeoutMs: 900_000 });
  return { cwd, state, run, init: () => runPulumi(["stack", "init", "ex"], { cwd, env }) };
}

const noChanges = (out: string) =>
  /\d+ unchanged/.test(out) && !/ to (create|update|delete|replace)/.test(out);

describe("examples/ with the real Pulumi CLI", function () {
  this.timeout(1_200_000);
  before(() => {
    const link = path.join(repoRoot(), "node_modules", "pulumi-lxc-btrfs");
    if (!fs.existsSync(link)) fs.symlinkSync("..", link, "dir");
  });

  it("convert-one converts web1, is a no-op the second time, and reverts on destroy", async () => {
    const ex = example("convert-one");
    await ex.init();
    await ex.run(["up", "--yes", "--skip-preview"]);
    const outs = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout);
    expect(outs).to.include({ backingStore: "btrfs", adopted: false });
    expect(await sh(h1, "stat -c %i /var/lib/lxc/web1/rootfs")).to.equal("256\n");
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    await ex.run(["destroy", "--yes", "--skip-preview"]);
    expect(
      await sh(h1, "stat -c %i /var/lib/lxc/web1/rootfs; grep ^lxc.rootfs.path /var/lib/lxc/web1/config"),
    ).to.match(/^\d+\nlxc.rootfs.path = dir:\/var\/lib\/lxc\/web1\/rootfs\n$/);
  });

  it("clone converts web1 and starts a snapshot clone of it", async () => {
    const ex = example("clone");
    await ex.init();
    await ex.run(["up", "--yes", "--skip-preview"]);
    const outs = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout);
    expect(outs.cloneState).to.equal("RUNNING");
    expect(outs.parentUuid).to.equal(outs.sourceUuid);
    expect((await hostExec(h1, ["lxc-attach", "-n", "web1-clone", "--", "/bin/hostname"])).stdout).to.equal(
      "web1-clone\n",
    );
    await ex.run(["destroy", "--yes", "--skip-preview"]);
    expect(await sh(h1, "ls /var/lib/lxc")).to.not.include("web1-clone");
  });

  it("fleet rolls out canary first, hosts in parallel, never over the per-host limit, and previews with no SSH", async () => {
    const ex = example("fleet");
    await ex.init();
    const events = path.join(ex.state, "events.jsonl");
    const started = Date.now();
    await ex.run(["up", "--yes", "--skip-preview", "--event-log", events]);
    const wall = Date.now() - started;
    const summary = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout).summary;
    expect(Object.keys(summary).sort()).to.deep.equal(["h1", "h2"]);
    for (const h of ["h1", "h2"]) expect(summary[h].failed).to.deep.equal([]);
    // web1 may have been left converted by the clone example (retain): it is adopted, not converted.
    expect([...summary.h1.converted, ...summary.h1.adopted].sort()).to.deep.equal([
      "deb1",
      "run1",
      "web1",
      "web2",
    ]);
    expect([...summary.h2.converted, ...summary.h2.adopted].sort()).to.include.members([
      "app1",
      "app2",
      "deb2",
    ]);

    // When each conversion started and finished, from the engine's event log.
    const spans = new Map<string, { host: string; start: number; end: number }>();
    for (const line of fs.readFileSync(events, "utf8").split("\n").filter(Boolean)) {
      const e = JSON.parse(line);
      const urn: string | undefined = e.resourcePreEvent?.metadata?.urn ?? e.resOutputsEvent?.metadata?.urn;
      const m = urn && /LxcSubvolumeRootfs::fleet-(h\d)-(.+)$/.exec(urn);
      if (!m) continue;
      const span = spans.get(urn) ?? { host: m[1], start: 0, end: 0 };
      if (e.resourcePreEvent) span.start = e.timestamp;
      if (e.resOutputsEvent) span.end = e.timestamp;
      spans.set(urn, span);
    }
    const byHost = (h: string) => [...spans.values()].filter((s) => s.host === h);
    const maxOverlap = (list: { start: number; end: number }[]) =>
      Math.max(...list.map((s) => list.filter((o) => o.start <= s.start && o.end > s.start).length));
    expect(maxOverlap(byHost("h1"))).to.be.at.most(2);
    expect(maxOverlap(byHost("h2"))).to.be.at.most(2);
    // The canary (h1) wave finished before any h2 conversion started.
    expect(Math.min(...byHost("h2").map((s) => s.start))).to.be.at.least(
      Math.max(...byHost("h1").map((s) => s.end)),
    );
    console.log(
      `      fleet rollout: ${spans.size} conversions in ${wall} ms; max overlap h1=${maxOverlap(byHost("h1"))} h2=${maxOverlap(byHost("h2"))}`,
    );

    // A no-op preview: check and diff stay off the network; only discovery (1 connection per host) runs.
    const before = inv.hosts.map((h) => countAccepted(h));
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    const opened = inv.hosts.map((h, i) => countAccepted(h) - (before[i] as number));
    expect(opened).to.deep.equal([1, 1, 0]);
    await ex.run(["destroy", "--yes", "--skip-preview"]);
  });
});
