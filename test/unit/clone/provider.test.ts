import { expect } from "chai";
import { type CloneInputs, cloneArgsSchema } from "../../../provider/clone/inputs";
import { parseCloneInspection } from "../../../provider/clone/inspection";
import { type CloneOutputs, cloneEdits, diffClone } from "../../../provider/clone/provider";
import { validate } from "../../../provider/core/inputs";
import { fixture } from "../fixtures";

function inputs(raw: Record<string, unknown> = {}, conn: Record<string, unknown> = {}): CloneInputs {
  const res = validate(cloneArgsSchema, {
    connection: { host: "h1", ...conn },
    source: "src",
    name: "web1",
    ...raw,
  });
  if (!res.ok) throw new Error(JSON.stringify(res.failures));
  return res.value;
}

/** What create returned for `inputs()`, in sync with the host. */
function outputs(i: CloneInputs = inputs(), over: Partial<CloneOutputs> = {}): CloneOutputs {
  return {
    ...i,
    target: "root@h1:22",
    rootfsPath: `${i.lxcPath}/${i.name}/rootfs`,
    subvolumeId: 261,
    subvolumeUuid: "d557aa90-1888-a143-9253-252d5036c78b",
    parentUuid: "451b3e71-7255-7642-9e24-3d0cf12faf54",
    sourceGeneration: 7,
    state: "STOPPED",
    hwaddrs: ["00:16:3e:32:4f:ee"],
    actualHostname: "web1",
    adopted: false,
    drift: [],
    sentUuid: null,
    transferredBytes: null,
    sentParentUuid: null,
    ...over,
  };
}

type Diff = ReturnType<typeof diffClone>;
const none: Diff = { changes: false, replaces: [], deleteBeforeReplace: false };
const update: Diff = { changes: true, replaces: [], deleteBeforeReplace: false };

describe("clone-provider: diffClone", () => {
  const table: [string, Partial<CloneOutputs>, CloneInputs, Diff][] = [
    ["identical", outputs(), inputs(), none],
    [
      "source changes: replace, and the same name must be deleted first",
      outputs(),
      inputs({ source: "other" }),
      { changes: true, replaces: ["source"], deleteBeforeReplace: true },
    ],
    [
      "name changes: replace, the new clone can be made first",
      outputs(),
      inputs({ name: "web2" }),
      { changes: true, replaces: ["name"], deleteBeforeReplace: false },
    ],
    [
      "lxcPath changes: replace, another directory, made first",
      outputs(),
      inputs({ lxcPath: "/srv/lxc" }),
      { changes: true, replaces: ["lxcPath"], deleteBeforeReplace: false },
    ],
    [
      "host changes: replace on another host, made first",
      outputs(),
      inputs({}, { host: "h2" }),
      { changes: true, replaces: ["connection"], deleteBeforeReplace: false },
    ],
    [
      "port changes: treated as another host",
      outputs(),
      inputs({}, { port: 2222 }),
      { changes: true, replaces: ["connection"], deleteBeforeReplace: false },
    ],
    [
      "source and name change together",
      outputs(),
      inputs({ source: "other", name: "web2" }),
      { changes: true, replaces: ["source", "name"], deleteBeforeReplace: false },
    ],
    ["start changes: update", outputs(), inputs({ start: true }), update],
    ["hostname set: update", outputs(), inputs({ hostname: "www.example.com" }), update],
    ["hostname removed: update", outputs(inputs({ hostname: "www.example.com" })), inputs(), update],
    ["ifSourceRunning changes: update", outputs(), inputs({ ifSourceRunning: "freeze" }), update],
    ["user changes: update", outputs(), inputs({}, { user: "admin" }), update],
    [
      "drift that update repairs",
      outputs(inputs(), { drift: ["hostname is web9, want web1", "state is RUNNING, want STOPPED"] }),
      inputs(),
      update,
    ],
    [
      "drift that needs a new snapshot: replace under the same name, deleted first",
      outputs(inputs(), { drift: ["rootfs is no longer a snapshot of the source"] }),
      inputs(),
      { changes: true, replaces: ["name"], deleteBeforeReplace: true },
    ],
    [
      "a config no longer btrfs: replaces",
      outputs(inputs(), { drift: ["lxc.rootfs.path is dir:/var/lib/lxc/web1/rootfs"] }),
      inputs(),
      { changes: true, replaces: ["name"], deleteBeforeReplace: true },
    ],
    [
      "replace drift plus a source change: one replace, for source",
      outputs(inputs(), { drift: ["rootfs is no longer a subvolume"] }),
      inputs({ source: "other" }),
      { changes: true, replaces: ["source"], deleteBeforeReplace: true },
    ],
    [
      "replace drift plus a new name: made first under the new name",
      outputs(inputs(), { drift: ["rootfs is no longer a subvolume"] }),
      inputs({ name: "web2" }),
      { changes: true, replaces: ["name"], deleteBeforeReplace: false },
    ],
    [
      "outputs that differ but are not drift",
      outputs(inputs(), { state: "RUNNING", subvolumeId: 999, adopted: true, actualHostname: "x" }),
      inputs(),
      none,
    ],
  ];
  for (const [what, olds, news, want] of table) {
    it(what, () => {
      expect(diffClone(olds, news)).to.deep.equal(want);
    });
  }

  describe("state that differs only in form is no change", () => {
    const i = inputs({ hostname: "www.example.com" });
    const reordered = Object.fromEntries(Object.entries(i.connection).reverse());
    const form: [string, Partial<CloneOutputs>][] = [
      ["connection keys in another order", { connection: reordered as CloneInputs["connection"] }],
      [
        "undefined, null and __ keys inside connection",
        {
          connection: {
            ...i.connection,
            password: undefined,
            privateKey: null,
            __secret: "x",
          } as unknown as CloneInputs["connection"],
        },
      ],
      ["inputs in another key order", Object.fromEntries(Object.entries(outputs(i)).reverse())],
    ];
    for (const [what, over] of form) {
      it(what, () => expect(diffClone({ ...outputs(i), ...over }, i)).to.deep.equal(none));
    }
    it("an input stored as null is an input not given", () => {
      const noHostname = inputs();
      const stored = { ...outputs(noHostname), hostname: null } as unknown as CloneOutputs;
      expect(diffClone(stored, noHostname)).to.deep.equal(none);
    });
  });

  it("old state without drift or connection (older provider version) still diffs", () => {
    const { drift: _d, ...old } = outputs();
    expect(diffClone(old, inputs())).to.deep.equal(none);
    const { connection: _c, ...noConn } = outputs();
    expect(diffClone(noConn, inputs())).to.deep.equal(update);
  });
});

describe("clone-provider: cloneEdits (what the one `finish` round trip writes)", () => {
  // Real inspection of clone `cl` of `sv` right after lxc-copy -s, before our fixups (capture.sh).
  const insp = parseCloneInspection(fixture("clone-inspect.bin"));
  const lxcPath = /btrfs:(\S+)\/sv\/rootfs/.exec(insp.sourceConfig)?.[1] as string;
  const mine = (raw: Record<string, unknown> = {}) => inputs({ lxcPath, source: "sv", name: "cl", ...raw });
  const rand = () => 0.5;

  it("a fresh snapshot: hosts rewritten, hostname kept, nothing started; counts are the byte lengths", () => {
    const e = cloneEdits(mine(), insp, rand);
    const hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tcl.example.com cl # was sv\n";
    expect(e).to.deep.equal({
      counts: ["-", "-", String(Buffer.byteLength(hosts))],
      action: "-",
      stdin: hosts,
    });
  });

  it("a new hostname rewrites config, /etc/hostname and /etc/hosts, back to back, counted in bytes", () => {
    const withUtf8 = { ...insp, cloneHosts: `${insp.cloneHosts}# Zürich office\n` };
    const e = cloneEdits(mine({ hostname: "web7", start: true }), withUtf8, rand);
    if (!e) throw new Error("expected edits");
    expect(e.action).to.equal("start");
    const [c, h, x] = e.counts.map(Number);
    const bytes = Buffer.from(e.stdin, "utf8");
    expect(bytes.length).to.equal(c + h + x);
    expect(bytes.subarray(0, c).toString()).to.contain("lxc.uts.name = web7\n");
    expect(bytes.subarray(c, c + h).toString()).to.equal("web7\n");
    expect(bytes.subarray(c + h).toString()).to.equal(
      "127.0.0.1\tlocalhost\n127.0.1.1\tweb7.example.com web7 # was sv\n# Zürich office\n",
    );
  });

  it("a clone already as declared needs no round trip", () => {
    const done = { ...insp, cloneHosts: (cloneEdits(mine(), insp, rand) as { stdin: string }).stdin };
    expect(cloneEdits(mine(), done, rand)).to.equal(undefined);
  });

  it("a running clone declared stopped is only stopped", () => {
    const done = { ...insp, cloneHosts: (cloneEdits(mine(), insp, rand) as { stdin: string }).stdin };
    const running = { ...done, clone: { ...done.clone, state: "RUNNING" } };
    expect(cloneEdits(mine(), running, rand)).to.deep.equal({
      counts: ["-", "-", "-"],
      action: "stop",
      stdin: "",
    });
  });
});
