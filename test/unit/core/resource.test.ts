/**
 * What the classes register with the engine (through Pulumi's mocks): the inputs exactly as the user gave
 * them (so no existing stack sees a change), and a property for every input and output, filled from what the
 * provider stored, including inputs left to their default.
 */
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { LxcSnapshotClone } from "../../../provider/clone/resource";
import { secretConnection, storedProvider } from "../../../provider/core/resource";
import { LxcSubvolumeRootfs } from "../../../provider/rootfs/resource";
import { LxcSnapshot } from "../../../provider/snapshot/resource";

type Registered = { type: string; name: string; inputs: Record<string, unknown> };

function resolved<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply(resolve));
}

/** What the providers store for the resources below: inputs with defaults, and every output. */
const STORED: Record<string, Record<string, unknown>> = {
  "pulumi-nodejs:dynamic/lxc-btrfs:LxcSubvolumeRootfs": {
    lxcPath: "/var/lib/lxc",
    ifRunning: "fail",
    target: "root@h1:22",
    subvolumeId: 256,
    entries: 301,
    files: 301,
    interrupted: null,
  },
  "pulumi-nodejs:dynamic/lxc-btrfs:LxcSnapshotClone": {
    lxcPath: "/var/lib/lxc",
    start: false,
    actualHostname: "c1",
    adopted: false,
    drift: ["state is RUNNING, want STOPPED"],
  },
};

describe("resource classes: what they register", () => {
  const registered: Registered[] = [];
  // Mocks are global: put back whatever another suite's root hook had set (fleet/rollout.test.ts).
  const settings = require("@pulumi/pulumi/runtime/settings") as {
    getMonitor(): unknown;
    setMockOptions(monitor: unknown, project: string, stack: string, preview: boolean): void;
  };
  let previous: unknown;
  before(async () => {
    previous = settings.getMonitor();
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          return { id: `${args.name}-id`, state: { ...args.inputs, ...STORED[args.type] } };
        },
        call: () => ({}),
      },
      "project",
      "stack",
      false,
    );
  });
  after(() => {
    if (previous) settings.setMockOptions(previous, "project", "stack", false);
  });

  it("LxcSubvolumeRootfs sends only the inputs given; every input and output is a property", async () => {
    const r = new LxcSubvolumeRootfs("r1", { connection: { host: "h1" }, container: "c1" });
    expect(await resolved(r.container)).to.equal("c1");
    // Left to its default: filled from state.
    expect(await resolved(r.lxcPath)).to.equal("/var/lib/lxc");
    expect(await resolved(r.ifRunning)).to.equal("fail");
    expect(await resolved(r.subvolumeId)).to.equal(256);
    expect(await resolved(r.entries)).to.equal(301);
    expect(await resolved(r.files)).to.equal(301);
    expect(await resolved(r.interrupted)).to.equal(null);
    // Not stored by this mock: present, and undefined.
    expect(await resolved(r.keepBackup)).to.equal(undefined);
    const sent = registered.find((x) => x.name === "r1");
    expect(Object.keys(sent?.inputs ?? {}).sort()).to.deep.equal(["__provider", "connection", "container"]);
    expect(sent?.inputs.connection).to.deep.equal({ host: "h1" });
  });

  it("LxcSnapshotClone: the same, with actualHostname, adopted and drift", async () => {
    const c = new LxcSnapshotClone("c1", {
      connection: { host: "h1" },
      source: "s1",
      name: "c1",
      hostname: undefined,
    });
    expect(await resolved(c.name)).to.equal("c1");
    expect(await resolved(c.lxcPath)).to.equal("/var/lib/lxc");
    expect(await resolved(c.actualHostname)).to.equal("c1");
    expect(await resolved(c.adopted)).to.equal(false);
    expect(await resolved(c.drift)).to.deep.equal(["state is RUNNING, want STOPPED"]);
    expect(await resolved(c.hostname)).to.equal(undefined);
    const sent = registered.find((x) => x.name === "c1");
    expect(Object.keys(sent?.inputs ?? {}).sort()).to.deep.equal([
      "__provider",
      "connection",
      "name",
      "source",
    ]);
  });

  it("each class registers the type pulumi.dynamic.Resource gave it (URNs unchanged) and a one-line provider", async () => {
    const conn = { connection: { host: "h1" } };
    const made = [
      [
        "t-rootfs",
        new LxcSubvolumeRootfs("t-rootfs", { ...conn, container: "c1" }),
        "LxcSubvolumeRootfs",
        "rootfs",
      ],
      [
        "t-clone",
        new LxcSnapshotClone("t-clone", { ...conn, source: "s1", name: "c2" }),
        "LxcSnapshotClone",
        "clone",
      ],
      [
        "t-snap",
        new LxcSnapshot("t-snap", { ...conn, container: "c1", name: "pre" }),
        "LxcSnapshot",
        "snapshot",
      ],
    ] as const;
    for (const [name, r, type, kind] of made) {
      expect(await resolved(r.urn)).to.match(
        new RegExp(`::pulumi-nodejs:dynamic/lxc-btrfs:${type}::${name}$`),
      );
      const sent = registered.find((x) => x.name === name);
      expect(sent?.type).to.equal(`pulumi-nodejs:dynamic/lxc-btrfs:${type}`);
      expect(sent?.inputs.__provider).to.equal(storedProvider(kind));
    }
  });
});

describe("secretConnection: every connection a resource takes is secret in state", () => {
  it("adds connection, and the other connections named, to the options' secret outputs", () => {
    expect(secretConnection(undefined).additionalSecretOutputs).to.deep.equal(["connection"]);
    expect(
      secretConnection({ additionalSecretOutputs: ["x"], protect: true }, "sourceConnection"),
    ).to.deep.equal({ additionalSecretOutputs: ["x", "connection", "sourceConnection"], protect: true });
  });
});
