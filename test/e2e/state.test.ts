/**
 * What each resource stores, with the real Pulumi CLI on fleet host h4: one LxcSubvolumeRootfs, LxcSnapshot
 * and LxcSnapshotClone, and the bench's baseline, a trivial dynamic resource (a provider with `create` only).
 * - Each of ours stores at most 1.5 times the trivial resource's bytes (issue #25): the stored provider is one
 *   line (core/resource.ts, storedProvider), where 0.2.0 stored the closure serializer's 2.2 KB twice.
 * - A stack written by 0.2.0 keeps working with no diff: the same state with each stored provider as 0.2.0
 *   wrote it, and the clone's secret outputs as 0.2.0 listed them (test/fixtures/state-0.2.0.json is real
 *   0.2.0 state of this program; the unit test state-0.2.0.test.ts checks it stores nothing else
 *   differently) previews no change, refreshes unchanged, and `pulumi up` changes nothing and opens no SSH
 *   connection; so does every run after.
 */
import * as fs from "node:fs";
import { expect } from "chai";
import { countAccepted, type FleetHost, loadInventory } from "../support/fleet";
import { destroyContainers, makeBusybox, NO_NETWORK } from "../support/host";
import {
  previewChanges as changes,
  configSetAllArgs,
  exportStack,
  type PulumiStateResource,
  runPulumi,
  tempProject,
} from "../support/pulumi";
import { linkPackage, repoRoot } from "../support/repo";

const inv = loadInventory();
const h4 = inv.hosts.find((h) => h.name === "h4") as FleetHost;
const STACK = "state";
const [A, CLONE] = ["i25s", "i25s-c"];

/** The program test/fixtures/state-0.2.0.json was written by (with 0.2.0 installed). */
const PROGRAM = `const pulumi = require("@pulumi/pulumi");
const { LxcSnapshot, LxcSnapshotClone, LxcSubvolumeRootfs } = require("pulumi-lxc-btrfs");

const cfg = new pulumi.Config();
const connection = {
  host: cfg.require("host"),
  privateKeyPath: cfg.require("privateKeyPath"),
  knownHostsPath: cfg.require("knownHostsPath"),
};
const a = new LxcSubvolumeRootfs("a", { connection, container: cfg.require("a") });
new LxcSnapshot("snap", { connection, container: cfg.require("a"), name: "pre" }, { dependsOn: [a] });
new LxcSnapshotClone("clone", { connection, source: cfg.require("a"), name: cfg.require("clone") }, { dependsOn: [a] });

// The bench's baseline (bench/programs/preview-trivial.ts): a provider with create only.
const provider = {
  async create(inputs) {
    return { id: \`trivial-\${inputs.index}\`, outs: inputs };
  },
};
class Trivial extends pulumi.dynamic.Resource {
  constructor(name, index) {
    super(provider, name, { index }, {});
  }
}
new Trivial("trivial-0", 0);
`;

const OURS = ["LxcSubvolumeRootfs", "LxcSnapshot", "LxcSnapshotClone"];
const typeOf = (r: PulumiStateResource) => r.type.split(":").pop() as string;
/** A resource's bytes in the state file (the backend writes it as compact JSON). */
const bytes = (r: PulumiStateResource) => Buffer.byteLength(JSON.stringify(r));

/** 0.2.0's stored provider for each of our types, from the real state in the fixture. */
function providers020(): Record<string, string> {
  const state = JSON.parse(fs.readFileSync(`${repoRoot()}/test/fixtures/state-0.2.0.json`, "utf8"));
  return Object.fromEntries(
    (state.deployment.resources as PulumiStateResource[]).map((r) => [
      typeOf(r),
      String(r.inputs?.__provider),
    ]),
  );
}

describe("state per resource, and a stack written by 0.2.0 (real CLI, h4)", function () {
  this.timeout(600_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const pulumi = (args: string[]) =>
    runPulumi([...args, "--stack", STACK], { cwd: dir, env, timeoutMs: 300_000 });

  before(async () => {
    linkPackage();
    await destroyContainers(h4, CLONE, A);
    await makeBusybox(h4, A, NO_NETWORK);
    ({ dir, env } = tempProject("state", { "index.js": PROGRAM }, { main: "index.js" }));
    await runPulumi(["stack", "init", STACK], { cwd: dir, env });
    await pulumi(
      configSetAllArgs({
        host: h4.address,
        a: A,
        clone: CLONE,
        privateKeyPath: inv.users.root.privateKeyPath,
        knownHostsPath: inv.knownHostsPath,
      }),
    );
    await pulumi(["up", "--yes", "--skip-preview"]);
  });

  after(async () => {
    if (dir) await pulumi(["destroy", "--yes", "--skip-preview"]).catch(() => undefined);
    await destroyContainers(h4, CLONE, A);
  });

  it("each of our resources stores at most 1.5 times a trivial dynamic resource's bytes", async () => {
    const resources = (await exportStack({ cwd: dir, env, stack: STACK })).deployment.resources ?? [];
    const trivial = resources.find((r) => typeOf(r) === "Resource") as PulumiStateResource;
    const sizes = Object.fromEntries(
      resources.filter((r) => OURS.includes(typeOf(r))).map((r) => [typeOf(r), bytes(r)]),
    );
    console.log(`      state bytes per resource: trivial ${bytes(trivial)}, ${JSON.stringify(sizes)}`);
    expect(Object.keys(sizes).sort()).to.deep.equal([...OURS].sort());
    for (const [type, n] of Object.entries(sizes)) expect(n, type).to.be.at.most(1.5 * bytes(trivial));
  });

  it("the connection's output copy is still one secret; a clone on its source's host lists no sourceConnection", async () => {
    const resources = (await exportStack({ cwd: dir, env, stack: STACK })).deployment.resources ?? [];
    for (const r of resources.filter((x) => OURS.includes(typeOf(x)))) {
      expect(r.outputs?.connection, typeOf(r)).to.have.property("ciphertext");
      expect(r.additionalSecretOutputs, typeOf(r)).to.deep.equal(["connection"]);
      expect(r.outputs, typeOf(r)).to.not.have.property("sourceConnection");
    }
  });

  describe("the same state with each stored provider as 0.2.0 wrote it", () => {
    before(async () => {
      const old = providers020();
      const state = await exportStack({ cwd: dir, env, stack: STACK });
      for (const r of state.deployment.resources ?? []) {
        if (!OURS.includes(typeOf(r))) continue;
        (r.inputs as Record<string, unknown>).__provider = old[typeOf(r)];
        (r.outputs as Record<string, unknown>).__provider = old[typeOf(r)];
        // 0.2.0 listed sourceConnection as a secret output of every clone.
        if (typeOf(r) === "LxcSnapshotClone") r.additionalSecretOutputs = ["connection", "sourceConnection"];
      }
      const file = `${dir}/state-0.2.0.json`;
      fs.writeFileSync(file, JSON.stringify(state));
      await pulumi(["stack", "import", "--file", file]);
      expect(JSON.stringify(await exportStack({ cwd: dir, env, stack: STACK }))).to.include(
        "}).apply(undefined, undefined).apply(this, arguments);",
      );
    });

    it("preview shows no change and opens no SSH connection", async () => {
      const logins = countAccepted(h4);
      const { stdout } = await pulumi(["preview"]);
      expect(changes(stdout)).to.deep.equal([]);
      expect(stdout).to.match(/\b5 unchanged\b/);
      expect(countAccepted(h4)).to.equal(logins);
    });

    it("refresh finds every resource unchanged (reading each on the host, as a refresh does)", async () => {
      const logins = countAccepted(h4);
      const { stdout } = await pulumi(["refresh", "--yes", "--skip-preview"]);
      expect(stdout).to.match(/\b5 unchanged\b/);
      expect(stdout).to.not.match(/\bupdated\b/);
      expect(countAccepted(h4) - logins).to.be.within(1, OURS.length);
    });

    it("up changes nothing and opens no SSH connection; the next refresh and up neither", async () => {
      for (const args of [
        ["up", "--yes", "--skip-preview"],
        ["refresh", "--yes", "--skip-preview"],
        ["up", "--yes", "--skip-preview"],
      ]) {
        const logins = countAccepted(h4);
        const { stdout } = await pulumi(args);
        expect(stdout, args[0]).to.match(/\b5 unchanged\b/);
        expect(stdout, args[0]).to.not.match(/\b(updated|created|deleted|replaced)\b/);
        if (args[0] === "up") expect(countAccepted(h4) - logins, "up").to.equal(0);
      }
      expect(changes((await pulumi(["preview"])).stdout)).to.deep.equal([]);
    });
  });
});
