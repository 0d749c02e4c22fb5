/**
 * Every program in examples/ runs with the real Pulumi CLI against the local fleet: up, a no-op preview,
 * destroy, with the host state checked; the fleet rollout also proves its waves and per-host limit from
 * the engine's own event log. The examples read only stack config, as a user's program would: each test
 * sets it from the fleet's inventory.
 */
import { expect } from "chai";
import { exampleStack, fleetAccess } from "../support/examples";
import {
  countAccepted,
  type FleetHost,
  hostExec,
  loadInventory,
  manifest,
  TEST_CONTAINER_GLOBS,
} from "../support/fleet";
import { hostSh } from "../support/host";
import { previewChanges as changes } from "../support/pulumi";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;
const h2 = inv.hosts.find((h) => h.name === "h2") as FleetHost;

/** Polls a host for conversion journals until stopped: which containers, how many at once, when. */
function watchJournals(host: FleetHost) {
  const stopFile = `/run/plb-watch-${host.name}-${process.pid}`;
  const loop = `while [ ! -e ${stopFile} ]; do printf '@%s\\n' "$(date +%s%N)"; ls -d /var/lib/lxc/*/.plb-journal 2>/dev/null; sleep 0.05; done; rm -f ${stopFile}`;
  const running = hostExec(host, ["sh", "-c", loop], { timeoutMs: 1_200_000 });
  return {
    async stop() {
      await hostExec(host, ["touch", stopFile]);
      const out = (await running).stdout;
      const seen = new Set<string>();
      let maxAtOnce = 0;
      let first = Number.POSITIVE_INFINITY;
      let last = 0;
      for (const block of out.split("@").filter(Boolean)) {
        const [ts, ...paths] = block.trim().split("\n");
        const active = paths.filter(Boolean);
        if (active.length === 0) continue;
        const t = Number(BigInt(ts) / 1_000_000n);
        first = Math.min(first, t);
        last = Math.max(last, t);
        maxAtOnce = Math.max(maxAtOnce, active.length);
        for (const p of active) seen.add(p);
      }
      return { seen, maxAtOnce, first, last };
    },
  };
}

const noChanges = (out: string) =>
  /\d+ unchanged/.test(out) && !/ to (create|update|delete|replace)/.test(out);

describe("examples/ with the real Pulumi CLI", function () {
  this.timeout(1_200_000);

  it("convert-one converts web1, is a no-op the second time, and reverts on destroy", async () => {
    const ex = await exampleStack("convert-one", "ex", {
      host: h1.address,
      container: "web1",
      ...fleetAccess(inv),
    });
    await ex.run(["up", "--yes", "--skip-preview"]);
    const outs = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout);
    expect(outs).to.include({ backingStore: "btrfs", adopted: false });
    expect(await hostSh(h1, "stat -c %i /var/lib/lxc/web1/rootfs")).to.equal("256\n");
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    await ex.run(["destroy", "--yes", "--skip-preview"]);
    expect(
      await hostSh(h1, "stat -c %i /var/lib/lxc/web1/rootfs; grep ^lxc.rootfs.path /var/lib/lxc/web1/config"),
    ).to.match(/^\d+\nlxc.rootfs.path = dir:\/var\/lib\/lxc\/web1\/rootfs\n$/);
  });

  it("clone converts web1 and starts a snapshot clone of it", async () => {
    const ex = await exampleStack("clone", "ex", {
      host: h1.address,
      source: "web1",
      name: "web1-clone",
      ...fleetAccess(inv),
    });
    await ex.run(["up", "--yes", "--skip-preview"]);
    const outs = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout);
    expect(outs.cloneState).to.equal("RUNNING");
    expect(outs.parentUuid).to.equal(outs.sourceUuid);
    expect((await hostExec(h1, ["lxc-attach", "-n", "web1-clone", "--", "/bin/hostname"])).stdout).to.equal(
      "web1-clone\n",
    );
    await ex.run(["destroy", "--yes", "--skip-preview"]);
    expect(await hostSh(h1, "ls /var/lib/lxc")).to.not.include("web1-clone");
  });

  it("restore-point snapshots web2 with a clone of the snapshot; each preview shows exactly the next step", async () => {
    const ex = await exampleStack("restore-point", "ex", {
      host: h1.address,
      container: "web2",
      tryClone: true,
      ...fleetAccess(inv),
    });
    const snaps = "/var/lib/lxc/web2/snaps";
    expect(changes((await ex.run(["preview"])).stdout)).to.deep.equal([
      "rehearsal create",
      "restore-point create",
      "rootfs create",
    ]);
    await ex.run(["up", "--yes", "--skip-preview"]);
    const outs = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout);
    expect(outs.snapshotPath).to.equal(`${snaps}/pre-upgrade`);
    expect(outs.snapshotParentUuid).to.equal(outs.containerUuid);
    expect(outs.rehearsalParentUuid).to.equal(outs.snapshotUuid);
    expect(outs.frozenMs).to.equal(null); // web2 is stopped
    expect(await hostSh(h1, `btrfs property get -ts ${snaps}/pre-upgrade/rootfs ro`)).to.equal("ro=true\n");
    expect(await hostSh(h1, "lxc-snapshot -n web2 -L | cut -d' ' -f1-2")).to.equal(
      `pre-upgrade (${snaps})\n`,
    );
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    // The upgrade went well: the restore point (and its clone) go, nothing else.
    await ex.run(["config", "set", "restorePoint", "false"]);
    expect(changes((await ex.run(["preview"])).stdout)).to.deep.equal([
      "rehearsal delete",
      "restore-point delete",
    ]);
    await ex.run(["up", "--yes", "--skip-preview"]);
    expect(await hostSh(h1, `ls -A ${snaps}; ls /var/lib/lxc | grep -c '^web2-clone$' || true`)).to.equal(
      "0\n",
    );
    expect(await hostSh(h1, "stat -c %i /var/lib/lxc/web2/rootfs")).to.equal("256\n");
    await ex.run(["destroy", "--yes", "--skip-preview"]);
  });

  it("restore-point rolls web2 back: snapshot, change, rollback, remove; each preview shows exactly that", async () => {
    const ex = await exampleStack("restore-point", "rb", {
      host: h1.address,
      container: "web2",
      ...fleetAccess(inv),
    });
    const dir = "/var/lib/lxc/web2";
    await hostSh(
      h1,
      `mkdir -p ${dir}/rootfs/srv/app && echo v1 > ${dir}/rootfs/srv/app/app.conf && echo old > ${dir}/rootfs/srv/app/old`,
    );
    expect(changes((await ex.run(["preview"])).stdout)).to.deep.equal([
      "restore-point create",
      "rootfs create",
    ]);
    await ex.run(["up", "--yes", "--skip-preview"]);
    const taken = await manifest(h1, `${dir}/snaps/pre-upgrade/rootfs`);
    expect(taken).to.equal(await manifest(h1, `${dir}/rootfs`));

    // The "upgrade": a file rewritten, one added, one removed.
    await hostSh(
      h1,
      `echo v2 > ${dir}/rootfs/srv/app/app.conf; echo new > ${dir}/rootfs/srv/app/added; rm ${dir}/rootfs/srv/app/old`,
    );
    expect(await manifest(h1, `${dir}/rootfs`)).to.not.equal(taken);

    await ex.run(["config", "set", "rollback", "true"]);
    const preview = (await ex.run(["preview"])).stdout;
    expect(changes(preview)).to.deep.equal(["rootfs update"]);
    expect(preview).to.include(
      `[lxc-btrfs] web2: rootfs will be restored from snapshot pre-upgrade (${dir}/snaps/pre-upgrade/rootfs)`,
    );
    await ex.run(["up", "--yes", "--skip-preview"]);
    expect(await manifest(h1, `${dir}/rootfs`)).to.equal(taken);
    const outs = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout);
    expect(outs.restoredFrom).to.equal("pre-upgrade");
    expect(
      await hostSh(h1, `cat ${dir}/rootfs/srv/app/app.conf; stat -c %i ${dir}/rootfs; ls -A ${dir}`),
    ).to.equal("v1\n256\nconfig\nconfig.pre-btrfs\nrootfs\nsnaps\n");
    // The restore ran once: the next preview is a no-op, not another restore.
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);

    // Done with it: the rollback setting goes (recorded, restores nothing), and so does the snapshot.
    await ex.run(["config", "rm", "rollback"]);
    await ex.run(["config", "set", "restorePoint", "false"]);
    const last = (await ex.run(["preview"])).stdout;
    expect(changes(last)).to.deep.equal(["restore-point delete", "rootfs update"]);
    expect(last).to.not.include("will be restored");
    await ex.run(["up", "--yes", "--skip-preview"]);
    expect(await hostSh(h1, `ls -A ${dir}/snaps; cat ${dir}/rootfs/srv/app/app.conf`)).to.equal("v1\n");
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    await ex.run(["destroy", "--yes", "--skip-preview"]);
    await hostSh(h1, `rm -r ${dir}/rootfs/srv/app`);
  });

  it("fleet rolls out canary first, hosts in parallel, never over the per-host limit, and previews with no SSH", async () => {
    const ex = await exampleStack("fleet", "ex", {
      hosts: inv.hosts.filter((h) => h.fs === "btrfs").map((h) => ({ name: h.name, host: h.address })),
      exclude: TEST_CONTAINER_GLOBS,
      ...fleetAccess(inv),
    });
    // Watch each host while the rollout runs: a conversion holds a journal file from its first change
    // to its last, so the journals present at once are the conversions running at once.
    const watchers = ["h1", "h2"].map((h) => watchJournals(inv.hosts.find((x) => x.name === h) as FleetHost));
    const started = Date.now();
    await ex.run(["up", "--yes", "--skip-preview"]);
    const wall = Date.now() - started;
    const [w1, w2] = await Promise.all(watchers.map((w) => w.stop()));
    const summary = JSON.parse((await ex.run(["stack", "output", "--json"])).stdout).summary;
    // h4 and h5 are the fleet's third and fourth btrfs hosts, with no containers of their own.
    expect(Object.keys(summary).sort()).to.deep.equal(["h1", "h2", "h4", "h5"]);
    for (const h of ["h1", "h2", "h4", "h5"]) expect(summary[h].failed).to.deep.equal([]);
    for (const h of ["h4", "h5"])
      expect(summary[h]).to.deep.equal({ converted: [], adopted: [], skipped: [], failed: [] });
    // web1 may have been left converted by the clone example (retain): it is adopted, not converted.
    expect([...summary.h1.converted, ...summary.h1.adopted].sort()).to.deep.equal([
      "deb1",
      "run1",
      "sd1",
      "web1",
      "web2",
    ]);
    expect([...summary.h2.converted, ...summary.h2.adopted].sort()).to.include.members([
      "app1",
      "app2",
      "deb2",
    ]);
    expect(w1.seen.size + w2.seen.size).to.be.at.least(5);
    expect(w1.maxAtOnce).to.be.within(1, 2);
    expect(w2.maxAtOnce).to.be.within(1, 2);
    // The canary host's wave ended before the other host's began.
    expect(w2.first).to.be.greaterThan(w1.last);
    console.log(
      `      fleet rollout: ${wall} ms; at most ${w1.maxAtOnce} (h1) and ${w2.maxAtOnce} (h2) conversions at once`,
    );

    // A no-op preview: check and diff stay off the network; only discovery (1 connection per host) runs.
    const before = inv.hosts.map((h) => countAccepted(h));
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    const opened = inv.hosts.map((h, i) => countAccepted(h) - (before[i] as number));
    expect(opened).to.deep.equal(inv.hosts.map((h) => (h.fs === "btrfs" ? 1 : 0))); // h1 h2 h3 h4 h5: 1 1 0 1 1

    // A restore point on every container before an upgrade: the preview shows one snapshot per container
    // and nothing else; up takes them read-only where lxc-snapshot lists them; destroy removes them first.
    const managed: [FleetHost, string][] = [
      ...[...summary.h1.converted, ...summary.h1.adopted].map((c: string): [FleetHost, string] => [h1, c]),
      ...[...summary.h2.converted, ...summary.h2.adopted].map((c: string): [FleetHost, string] => [h2, c]),
    ];
    await ex.run(["config", "set", "snapshotBefore", "pre-upgrade"]);
    expect(changes((await ex.run(["preview"])).stdout)).to.deep.equal(
      managed.map(([h, c]) => `fleet-${h.name}-${c}-pre-upgrade create`).sort(),
    );
    await ex.run(["up", "--yes", "--skip-preview"]);
    for (const [h, c] of managed) {
      const snap = `/var/lib/lxc/${c}/snaps/pre-upgrade`;
      expect(
        await hostSh(h, `btrfs property get -ts ${snap}/rootfs ro; lxc-snapshot -n ${c} -L | cut -d' ' -f1`),
        `${h.name}/${c}`,
      ).to.equal("ro=true\npre-upgrade\n");
    }
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);

    // A golden container (web1 on h1) copied to every other btrfs host (h2, h4 and h5: three hosts), then
    // changed on h1 and refreshed: the preview names each copy, and only the change is sent.
    const copy = (k: string, v: string) => ex.run(["config", "set", "--path", `copies[0].${k}`, v]);
    for (const [k, v] of [
      ["from.host", "h1"],
      ["from.container", "web1"],
      ["to", "all"],
      ["name", "golden"],
      ["revision", "1"],
    ])
      await copy(k, v);
    const targets = ["h2", "h4", "h5"].map((n) => inv.hosts.find((x) => x.name === n) as FleetHost);
    expect(changes((await ex.run(["preview"])).stdout)).to.deep.equal([
      "fleet-h2-golden create",
      "fleet-h4-golden create",
      "fleet-h5-golden create",
    ]);
    await ex.run(["up", "--yes", "--skip-preview"]);
    const copyOuts = async () => {
      const st = JSON.parse((await ex.run(["stack", "export"])).stdout);
      const rs = st.deployment.resources as { urn: string; outputs: Record<string, unknown> }[];
      return Object.fromEntries(
        rs.filter((r) => /::fleet-h\d-golden$/.test(r.urn)).map((r) => [r.urn.split("::").pop(), r.outputs]),
      );
    };
    const first = await copyOuts();
    for (const h of targets) {
      expect(first[`fleet-${h.name}-golden`]).to.include({ sentParentUuid: null, state: "STOPPED" });
      expect(await hostSh(h, "cat /var/lib/lxc/golden/rootfs/etc/hostname")).to.equal("golden\n");
    }
    await hostSh(h1, "head -c 204800 /dev/urandom >/var/lib/lxc/web1/rootfs/golden-v2");
    await copy("revision", "2");
    const pv = (await ex.run(["preview"])).stdout;
    expect(changes(pv)).to.deep.equal([
      "fleet-h2-golden update",
      "fleet-h4-golden update",
      "fleet-h5-golden update",
    ]);
    // Each line is shown under the stack as it runs and again in the diagnostics.
    const said = [
      ...new Set(
        pv
          .split("\n")
          .filter((l) => l.includes("will be refreshed"))
          .map((l) => l.slice(l.indexOf("[lxc-btrfs]")).trim()),
      ),
    ];
    expect(said.sort()).to.deep.equal(
      targets.map(
        (h) =>
          `[lxc-btrfs] clone golden on root@${h.address}:22: will be refreshed from web1 on root@${h1.address}:22 (revision "1" -> "2"): only what changed is sent; the clone's own changes are replaced`,
      ),
    );
    await ex.run(["up", "--yes", "--skip-preview"]);
    const second = await copyOuts();
    const sum = (h: FleetHost) =>
      hostSh(h, "sha256sum </var/lib/lxc/$1/rootfs/golden-v2", h === h1 ? "web1" : "golden");
    for (const h of targets) {
      const o = second[`fleet-${h.name}-golden`];
      expect(o.sentParentUuid, h.name).to.equal(first[`fleet-${h.name}-golden`].sentUuid);
      expect(o.transferredBytes, h.name).to.be.within(204_800, 204_800 + 100_000);
      expect(o.hwaddrs, h.name).to.deep.equal(first[`fleet-${h.name}-golden`].hwaddrs);
      expect(await sum(h), h.name).to.equal(await sum(h1));
    }
    console.log(
      `      golden copies: full ${targets.map((h) => first[`fleet-${h.name}-golden`].transferredBytes).join(", ")} bytes; refresh ${targets.map((h) => second[`fleet-${h.name}-golden`].transferredBytes).join(", ")} bytes`,
    );
    expect(noChanges((await ex.run(["preview"])).stdout)).to.equal(true);
    await ex.run(["destroy", "--yes", "--skip-preview"]);
    await hostSh(h1, "rm -f /var/lib/lxc/web1/rootfs/golden-v2");
    for (const h of targets) expect(await hostSh(h, "ls -A /var/lib/lxc | grep golden || true")).to.equal("");
    for (const [h, c] of managed)
      expect(await hostSh(h, `ls -A /var/lib/lxc/${c}/snaps`), `${h.name}/${c}`).to.equal("");
  });
});
