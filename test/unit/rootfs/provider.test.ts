import { expect } from "chai";
import {
  compareTreeReports,
  hardlinkGroups,
  nextStepMarker,
  verifyReport,
} from "../../../provider/rootfs/steps";
import { diffRootfs, type RootfsOutputs, resourceId } from "../../../provider/rootfs/provider";
import { type RootfsInputs, rootfsArgsSchema } from "../../../provider/rootfs/inputs";
import { validate } from "../../../provider/core/inputs";
import { fixture } from "../fixtures";

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

/** Items joined as the verify step prints them: each followed by NUL. */
const z = (...items: string[]) => items.map((x) => `${x}\0`).join("");

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

describe("rootfs-provider: hardlinkGroups", () => {
  it("nothing is an empty list", () => {
    expect(hardlinkGroups("")).to.equal("[]");
  });

  it("groups paths by inode, sorted within and across groups", () => {
    expect(hardlinkGroups(z("9 ./z", "5 ./b", "9 ./c", "5 ./a"))).to.equal('[["./a","./b"],["./c","./z"]]');
  });

  it("is independent of inode numbers and listing order", () => {
    const a = hardlinkGroups(z("100 ./x", "200 ./y", "100 ./x2", "200 ./y2"));
    const b = hardlinkGroups(z("7 ./y2", "3 ./x2", "7 ./y", "3 ./x"));
    expect(a).to.equal(b);
  });

  it("keeps spaces in paths (split at the first space only)", () => {
    expect(hardlinkGroups(z("1 ./root/c d", "1 ./root/a"))).to.equal('[["./root/a","./root/c d"]]');
  });

  it("differs when the grouping differs", () => {
    expect(hardlinkGroups(z("1 ./a", "1 ./b", "2 ./c"))).to.not.equal(
      hardlinkGroups(z("1 ./a", "2 ./b", "2 ./c")),
    );
  });

  it("the real report's two halves (different inodes) give the same groups", () => {
    const out = fixture("verify-ok.bin");
    const rest = out.slice(out.indexOf("@@a\0") + 4);
    const a = rest.slice(0, rest.indexOf("@@b\0"));
    const b = rest.slice(rest.indexOf("@@b\0") + 4);
    expect(a).to.not.equal(b);
    expect(hardlinkGroups(a)).to.equal(
      '[["./bin/busybox","./sbin/init"],["./root/a","./root/b","./root/c d"]]',
    );
    expect(hardlinkGroups(b)).to.equal(hardlinkGroups(a));
  });
});

describe("rootfs-provider: compareTreeReports", () => {
  const OK = fixture("verify-ok.bin");

  it("the real report of a reflink copy is ok with its entry count", () => {
    expect(compareTreeReports(OK)).to.deep.equal({ ok: true, entries: 308 });
  });

  it("the real report after clearing an immutable flag in the copy: flags differ", () => {
    expect(compareTreeReports(fixture("verify-flags-lost.bin"))).to.deep.equal({
      ok: false,
      what: "inode flags differ",
    });
  });

  it("the real report after a chmod in the copy: metadata differs", () => {
    expect(compareTreeReports(fixture("verify-mode-differs.bin"))).to.deep.equal({
      ok: false,
      what: "metadata differs",
    });
  });

  const replaceLine = (key: string, value: string) =>
    OK.replace(new RegExp(`^${key}=.*$`, "m"), `${key}=${value}`);
  const table: [string, string, { ok: false; what: string }][] = [
    ["count differs", replaceLine("b_count", "307"), { ok: false, what: "entry count differs" }],
    ["rdev differs", replaceLine("b_rdev", "0".repeat(64)), { ok: false, what: "device numbers differ" }],
    ["xattr differs", replaceLine("a_xattr", "unavailable"), { ok: false, what: "xattrs differ" }],
    [
      "flags missing (a host script from before inode flags were verified)",
      OK.replace(/^b_flags=.*\n/m, ""),
      { ok: false, what: "no flags in the verification report" },
    ],
    [
      "main missing",
      OK.replace(/^b_main=.*\n/m, ""),
      { ok: false, what: "no main in the verification report" },
    ],
    [
      "xattr missing",
      OK.replace(/^a_xattr=.*\n/m, ""),
      { ok: false, what: "no xattr in the verification report" },
    ],
    ["@@b missing", OK.slice(0, OK.indexOf("@@b\0")), { ok: false, what: "hardlink report missing" }],
    ["@@a missing", OK.replace("@@a\0", ""), { ok: false, what: "hardlink report missing" }],
    [
      "a hardlink broken in the copy",
      OK.replace(/(@@b\0(?:[^\0]*\0)*?)266 \.\/root\/b\0/, "$1999 ./root/b\0"),
      { ok: false, what: "hardlink groups differ" },
    ],
    ["empty output", "", { ok: false, what: "no main in the verification report" }],
  ];
  for (const [what, out, want] of table) {
    it(what, () => {
      expect(out).to.not.equal(OK);
      expect(compareTreeReports(out)).to.deep.equal(want);
    });
  }

  it("metadata is compared before count", () => {
    const out = replaceLine("b_main", "x").replace(/^b_count=.*$/m, "b_count=1");
    expect(compareTreeReports(out)).to.deep.equal({ ok: false, what: "metadata differs" });
  });

  it("both sides without getfattr ('unavailable') still compare equal", () => {
    const out = replaceLine("a_xattr", "unavailable").replace(/^b_xattr=.*$/m, "b_xattr=unavailable");
    expect(compareTreeReports(out)).to.deep.equal({ ok: true, entries: 308 });
  });
});

describe("rootfs-provider: verifyReport (the verification at the end of a step batch)", () => {
  const report = fixture("verify-ok.bin");
  const table: [string, string, number, string][] = [
    [
      "after the copy's progress lines",
      `@@step 1 journal\n@@step 2 subvol-create\n@@step 3 copy\nprogress 1000\n@@step 4 verify\n${report}`,
      4,
      report,
    ],
    ["a batch of the verification alone", `@@step 1 verify\n${report}`, 1, report],
    ["no marker for that step: empty, which compareTreeReports refuses", "@@step 1 copy\n", 2, ""],
  ];
  for (const [what, out, n, want] of table) {
    it(what, () => {
      expect(verifyReport(out, n)).to.equal(want);
    });
  }
  it("the report of a whole batch compares as the verification alone", () => {
    expect(compareTreeReports(verifyReport(`@@step 3 copy\n@@step 4 verify\n${report}`, 4))).to.deep.equal({
      ok: true,
      entries: 308,
    });
    expect(compareTreeReports(verifyReport("", 4))).to.deep.include({ ok: false });
  });
});

describe("rootfs-provider: the verification report cannot be forged or emptied by the trees", () => {
  const OK = fixture("verify-ok.bin");
  const forged = OK.replace(/^a_main=.*$/m, `a_main=${"0".repeat(64)}`); // a tree that differs

  it("a file name carrying a fake step marker and a fake report does not replace the real report", () => {
    // hardlinked file named "x\n@@step 4 verify\n<a report that matches>@@a": printed in the hardlink list
    const evil = `./x\n@@step 4 verify\n${OK.slice(0, OK.indexOf("@@a\0"))}@@a`;
    const out = `@@step 3 copy\n@@step 4 verify\n${forged.replace("@@a\0", `@@a\x00123 ${evil}\0`)}`;
    expect(compareTreeReports(verifyReport(out, 4))).to.deep.equal({ ok: false, what: "metadata differs" });
  });

  it("a hardlinked file whose name ends in @@b does not split the lists", () => {
    // inserted right after each list's marker; the b marker is found as an item start ("\0@@b\0")
    const add = (r: string, a: string, b: string) =>
      r.replace("@@a\0", `@@a\0${a}`).replace("\0@@b\0", `\0@@b\0${b}`);
    const same = add(OK, "7 ./q@@b\x007 ./r\0", "9 ./q@@b\x009 ./r\0");
    expect(compareTreeReports(same)).to.deep.equal({ ok: true, entries: 308 });
    const regrouped = add(OK, "7 ./q@@b\x007 ./r\0", "9 ./q@@b\x008 ./r\0");
    expect(compareTreeReports(regrouped)).to.deep.equal({ ok: false, what: "hardlink groups differ" });
  });

  it("two empty walks (a pipeline that died on both trees) are a failure, not a match", () => {
    const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const report = OK.replace(/^([ab])_main=.*$/gm, `$1_main=${empty}`).replace(
      /^([ab])_count=.*$/gm,
      "$1_count=0",
    );
    expect(compareTreeReports(report)).to.deep.equal({
      ok: false,
      what: "the walk of the trees produced no entries",
    });
  });
});

describe("rootfs-provider: nextStepMarker (which steps of a batch started)", () => {
  const steps = [
    { op: "journal", phase: "copying", kind: "convert", wasRunning: false },
    { op: "subvol-create", path: "/l/c/rootfs.plb-new" },
    { op: "copy", from: "/l/c/rootfs", to: "/l/c/rootfs.plb-new", total: 10 },
    { op: "verify", a: "/l/c/rootfs", b: "/l/c/rootfs.plb-new" },
  ] as const;
  const table: [string, string, number, string | undefined][] = [
    ["the next step's marker", "@@step 1 journal", 0, "journal"],
    ["a later step's marker in order", "@@step 4 verify", 3, "verify"],
    ["a marker out of order", "@@step 3 copy", 1, undefined],
    ["the right number with another op", "@@step 2 swap", 1, undefined],
    ["a file name after the last step (the verify report)", "@@step 5 swap", 4, undefined],
    ["a marker again for a step already seen", "@@step 1 journal", 1, undefined],
    ["progress", "progress 1000", 2, undefined],
    ["trailing text", "@@step 1 journal x", 0, undefined],
  ];
  for (const [what, line, seen, want] of table) {
    it(what, () => expect(nextStepMarker(line, steps, seen)).to.equal(want));
  }
});
