import { expect } from "chai";
import { validate } from "../../../provider/core/inputs";
import { type RootfsInputs, rootfsArgsSchema } from "../../../provider/rootfs/inputs";
import { diffRootfs, type RootfsOutputs, resourceId } from "../../../provider/rootfs/provider";

function inputs(raw: Record<string, unknown> = {}, conn: Record<string, unknown> = {}): RootfsInputs {
  const res = validate(rootfsArgsSchema, { connection: { host: "h1", ...conn }, container: "c1", ...raw });
  if (!res.ok) throw new Error(JSON.stringify(res.failures));
  return res.value;
}

/** What create returned for `inputs()`, in sync with the host. */
function outputs(i: RootfsInputs = inputs(), over: Partial<RootfsOutputs> = {}): RootfsOutputs {
  return {
    ...i,
    target: "root@h1:22",
    rootfsPath: "/var/lib/lxc/c1/rootfs",
    rootfsIsSubvolume: true,
    subvolumeId: 256,
    subvolumeUuid: "451b3e71-7255-7642-9e24-3d0cf12faf54",
    configBackingStore: "btrfs",
    adopted: false,
    entries: 301,
    files: 301,
    bytes: 3970426,
    state: "STOPPED",
    interrupted: null,
    restoredFrom: null,
    restoredSnapshotUuid: null,
    restoredAt: null,
    ...over,
  };
}

describe("rootfs-provider: resourceId", () => {
  it("is host:port:lxcPath/container", () => {
    expect(resourceId(inputs({ lxcPath: "/srv/lxc" }, { port: 2222 }))).to.equal("h1:2222:/srv/lxc/c1");
    expect(resourceId(inputs())).to.equal("h1:22:/var/lib/lxc/c1");
  });
});

describe("rootfs-provider: diffRootfs", () => {
  const table: [string, Partial<RootfsOutputs>, RootfsInputs, { changes: boolean; replaces: string[] }][] = [
    ["identical", outputs(), inputs(), { changes: false, replaces: [] }],
    [
      "host changes replace",
      outputs(),
      inputs({}, { host: "h2" }),
      { changes: true, replaces: ["connection"] },
    ],
    [
      "port changes replace",
      outputs(),
      inputs({}, { port: 2222 }),
      { changes: true, replaces: ["connection"] },
    ],
    [
      "container changes replace",
      outputs(),
      inputs({ container: "c2" }),
      { changes: true, replaces: ["container"] },
    ],
    [
      "lxcPath changes replace",
      outputs(),
      inputs({ lxcPath: "/srv/lxc" }),
      { changes: true, replaces: ["lxcPath"] },
    ],
    [
      "host and container together",
      outputs(),
      inputs({ container: "c2" }, { host: "h2" }),
      { changes: true, replaces: ["connection", "container"] },
    ],
    ["user changes update", outputs(), inputs({}, { user: "admin" }), { changes: true, replaces: [] }],
    [
      "a new password updates",
      outputs(),
      inputs({}, { password: "s3cret" }),
      { changes: true, replaces: [] },
    ],
    ["ifRunning updates", outputs(), inputs({ ifRunning: "restart" }), { changes: true, replaces: [] }],
    ["keepBackup updates", outputs(), inputs({ keepBackup: true }), { changes: true, replaces: [] }],
    ["onDelete updates", outputs(), inputs({ onDelete: "revert" }), { changes: true, replaces: [] }],
    [
      "nestedSubvolumes updates",
      outputs(),
      inputs({ nestedSubvolumes: "keep" }),
      { changes: true, replaces: [] },
    ],
    [
      "drift: rootfs no longer a subvolume",
      outputs(inputs(), { rootfsIsSubvolume: false }),
      inputs(),
      { changes: true, replaces: [] },
    ],
    [
      "drift: config back to dir",
      outputs(inputs(), { configBackingStore: "dir" }),
      inputs(),
      { changes: true, replaces: [] },
    ],
    [
      "drift: config line missing",
      outputs(inputs(), { configBackingStore: "missing" }),
      inputs(),
      { changes: true, replaces: [] },
    ],
    [
      "drift: interrupted conversion",
      outputs(inputs(), { interrupted: "convert interrupted in phase swapping on root@h1:22" }),
      inputs(),
      { changes: true, replaces: [] },
    ],
    [
      "outputs that differ but are not drift (state, files, adopted)",
      outputs(inputs(), { state: "RUNNING", files: 5, adopted: true, subvolumeId: 300 }),
      inputs(),
      { changes: false, replaces: [] },
    ],
  ];
  for (const [what, olds, news, want] of table) {
    it(what, () => {
      expect(diffRootfs(olds, news)).to.deep.equal(want);
    });
  }

  it("inputs stored in another key order, or an input stored as null, are not changes", () => {
    const i = inputs();
    expect(diffRootfs(Object.fromEntries(Object.entries(outputs(i)).reverse()), i)).to.deep.equal({
      changes: false,
      replaces: [],
    });
    const withNull = { ...outputs(i), connection: { ...i.connection, password: null } };
    expect(diffRootfs(withNull as unknown as RootfsOutputs, i)).to.deep.equal({
      changes: false,
      replaces: [],
    });
  });

  it("key order, undefined values and __ keys inside connection are not changes", () => {
    const i = inputs();
    const reordered = Object.fromEntries(Object.entries(i.connection).reverse());
    const olds = outputs(i, {
      connection: {
        ...reordered,
        password: undefined,
        __secret: "x",
      } as unknown as RootfsInputs["connection"],
    });
    expect(diffRootfs(olds, i)).to.deep.equal({ changes: false, replaces: [] });
  });
});
