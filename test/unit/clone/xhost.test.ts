/** Cross-host clones, the pure part (clone/xhost.ts) and the diff of `sourceConnection` (clone/provider.ts). */
import { expect } from "chai";
import { type CloneInputs, cloneArgsSchema } from "../../../provider/clone/inputs";
import type { CloneInspection } from "../../../provider/clone/inspection";
import type { CloneOutputs } from "../../../provider/clone/outputs";
import { cloneEdits, diff, diffClone } from "../../../provider/clone/provider";
import {
  commonParent,
  crossHostConfig,
  hostIdentity,
  isCrossHost,
  parseCrossHostFacts,
  parseSentReport,
  progressLine,
  relayProblem,
  sentName,
  sourceMacs,
  spaceNeeded,
  targetProblem,
  targetTag,
} from "../../../provider/clone/xhost";
import { connectionSchema } from "../../../provider/core/connection";

const conn = (o: Record<string, unknown>) => connectionSchema.parse({ privateKey: "k", ...o });
const U1 = "11111111-1111-1111-1111-111111111111";
const U2 = "22222222-2222-2222-2222-222222222222";
const U3 = "33333333-3333-3333-3333-333333333333";

function inputs(raw: Record<string, unknown> = {}): CloneInputs {
  return cloneArgsSchema.parse({
    connection: { host: "h2", privateKey: "k" },
    source: "web",
    name: "web-c",
    ...raw,
  });
}

describe("clone/xhost: which host is which", () => {
  for (const [what, a, b, same] of [
    ["same host, port and user", { host: "h1" }, { host: "h1", password: "other" }, true],
    [
      "host names compare case-insensitively, a trailing dot aside",
      { host: "H1.example" },
      { host: "h1.example." },
      true,
    ],
    ["another host", { host: "h1" }, { host: "h2" }, false],
    ["another port", { host: "h1" }, { host: "h1", port: 2222 }, false],
    ["another user", { host: "h1" }, { host: "h1", user: "admin" }, false],
    [
      "through a jump host or not",
      { host: "h1" },
      { host: "h1", proxy: { host: "j", privateKey: "k" } },
      false,
    ],
  ] as const) {
    it(`${what}: ${same ? "same" : "another"} host`, () => {
      expect(hostIdentity(conn(a)) === hostIdentity(conn(b))).to.equal(same);
    });
  }

  it("a clone without sourceConnection, or with one to its own host, is a local clone", () => {
    expect(isCrossHost(inputs())).to.equal(false);
    expect(isCrossHost(inputs({ sourceConnection: { host: "h2", password: "p" } }))).to.equal(false);
    expect(isCrossHost(inputs({ sourceConnection: { host: "h1", privateKey: "k" } }))).to.equal(true);
  });
});

describe("clone/xhost: the kept snapshots' names", () => {
  it("tags a target by host identity and lxcPath: 12 hex digits, stable, different per target", () => {
    const t = targetTag(conn({ host: "h2" }), "/var/lib/lxc");
    expect(t).to.match(/^[0-9a-f]{12}$/);
    expect(targetTag(conn({ host: "H2", password: "x" }), "/var/lib/lxc")).to.equal(t);
    expect(targetTag(conn({ host: "h3" }), "/var/lib/lxc")).to.not.equal(t);
    expect(targetTag(conn({ host: "h2" }), "/srv/lxc")).to.not.equal(t);
    expect(sentName(t, "web-c")).to.equal(`.plb-sent-${t}-web-c`);
  });
});

describe("clone/xhost: the config carried over", () => {
  it("points lxc.rootfs.path at the clone's subvolume, every other byte kept", () => {
    const src = "# x\nlxc.rootfs.path = btrfs:/var/lib/lxc/web/rootfs\nlxc.uts.name = web\n";
    expect(crossHostConfig(src, "/var/lib/lxc", "web-c")).to.equal(
      "# x\nlxc.rootfs.path = btrfs:/var/lib/lxc/web-c/rootfs\nlxc.uts.name = web\n",
    );
    expect(crossHostConfig("  lxc.rootfs.path=dir:/x", "/l", "c")).to.equal(
      "  lxc.rootfs.path=btrfs:/l/c/rootfs",
    );
    expect(crossHostConfig("lxc.uts.name = a", "/l", "c")).to.equal(
      "lxc.uts.name = a\nlxc.rootfs.path = btrfs:/l/c/rootfs\n",
    );
  });

  it("sourceMacs lists every MAC of the source, lower-case", () => {
    expect(
      sourceMacs("lxc.net.0.hwaddr = 00:16:3E:AA:BB:CC\n lxc.net.1.hwaddr=00:16:3e:01:02:03 \n"),
    ).to.deep.equal(["00:16:3e:aa:bb:cc", "00:16:3e:01:02:03"]);
  });

  it("with the source's MACs to avoid, every MAC of the clone is replaced, even one the target does not use", () => {
    const config = "lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc\nlxc.uts.name = web\n";
    const insp = inspection({ cloneConfig: config, sourceConfig: config });
    let n = 0;
    const rand = () => (n++ % 7) / 7;
    const e = cloneEdits(inputs(), insp, rand, ["00:16:3e:aa:bb:cc"]);
    expect(e?.stdin).to.match(
      /^lxc\.net\.0\.hwaddr = 00:16:3e:(?!aa:bb:cc)[0-9a-f:]{8}\nlxc\.uts\.name = web-c\n/,
    );
    // Without it, the MAC is unique on the target and kept (a local clone's rule).
    expect(cloneEdits(inputs(), insp, rand)?.stdin).to.match(/^lxc\.net\.0\.hwaddr = 00:16:3e:aa:bb:cc\n/);
  });
});

function inspection(over: Partial<CloneInspection> = {}): CloneInspection {
  return {
    making: false,
    hasLxcCopy: true,
    hasLxcClone: false,
    source: { dir: "missing", isSubvolume: false },
    clone: { dir: "missing", isSubvolume: false },
    hwaddrs: [],
    sourceConfig: "",
    cloneConfig: "",
    cloneHostname: "",
    cloneHosts: "",
    nested: [],
    ...over,
  };
}

const subvolLines = (prefix: string, uuid: string, received = "-") =>
  `${prefix} Name=rootfs\n${prefix} UUID=${uuid}\n${prefix} Parent UUID=-\n${prefix} Received UUID=${received}\n${prefix} Generation=12\n${prefix} Subvolume ID=300\n`;

describe("clone/xhost: reading the hosts' reports", () => {
  it("xsource: the kept sent snapshot and the source's size", () => {
    const f = parseCrossHostFacts(
      `xsent_dir=subvol\n${subvolLines("xsent", U1)}xsize=123456\nmaking=0\n@@hwaddrs\0`,
    );
    expect(f).to.deep.equal({
      sentDir: "subvol",
      sent: { id: 300, uuid: U1, parentUuid: null, generation: 12, receivedUuid: null },
      sizeBytes: 123456,
    });
    expect(parseCrossHostFacts("xsent_dir=missing\n@@hwaddrs\0")).to.deep.equal({ sentDir: "missing" });
  });

  it("xtarget: filesystem, free bytes, a receive left over, the kept received parent", () => {
    const out = `lxc_fstype=btrfs\nfree_bytes=9000000000\nreceiving=present\nreceived=1\n${subvolLines("received", U2, U1)}making=0\n@@hwaddrs\0`;
    expect(parseCrossHostFacts(out)).to.deep.equal({
      lxcFstype: "btrfs",
      freeBytes: 9000000000,
      receiving: "present",
      received: { id: 300, uuid: U2, parentUuid: null, generation: 12, receivedUuid: U1 },
    });
    expect(
      parseCrossHostFacts("lxc_fstype=ext2/ext3\nfree_bytes=\nreceiving=missing\nreceived=0\n"),
    ).to.deep.equal({
      lxcFstype: "ext2/ext3",
      receiving: "missing",
    });
  });

  it("xsource: a refresh's new snapshot left by a refresh cut off (.plb-next-…)", () => {
    const out = `xsent_dir=subvol\n${subvolLines("xsent", U1)}xnext_dir=subvol\n${subvolLines("xnext", U3)}xsize=5\n@@hwaddrs\0`;
    expect(parseCrossHostFacts(out)).to.deep.equal({
      sentDir: "subvol",
      sent: { id: 300, uuid: U1, parentUuid: null, generation: 12, receivedUuid: null },
      next: { id: 300, uuid: U3, parentUuid: null, generation: 12, receivedUuid: null },
      sizeBytes: 5,
    });
  });

  it("xrefresh: a clone that was running and was stopped for the swap", () => {
    expect(parseCrossHostFacts("was_running=1\nmaking=0\n@@hwaddrs\0")).to.deep.equal({ wasRunning: true });
    expect(parseCrossHostFacts("making=0\n@@hwaddrs\0")).to.deep.equal({});
  });

  it("xsent: the new snapshot and its flag records, which must end with a NUL", () => {
    const head = subvolLines("xsent", U1);
    expect(parseSentReport(`${head}@@flags\0---C ./a\0----i ./b c\0`)).to.deep.equal({
      sent: { id: 300, uuid: U1, parentUuid: null, generation: 12 },
      flags: "---C ./a\0----i ./b c\0",
    });
    expect(parseSentReport(`${head}@@flags\0`).flags).to.equal("");
    expect(() => parseSentReport(`${head}@@flags\0---C ./a`)).to.throw(/truncated/);
    expect(() => parseSentReport(head)).to.throw(/unrecognised/);
  });
});

describe("clone/xhost: refusals before anything changes", () => {
  const o = { lxcPath: "/var/lib/lxc", name: "web-c", sourceSize: 1000, sentUuid: U1 };
  const ok = { lxcFstype: "btrfs", freeBytes: 10 * 2 ** 30, receiving: "missing" };
  const ours = inspection({
    clone: {
      dir: "present",
      isSubvolume: true,
      subvolume: { id: 1, uuid: U3, parentUuid: U2, generation: 1 },
    },
    cloneConfig: "lxc.rootfs.path = btrfs:/var/lib/lxc/web-c/rootfs\n",
  });
  const received = { id: 2, uuid: U2, parentUuid: null, generation: 1, receivedUuid: U1 };
  for (const [what, insp, facts, want] of [
    ["a free btrfs target", inspection(), ok, undefined],
    [
      "a target that is not btrfs",
      inspection(),
      { ...ok, lxcFstype: "ext2/ext3" },
      /on ext2\/ext3, not btrfs/,
    ],
    [
      "a symlinked receiving directory",
      inspection(),
      { ...ok, receiving: "symlink" },
      /\.plb-receiving-web-c on the target is a symlink/,
    ],
    [
      "not enough space",
      inspection(),
      { ...ok, freeBytes: 64 * 2 ** 20 },
      /has 64\.0 MiB free .* free space on the target$/,
    ],
    [
      "another container by that name",
      inspection({ clone: { dir: "present", isSubvolume: false } }),
      ok,
      /already has a container named web-c that is not this clone/,
    ],
    ["this clone, made from the kept snapshot", ours, { ...ok, received }, undefined],
    [
      "a clone of an older send",
      ours,
      { ...ok, received: { ...received, receivedUuid: U3 } },
      /not this clone/,
    ],
    [
      "this clone with another rootfs path",
      { ...ours, cloneConfig: "lxc.rootfs.path = dir:/x\n" },
      { ...ok, received },
      /does not say lxc\.rootfs\.path = btrfs:\/var\/lib\/lxc\/web-c\/rootfs/,
    ],
    ["an unfinished clone of ours (removed and made again)", { ...ours, making: true }, ok, undefined],
  ] as const) {
    it(`${what}: ${want ? "refused" : "goes on"}`, () => {
      const p = targetProblem(insp as CloneInspection, facts, o);
      if (want === undefined) expect(p).to.equal(undefined);
      else expect(p).to.match(want);
    });
  }

  it("space needed: the size, 5% and 64 MiB", () => {
    expect(spaceNeeded(0)).to.equal(64 * 2 ** 20);
    expect(spaceNeeded(2 ** 30)).to.equal(2 ** 30 + Math.ceil(2 ** 30 / 20) + 64 * 2 ** 20);
  });
});

describe("clone/xhost: the relay's outcome and progress", () => {
  const good = {
    sendCode: 0,
    sendStderr: "",
    receiveCode: 0,
    receiveStderr: "",
    bytesRead: 10,
    bytesWritten: 10,
  };
  for (const [what, over, want] of [
    ["both ends exited 0, every byte passed", {}, undefined],
    [
      "send failed",
      { sendCode: 1, sendStderr: "ERROR: send ioctl failed\n" },
      "btrfs send on the source exited with code 1: ERROR: send ioctl failed",
    ],
    ["send cut off", { sendCode: null }, "btrfs send on the source was cut off"],
    [
      "receive failed",
      { receiveCode: 1, receiveStderr: "ERROR: short read\n" },
      "btrfs receive on the target exited with code 1: ERROR: short read",
    ],
    [
      "receive failed, the target's disk full",
      {
        receiveCode: 1,
        receiveStderr: "At subvol rootfs\nERROR: writing to big failed: No space left on device\n",
      },
      "btrfs receive on the target exited with code 1: At subvol rootfs | ERROR: writing to big failed: No space left on device; the target's filesystem is full: free space on the target and run again",
    ],
    [
      "the source's channel closed under send (no exit status): receive's short read follows from it",
      {
        sendCode: null,
        receiveCode: 1,
        receiveStderr: "At subvol rootfs\nERROR: short read from stream: expected 49175 read 1540\n",
      },
      "btrfs send on the source was cut off (its connection was lost, or it was killed), and btrfs receive on the target then failed: At subvol rootfs | ERROR: short read from stream: expected 49175 read 1540",
    ],
    [
      "the source's channel closed under send within a command: receive's EOF follows from it",
      {
        sendCode: null,
        receiveCode: 1,
        receiveStderr:
          "Chroot to /var/lib/lxc/.plb-receiving-c\nAt subvol rootfs\nERROR: unexpected EOF in stream\n",
      },
      "btrfs send on the source was cut off (its connection was lost, or it was killed), and btrfs receive on the target then failed: Chroot to /var/lib/lxc/.plb-receiving-c | At subvol rootfs | ERROR: unexpected EOF in stream",
    ],
    [
      "the source's channel closed before the first byte",
      { sendCode: null, receiveCode: 1, receiveStderr: "ERROR: empty stream is not considered valid\n" },
      "btrfs send on the source was cut off (its connection was lost, or it was killed), and btrfs receive on the target then failed: ERROR: empty stream is not considered valid",
    ],
    ["the pipe broke", { error: "write EPIPE" }, "the relay failed: write EPIPE"],
    [
      "the pipe broke, and we closed both ends",
      { error: "no byte for 20 s", sendCode: null, receiveCode: null },
      "the relay failed: no byte for 20 s",
    ],
    [
      "receive failed, and the sender was closed",
      { receiveCode: 1, sendCode: null, error: "x" },
      "btrfs receive on the target exited with code 1",
    ],
    ["receive cut off", { receiveCode: null }, "btrfs receive on the target was cut off"],
    ["bytes lost", { bytesWritten: 9 }, "the relay read 10 bytes from the source but wrote 9 to the target"],
  ] as const) {
    it(`${what}: ${want ?? "usable"}`, () => {
      expect(relayProblem({ ...good, ...over })).to.equal(want);
    });
  }

  it("a progress line gives bytes, time, the overall rate and the last interval's", () => {
    expect(progressLine(100 * 2 ** 20, 10_000, 60 * 2 ** 20, 5_000)).to.equal(
      "relayed 100.0 MiB in 10.0 s (10.0 MiB/s; last 5.0 s: 8.0 MiB/s)",
    );
    expect(progressLine(0, 0, 0, 0)).to.equal("relayed 0.0 MiB in 0.0 s (-; last 0.0 s: -)");
  });
});

describe("clone/xhost: diff of sourceConnection", () => {
  const olds = (raw: Record<string, unknown>): Partial<CloneOutputs> => ({ ...inputs(raw), drift: [] });
  for (const [what, before, after, replaces] of [
    ["none on either side", {}, {}, []],
    [
      "the same source host, other credentials",
      { sourceConnection: { host: "h1", privateKey: "k" } },
      { sourceConnection: { host: "h1", password: "p" } },
      [],
    ],
    [
      "another source host",
      { sourceConnection: { host: "h1", privateKey: "k" } },
      { sourceConnection: { host: "h3", privateKey: "k" } },
      ["sourceConnection"],
    ],
    [
      "given where there was none (another host)",
      {},
      { sourceConnection: { host: "h1", privateKey: "k" } },
      ["sourceConnection"],
    ],
    [
      "given as the clone's own host where there was none",
      {},
      { sourceConnection: { host: "h2", privateKey: "k" } },
      [],
    ],
  ] as const) {
    it(`${what}: replaces ${JSON.stringify(replaces)}`, () => {
      expect(diffClone(olds(before), inputs(after)).replaces).to.deep.equal(replaces);
    });
  }
});

describe("clone/xhost: the parent of an incremental refresh", () => {
  const sub = (uuid: string, receivedUuid: string | null = null) => ({
    id: 300,
    uuid,
    parentUuid: null,
    generation: 12,
    receivedUuid,
  });
  for (const [what, source, target, want] of [
    ["the target keeps the receive of the sent snapshot", { sent: sub(U1) }, { received: sub(U2, U1) }, U1],
    [
      "a refresh cut off after the target took the new snapshot (.plb-next-…)",
      { sent: sub(U1), next: sub(U3) },
      { received: sub(U2, U3) },
      U3,
    ],
    ["the target keeps a receive of something else", { sent: sub(U1) }, { received: sub(U2, U3) }, undefined],
    ["the target keeps nothing", { sent: sub(U1) }, {}, undefined],
    ["the target's kept subvolume is no receive", { sent: sub(U1) }, { received: sub(U2) }, undefined],
    ["the source keeps nothing", {}, { received: sub(U2, U1) }, undefined],
  ] as const) {
    it(`${what}: ${want ?? "none, sent in full"}`, () => {
      expect(commonParent({ source: source, target: target })).to.equal(want);
    });
  }
});

describe("clone/xhost: diff of revision", () => {
  const cross = { sourceConnection: { host: "h1", privateKey: "k" } };
  const olds = (raw: Record<string, unknown>): Partial<CloneOutputs> => ({ ...inputs(raw), drift: [] });
  for (const [what, before, after, want] of [
    [
      "across hosts, a new revision: an update (a refresh in place)",
      { ...cross, revision: "1" },
      { ...cross, revision: "2" },
      { changes: true, replaces: [], deleteBeforeReplace: false },
    ],
    [
      "across hosts, a first revision",
      cross,
      { ...cross, revision: "1" },
      { changes: true, replaces: [], deleteBeforeReplace: false },
    ],
    [
      "across hosts, the same revision",
      { ...cross, revision: "1" },
      { ...cross, revision: "1" },
      { changes: false, replaces: [], deleteBeforeReplace: false },
    ],
    [
      "across hosts, ifRunning alone: an update that sends nothing",
      { ...cross, revision: "1" },
      { ...cross, revision: "1", ifRunning: "restart" },
      { changes: true, replaces: [], deleteBeforeReplace: false },
    ],
    [
      "on the source's host, a new revision: a new snapshot clone",
      { revision: "1" },
      { revision: "2" },
      { changes: true, replaces: ["revision"], deleteBeforeReplace: true },
    ],
  ] as const) {
    it(what, () => {
      expect(diffClone(olds(before), inputs(after))).to.deep.equal(want);
    });
  }
});

describe("clone/xhost: the preview says which copy a new revision refreshes", () => {
  const cross = { sourceConnection: { host: "h1", privateKey: "k" } };
  const logged = (olds: Record<string, unknown>, news: Record<string, unknown>) => {
    const lines: string[] = [];
    const orig = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      diff({ ...inputs(olds), drift: [] }, inputs(news));
    } finally {
      console.log = orig;
    }
    return lines;
  };
  it("a cross-host clone with a new revision: one line, no network", () => {
    expect(logged({ ...cross, revision: "1" }, { ...cross, revision: "2" })).to.deep.equal([
      `[lxc-btrfs] clone web-c on root@h2:22: will be refreshed from web on root@h1:22 (revision "1" -> "2"): only what changed is sent; the clone's own changes are replaced`,
    ]);
  });
  it("the same revision, a local clone (replaced), another source host (replaced): nothing", () => {
    expect(logged({ ...cross, revision: "1" }, { ...cross, revision: "1" })).to.deep.equal([]);
    expect(logged({ revision: "1" }, { revision: "2" })).to.deep.equal([]);
    expect(
      logged(
        { ...cross, revision: "1" },
        { sourceConnection: { host: "h3", privateKey: "k" }, revision: "2" },
      ),
    ).to.deep.equal([]);
  });
});

describe("clone/xhost: revision", () => {
  it("is a string; a number (as pulumi config set --path stores 2) is taken as its decimal string", () => {
    expect(inputs({ revision: "2026-12-07" }).revision).to.equal("2026-12-07");
    expect(inputs({ revision: 2 }).revision).to.equal("2");
    expect(cloneArgsSchema.safeParse({ ...inputs(), revision: { a: 1 } }).success).to.equal(false);
    expect(cloneArgsSchema.safeParse({ ...inputs(), revision: "x".repeat(257) }).success).to.equal(false);
  });
});
