/**
 * The main path, end to end, with the real Pulumi CLI on a local backend against the fleet: preview,
 * up, a no-op preview, drift made by hand and found by `preview --refresh`, repaired by `up --refresh`,
 * replace vs update diffs, destroy with onDelete, bad input refused before any host is touched, and no
 * secret anywhere in state or output.
 */
import * as fs from "node:fs";
import { expect } from "chai";
import { countAccepted, type FleetHost, loadInventory, manifest } from "../support/fleet";
import { hostSh } from "../support/host";
import { previewChanges as changes, exportStack, runPulumi, tempProject } from "../support/pulumi";
import { linkPackage } from "../support/repo";

const inv = loadInventory();
const h2 = inv.hosts.find((h) => h.name === "h2") as FleetHost;
const STACK = "e2e";
const KEY = fs.readFileSync(inv.users.root.privateKeyPath!, "utf8");

/** The program under test: two conversions on h2 and a clone of the first, all driven by stack config. */
const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { LxcSnapshotClone, LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";

const cfg = new pulumi.Config();
const connection = {
  host: cfg.require("host"),
  port: cfg.getNumber("port"),
  privateKey: cfg.requireSecret("privateKey"),
  knownHostsPath: cfg.require("knownHostsPath"),
};
const a = new LxcSubvolumeRootfs("rootfs-a", { connection, container: cfg.require("containerA"), onDelete: "revert" });
const b = new LxcSubvolumeRootfs("rootfs-b", { connection, container: cfg.require("containerB"), onDelete: "revert" });
const clone = new LxcSnapshotClone(
  "clone",
  { connection, source: cfg.require("containerA"), name: cfg.require("cloneName"), hostname: cfg.get("cloneHostname"), start: cfg.getBoolean("cloneStart") ?? false },
  { dependsOn: [a] },
);
export const aSubvolume = a.subvolumeUuid;
export const bBackingStore = b.configBackingStore;
export const cloneParent = clone.parentUuid;
export const cloneState = clone.state;
`;

describe("end to end with the real Pulumi CLI", function () {
  this.timeout(900_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const pulumi = (args: string[], opts: { allowFailure?: boolean; timeoutMs?: number } = {}) =>
    runPulumi([...args, "--stack", STACK], {
      cwd: dir,
      env,
      secrets: [KEY],
      timeoutMs: opts.timeoutMs ?? 600_000,
      allowFailure: opts.allowFailure,
    });
  const [A, B, CLONE] = ["app1", "app2", "e2e-clone"];

  before(async () => {
    linkPackage();
    ({ dir, env } = tempProject(
      "e2e",
      { "index.ts": PROGRAM },
      { extraEnv: { PULUMI_NODEJS_TRANSPILE_ONLY: "true" } },
    ));
    await runPulumi(["stack", "init", STACK], { cwd: dir, env });
    for (const [k, v] of Object.entries({
      host: h2.address,
      knownHostsPath: inv.knownHostsPath,
      containerA: A,
      containerB: B,
      cloneName: CLONE,
    })) {
      await pulumi(["config", "set", k, v]);
    }
    await runPulumi(["config", "set", "--secret", "privateKey", "--stack", STACK], {
      cwd: dir,
      env,
      input: KEY,
      secrets: [KEY],
    });
  });

  it("preview lists every conversion and the clone to create, touching nothing", async () => {
    const before = await manifest(h2, "/var/lib/lxc");
    const { stdout } = await pulumi(["preview"]);
    expect(changes(stdout)).to.deep.equal(["clone create", "rootfs-a create", "rootfs-b create"]);
    expect(await manifest(h2, "/var/lib/lxc")).to.equal(before);
  });

  it("up converts both and clones; the next preview shows no changes and opens no SSH connection", async () => {
    await pulumi(["up", "--yes", "--skip-preview"]);
    for (const c of [A, B])
      expect(
        await hostSh(
          h2,
          'stat -c %i "/var/lib/lxc/$1/rootfs"; grep "^lxc.rootfs.path" "/var/lib/lxc/$1/config"',
          c,
        ),
      ).to.equal(`256\nlxc.rootfs.path = btrfs:/var/lib/lxc/${c}/rootfs\n`);
    const parent = (
      await hostSh(
        h2,
        'btrfs subvolume show "/var/lib/lxc/$1/rootfs" | sed -n "s/^\\s*Parent UUID:\\s*//p"',
        CLONE,
      )
    ).trim();
    const outs = JSON.parse((await pulumi(["stack", "output", "--json"])).stdout);
    expect(outs.cloneParent).to.equal(parent);
    expect(outs.cloneParent).to.equal(outs.aSubvolume);
    const accepted = countAccepted(h2);
    const { stdout } = await pulumi(["preview"]);
    expect(changes(stdout)).to.deep.equal([]);
    expect(stdout).to.match(/4 unchanged/);
    expect(countAccepted(h2)).to.equal(accepted);
  });

  it("finds a rootfs reverted by hand and a config prefix edited by hand, and up --refresh repairs both", async () => {
    await hostSh(
      h2,
      "d=/var/lib/lxc/$1; cp -a --reflink=always $d/rootfs $d/plain && btrfs subvolume delete $d/rootfs >/dev/null && mv $d/plain $d/rootfs",
      B,
    );
    await hostSh(
      h2,
      'sed -i "s|^lxc.rootfs.path = btrfs:|lxc.rootfs.path = dir:|" "/var/lib/lxc/$1/config"',
      A,
    );
    const { stdout } = await pulumi(["preview", "--refresh"]);
    expect(changes(stdout)).to.deep.equal(["rootfs-a update", "rootfs-b update"]);
    await pulumi(["up", "--refresh", "--yes", "--skip-preview"]);
    expect(await hostSh(h2, 'stat -c %i "/var/lib/lxc/$1/rootfs"', B)).to.equal("256\n");
    expect(await hostSh(h2, 'grep "^lxc.rootfs.path" "/var/lib/lxc/$1/config"', A)).to.equal(
      `lxc.rootfs.path = btrfs:/var/lib/lxc/${A}/rootfs\n`,
    );
    expect(changes((await pulumi(["preview", "--refresh"])).stdout)).to.deep.equal([]);
  });

  it("recreates a clone deleted by hand", async () => {
    await hostSh(h2, 'lxc-destroy -n "$1"', CLONE);
    expect(changes((await pulumi(["preview", "--refresh"])).stdout)).to.deep.equal(["clone create"]);
    await pulumi(["up", "--refresh", "--yes", "--skip-preview"]);
    expect(await hostSh(h2, 'stat -c %i "/var/lib/lxc/$1/rootfs"', CLONE)).to.equal("256\n");
  });

  it("shows hostname and start as updates, and a new name as a replace", async () => {
    await pulumi(["config", "set", "cloneHostname", "e2e-host"]);
    await pulumi(["config", "set", "cloneStart", "true"]);
    expect(changes((await pulumi(["preview"])).stdout)).to.deep.equal(["clone update"]);
    await pulumi(["up", "--yes", "--skip-preview"]);
    expect(
      await hostSh(h2, 'lxc-info -n "$1" -s; grep "^lxc.uts.name" "/var/lib/lxc/$1/config"', CLONE),
    ).to.equal("State:          RUNNING\nlxc.uts.name = e2e-host\n");
    await pulumi(["config", "set", "cloneName", `${CLONE}2`]);
    const { stdout } = await pulumi(["preview"]);
    expect(stdout).to.match(/\+-\s+pulumi-nodejs:dynamic\/lxc-btrfs:LxcSnapshotClone\s+clone\s+replace/);
    await pulumi(["up", "--yes", "--skip-preview"]);
    expect(await hostSh(h2, "ls -d /var/lib/lxc/e2e-clone* ")).to.equal(`/var/lib/lxc/${CLONE}2\n`);
  });

  it("refuses bad input in preview, naming the property, before touching any host", async () => {
    const accepted = countAccepted(h2);
    await pulumi(["config", "set", "port", "70000"]);
    const bad = await pulumi(["preview"], { allowFailure: true });
    expect(bad.code).to.not.equal(0);
    expect(bad.stdout + bad.stderr).to.include("connection.port");
    expect(bad.stdout + bad.stderr).to.include("must be between 1 and 65535");
    await pulumi(["config", "rm", "port"]);
    await pulumi(["config", "set", "containerB", "../etc"]);
    const bad2 = await pulumi(["preview"], { allowFailure: true });
    expect(bad2.stdout + bad2.stderr).to.include("container");
    expect(bad2.stdout + bad2.stderr).to.include("must be a container name");
    await pulumi(["config", "set", "containerB", B]);
    expect(countAccepted(h2)).to.equal(accepted);
  });

  it("keeps the private key out of state and out of every output", async () => {
    const state = JSON.stringify(await exportStack({ cwd: dir, env, stack: STACK }));
    const keyBody = KEY.split("\n")[1];
    expect(state).to.not.include(keyBody);
    expect(state).to.include("ciphertext");
  });

  it("destroy removes the clone and reverts the conversions (onDelete: revert)", async () => {
    const { stdout, stderr } = await pulumi(["destroy", "--yes", "--skip-preview"]);
    expect(stdout + stderr).to.not.include(KEY.split("\n")[1]);
    expect(await hostSh(h2, "ls /var/lib/lxc")).to.not.include(CLONE);
    for (const c of [A, B]) {
      expect(
        await hostSh(
          h2,
          'stat -c %i "/var/lib/lxc/$1/rootfs"; grep "^lxc.rootfs.path" "/var/lib/lxc/$1/config"',
          c,
        ),
      ).to.match(new RegExp(`^\\d+\\nlxc.rootfs.path = dir:/var/lib/lxc/${c}/rootfs\\n$`));
      expect(await hostSh(h2, 'stat -c %i "/var/lib/lxc/$1/rootfs"', c)).to.not.equal("256\n");
    }
  });
});
