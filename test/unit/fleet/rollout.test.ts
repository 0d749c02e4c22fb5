/**
 * LxcFleetRollout's wiring, without an engine or a host: pulumi.runtime.setMocks stands in for the engine
 * and records every resource registered (type, name, inputs, parent, dependsOn); the outputs come from
 * the mock's answers.
 */
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { UserError } from "../../../provider/core/errors";
import { ODD_NAME_PROBLEM } from "../../../provider/fleet/plan";
import { LxcFleetRollout, type LxcFleetRolloutArgs } from "../../../provider/fleet/rollout";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  parent: string;
  dependsOn: string[];
}

let registered: Registered[] = [];
/** Containers the mock engine reports as adopted (already converted). */
const ADOPTED = new Set(["b"]);

const lastName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

before(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const state: Record<string, unknown> = { ...args.inputs };
        if (typeof args.inputs.container === "string") state.adopted = ADOPTED.has(args.inputs.container);
        if (typeof args.inputs.source === "string") {
          state.state = args.inputs.start ? "RUNNING" : "STOPPED";
          state.subvolumeUuid = `uuid-${args.inputs.name}`;
        }
        return { id: args.custom ? `${args.name}-id` : undefined, state };
      },
      call: () => ({}),
    },
    "project",
    "stack",
    false,
  );
  // The mocks' newResource is not told the dependencies: record them from the registration request.
  const settings = require("@pulumi/pulumi/runtime/settings") as {
    getMonitor(): {
      registerResource(req: RegisterRequest, cb: unknown): unknown;
    };
  };
  const monitor = settings.getMonitor();
  const inner = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    const at = registered.push({
      type: req.getType(),
      name: req.getName(),
      inputs: {},
      parent: req.getParent() ? lastName(req.getParent()) : "",
      dependsOn: req.getDependenciesList().map(lastName).sort(),
    });
    const { deserializeProperties } = require("@pulumi/pulumi/runtime/rpc") as {
      deserializeProperties(o: unknown): Record<string, unknown>;
    };
    registered[at - 1].inputs = deserializeProperties(req.getObject());
    return inner(req, cb);
  };
});

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getObject(): unknown;
}

function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Once every child is registered: the registrations of `parent`, by name (they finish in any order). */
async function children(rollout: LxcFleetRollout, parent: string): Promise<Registered[]> {
  await value(pulumi.all([rollout.urn, rollout.summary, rollout.clones]));
  await value(pulumi.all(Object.values(rollout.conversions).map((c) => c.urn)));
  await value(pulumi.all(Object.values(rollout.snapshots).map((c) => c.urn)));
  return registered.filter((r) => r.parent === parent).sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The inputs a user gave, without the dynamic provider's text and the outputs declared as nulls. */
function given(inputs: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(inputs).filter(([k, v]) => k !== "__provider" && v !== null));
}

const conn = (host: string) => ({ host, user: "root" });

function hosts(): LxcFleetRolloutArgs["hosts"] {
  return [
    { name: "h1", connection: conn("10.0.0.1"), containers: ["a", "b", "c"] },
    { name: "h2", connection: conn("10.0.0.2"), lxcPath: "/srv/lxc", containers: ["d"] },
    {
      name: "h3",
      connection: conn("10.0.0.3"),
      containers: [],
      skipped: [
        { container: "with space", reason: ODD_NAME_PROBLEM },
        { container: "e1", reason: "on ext2/ext3, not btrfs" },
      ],
    },
  ];
}

describe("LxcFleetRollout wiring (pulumi mocks)", () => {
  beforeEach(() => {
    registered = [];
  });

  it("registers one conversion per listed container, in waves, with clones after their source", async () => {
    const rollout = new LxcFleetRollout("r", {
      hosts: hosts(),
      canary: 1,
      maxConcurrentPerHost: 2,
      conversion: { ifRunning: "restart", keepBackup: true },
      clones: [
        { host: "h1", source: "a", name: "a-web", start: true, hostname: "web" },
        { host: "h2", source: "z", name: "z-copy", ifSourceRunning: "freeze" },
      ],
    });
    const summary = await value(rollout.summary);
    const clones = await value(rollout.clones);

    const rows = [...registered.filter((r) => r.name === "r"), ...(await children(rollout, "r"))].map((r) => [
      r.type,
      r.name,
      r.parent,
      r.dependsOn,
    ]);
    const ROOTFS = "pulumi-nodejs:dynamic/lxc-btrfs:LxcSubvolumeRootfs";
    const CLONE = "pulumi-nodejs:dynamic/lxc-btrfs:LxcSnapshotClone";
    expect(rows).to.deep.equal([
      ["lxc-btrfs:index:LxcFleetRollout", "r", "", []],
      // h1 is the canary wave: two at once, the third after the first
      [ROOTFS, "r-h1-a", "r", []],
      [CLONE, "r-h1-a-web", "r", ["r-h1-a"]],
      [ROOTFS, "r-h1-b", "r", []],
      [ROOTFS, "r-h1-c", "r", ["r-h1-a"]],
      // h2 waits for the whole canary wave
      [ROOTFS, "r-h2-d", "r", ["r-h1-a", "r-h1-b", "r-h1-c"]],
      // a source that is not converted here: nothing to wait for
      [CLONE, "r-h2-z-copy", "r", []],
    ]);
    const byName = new Map(registered.map((r) => [r.name, given(r.inputs)]));
    expect(byName.get("r-h1-c")).to.deep.equal({
      connection: conn("10.0.0.1"),
      container: "c",
      ifRunning: "restart",
      keepBackup: true,
    });
    expect(byName.get("r-h2-d")).to.deep.equal({
      connection: conn("10.0.0.2"),
      container: "d",
      lxcPath: "/srv/lxc",
      ifRunning: "restart",
      keepBackup: true,
    });
    expect(byName.get("r-h1-a-web")).to.deep.equal({
      connection: conn("10.0.0.1"),
      source: "a",
      name: "a-web",
      start: true,
      hostname: "web",
    });
    expect(byName.get("r-h2-z-copy")).to.deep.equal({
      connection: conn("10.0.0.2"),
      lxcPath: "/srv/lxc",
      source: "z",
      name: "z-copy",
      ifSourceRunning: "freeze",
    });
    expect(Object.keys(rollout.conversions)).to.deep.equal(["h1/a", "h1/b", "h1/c", "h2/d"]);

    expect(summary).to.deep.equal({
      h1: { converted: ["a", "c"], adopted: ["b"], skipped: [], failed: [] },
      h2: { converted: ["d"], adopted: [], skipped: [], failed: [] },
      h3: {
        converted: [],
        adopted: [],
        skipped: [`with space (${ODD_NAME_PROBLEM})`, "e1 (on ext2/ext3, not btrfs)"],
        failed: [],
      },
    });
    expect(clones).to.deep.equal({
      "h1/a-web": { state: "RUNNING", subvolumeUuid: "uuid-a-web" },
      "h2/z-copy": { state: "STOPPED", subvolumeUuid: "uuid-z-copy" },
    });
  });

  it("without a canary every host starts at once; one conversion at a time per host by default", async () => {
    const rollout = new LxcFleetRollout("s", { hosts: hosts() });
    expect((await children(rollout, "s")).map((r) => [r.name, r.dependsOn])).to.deep.equal([
      ["s-h1-a", []],
      ["s-h1-b", ["s-h1-a"]],
      ["s-h1-c", ["s-h1-b"]],
      ["s-h2-d", []],
    ]);
  });

  it("named canary hosts form the first wave, wherever they are listed", async () => {
    const rollout = new LxcFleetRollout("n", { hosts: hosts(), canary: ["h2"], maxConcurrentPerHost: 3 });
    expect((await children(rollout, "n")).map((r) => [r.name, r.dependsOn])).to.deep.equal([
      ["n-h1-a", ["n-h2-d"]],
      ["n-h1-b", ["n-h2-d"]],
      ["n-h1-c", ["n-h2-d"]],
      ["n-h2-d", []],
    ]);
  });

  it("snapshotBefore: a restore point per container after its conversion, before its clones and the next wave", async () => {
    const rollout = new LxcFleetRollout("p", {
      hosts: hosts(),
      canary: 1,
      maxConcurrentPerHost: 2,
      snapshotBefore: { name: "pre-upgrade", ifRunning: "live" },
      clones: [{ host: "h1", source: "a", name: "a-try", snapshot: "pre-upgrade" }],
    });
    const SNAP = "pulumi-nodejs:dynamic/lxc-btrfs:LxcSnapshot";
    const rows = (await children(rollout, "p")).map((r) => [r.type.split(":").pop(), r.name, r.dependsOn]);
    expect(rows).to.deep.equal([
      ["LxcSubvolumeRootfs", "p-h1-a", []],
      ["LxcSnapshot", "p-h1-a-pre-upgrade", ["p-h1-a"]],
      // the clone of a's snapshot waits for that snapshot
      ["LxcSnapshotClone", "p-h1-a-try", ["p-h1-a-pre-upgrade"]],
      ["LxcSubvolumeRootfs", "p-h1-b", []],
      ["LxcSnapshot", "p-h1-b-pre-upgrade", ["p-h1-b"]],
      // the third conversion waits for the first container's work, its snapshot included
      ["LxcSubvolumeRootfs", "p-h1-c", ["p-h1-a-pre-upgrade"]],
      ["LxcSnapshot", "p-h1-c-pre-upgrade", ["p-h1-c"]],
      // the next wave waits for every restore point of the canary wave
      ["LxcSubvolumeRootfs", "p-h2-d", ["p-h1-a-pre-upgrade", "p-h1-b-pre-upgrade", "p-h1-c-pre-upgrade"]],
      ["LxcSnapshot", "p-h2-d-pre-upgrade", ["p-h2-d"]],
    ]);
    const byName = new Map(registered.map((r) => [r.name, given(r.inputs)]));
    expect(registered.find((r) => r.name === "p-h2-d-pre-upgrade")?.type).to.equal(SNAP);
    expect(byName.get("p-h2-d-pre-upgrade")).to.deep.equal({
      connection: conn("10.0.0.2"),
      container: "d",
      lxcPath: "/srv/lxc",
      name: "pre-upgrade",
      ifRunning: "live",
    });
    expect(byName.get("p-h1-a-try")).to.deep.include({ source: "a", name: "a-try", snapshot: "pre-upgrade" });
    expect(Object.keys(rollout.snapshots)).to.deep.equal(["h1/a", "h1/b", "h1/c", "h2/d"]);
  });

  it("snapshotBefore as a plain name takes each snapshot with LxcSnapshot's defaults", async () => {
    const rollout = new LxcFleetRollout("q", { hosts: hosts().slice(1, 2), snapshotBefore: "before" });
    expect((await children(rollout, "q")).map((r) => [r.name, r.dependsOn, given(r.inputs)])).to.deep.equal([
      ["q-h2-d", [], { connection: conn("10.0.0.2"), container: "d", lxcPath: "/srv/lxc" }],
      [
        "q-h2-d-before",
        ["q-h2-d"],
        { connection: conn("10.0.0.2"), container: "d", lxcPath: "/srv/lxc", name: "before" },
      ],
    ]);
  });

  it("copies: a cross-host clone per target host, from the source host, after the source's conversion", async () => {
    const rollout = new LxcFleetRollout("c", {
      hosts: [hosts()[0], { name: "h4", connection: conn("10.0.0.4"), containers: [] }],
      copies: [
        {
          from: { host: "h1", container: "a" },
          to: "all",
          name: "a-copy",
          start: true,
          revision: "7",
          ifRunning: "restart",
        },
      ],
    });
    const clones = await value(rollout.clones);
    const rows = (await children(rollout, "c")).map((r) => [r.type.split(":").pop(), r.name, r.dependsOn]);
    expect(rows).to.deep.equal([
      ["LxcSubvolumeRootfs", "c-h1-a", []],
      ["LxcSubvolumeRootfs", "c-h1-b", ["c-h1-a"]],
      ["LxcSubvolumeRootfs", "c-h1-c", ["c-h1-b"]],
      ["LxcSnapshotClone", "c-h4-a-copy", ["c-h1-a"]],
    ]);
    expect(given(registered.find((r) => r.name === "c-h4-a-copy")?.inputs ?? {})).to.deep.equal({
      connection: conn("10.0.0.4"),
      sourceConnection: conn("10.0.0.1"),
      source: "a",
      name: "a-copy",
      start: true,
      revision: "7",
      ifRunning: "restart",
    });
    expect(clones).to.deep.equal({ "h4/a-copy": { state: "RUNNING", subvolumeUuid: "uuid-a-copy" } });
  });

  const refusals: [string, Partial<LxcFleetRolloutArgs>, string][] = [
    [
      "a canary host that is not listed",
      { canary: ["h9"] },
      "LxcFleetRollout bad: canary host h9 is not among the hosts (h1, h2, h3); name one of them, or give canary as a number of hosts",
    ],
    [
      "maxConcurrentPerHost 0",
      { maxConcurrentPerHost: 0 },
      "LxcFleetRollout bad: maxConcurrentPerHost is 0; set it to a whole number of at least 1",
    ],
    [
      "a host listed twice",
      { hosts: [...hosts(), { name: "h1", connection: conn("10.0.0.9"), containers: [] }] },
      "LxcFleetRollout bad: host h1 is listed twice in hosts; give each host one entry and a unique name",
    ],
    [
      "a container listed twice on one host",
      { hosts: [{ name: "h1", connection: conn("10.0.0.1"), containers: ["a", "b", "a"] }] },
      "LxcFleetRollout bad: container a is listed twice for host h1; list each container once",
    ],
    [
      "a copy from a host that is not listed",
      { copies: [{ from: { host: "h9", container: "a" }, to: ["h2"] }] },
      "LxcFleetRollout bad: copy of a names source host h9, which is not among the hosts",
    ],
    [
      "a clone on a host that is not listed",
      { clones: [{ host: "h7", source: "a", name: "x" }] },
      "LxcFleetRollout bad: clone x names host h7, which is not among the hosts",
    ],
  ];
  for (const [what, over, message] of refusals) {
    it(`refuses ${what} with a UserError naming the rollout (no stack trace)`, () => {
      let caught: unknown;
      try {
        new LxcFleetRollout("bad", { hosts: hosts(), ...over });
      } catch (e) {
        caught = e;
      }
      expect(caught).to.be.instanceOf(UserError);
      expect((caught as Error).message).to.equal(message);
      expect((caught as Error).stack).to.equal(message);
    });
  }

  it("discover: a host that cannot be reached is reported failed, the others still roll out", async function () {
    this.timeout(20_000);
    // Port 1 on the loopback refuses at once: discovery fails without a network wait.
    const down = { host: "127.0.0.1", port: 1, dialErrorLimit: 1, insecureSkipHostKeyCheck: true };
    const errors: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => errors.push(a.join(" "));
    let rollout: LxcFleetRollout;
    try {
      rollout = await LxcFleetRollout.discover("d", { hosts: [{ name: "down", connection: down }] });
    } finally {
      console.error = orig;
    }
    const summary = await value(rollout.summary);
    // (the transport repeats the error code: ssh.ts classifyDialError prefixes it to a message that has it)
    const why =
      "cannot connect to root@127.0.0.1:1: ECONNREFUSED 127.0.0.1:1 (is the host up and sshd listening on that port?)";
    expect(summary).to.deep.equal({
      down: { converted: [], adopted: [], skipped: [], failed: [`discovery: ${why}`] },
    });
    expect(errors).to.deep.equal([`[lxc-btrfs] host down: discovery failed: ${why}`]);
    expect((await children(rollout, "d")).map((r) => r.name)).to.deep.equal([]);
    expect(rollout.conversions).to.deep.equal({});
  });

  it("the constructor takes (name, args, opts) only: discovery failures are not a public argument", () => {
    expect(LxcFleetRollout.length).to.equal(3);
  });
});
