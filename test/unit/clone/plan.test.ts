import { expect } from "chai";
import { type CloneInspection, parseCloneInspection } from "../../../provider/clone/inspection";
import {
  adoptProblem,
  type CloneDesired,
  cloneDrift,
  driftNeedsReplace,
  finishCloneConfig,
  randomMac,
  rewriteHosts,
  sourceProblem,
  uniqueMacs,
} from "../../../provider/clone/plan";
import { findHwaddrs } from "../../../provider/host/lxc-config";
import { CAP_LXC, CL_CONFIG, CL_UUID, fixture, SV_UUID } from "../fixtures";

/** A sequence of numbers for rand(), repeated; three per MAC (randomMac draws three bytes). */
function seq(...xs: number[]): () => number {
  let i = 0;
  return () => xs[i++ % xs.length];
}

describe("clone-plan: adoptProblem (may an existing container be adopted as the clone?)", () => {
  const insp = parseCloneInspection(fixture("clone-inspect.bin"));
  const lxc = /btrfs:(\S+)\/sv\/rootfs/.exec(insp.sourceConfig)?.[1] as string;
  const table: [string, CloneInspection, string | undefined][] = [
    ["the real lxc-copy -s clone: yes", insp, undefined],
    [
      "a directory that is not a snapshot of the source",
      { ...insp, clone: { ...insp.clone, subvolume: undefined, isSubvolume: false } },
      "a container named cl already exists and is not a snapshot of sv; choose another name or remove it",
    ],
    [
      "a snapshot of another subvolume",
      { ...insp, clone: { ...insp.clone, subvolume: { ...insp.clone.subvolume!, parentUuid: "0-other" } } },
      "a container named cl already exists and is not a snapshot of sv; choose another name or remove it",
    ],
    [
      "a snapshot whose config has no rootfs line (what an interrupted lxc-copy writes first)",
      { ...insp, cloneConfig: insp.cloneConfig.replace(/^lxc\.rootfs\.path.*\n/m, "") },
      `cl is a snapshot of sv but its config does not say lxc.rootfs.path = btrfs:${lxc}/cl/rootfs (an unfinished copy made by hand or by another tool?); remove it or fix its config`,
    ],
    [
      "a snapshot whose config points at the source's rootfs",
      { ...insp, cloneConfig: insp.cloneConfig.replace("/cl/rootfs", "/sv/rootfs") },
      `cl is a snapshot of sv but its config does not say lxc.rootfs.path = btrfs:${lxc}/cl/rootfs (an unfinished copy made by hand or by another tool?); remove it or fix its config`,
    ],
  ];
  for (const [what, i, want] of table) {
    it(what, () => {
      expect(adoptProblem(i, lxc, "sv", "cl")).to.equal(want);
    });
  }
  it("the making marker is read from the inspection (absent in captures made before it existed)", () => {
    expect(insp.making).to.equal(false);
    expect(parseCloneInspection(`making=1\n${fixture("clone-inspect.bin")}`).making).to.equal(true);
  });
});

describe("clone-plan: sourceProblem", () => {
  const REAL = parseCloneInspection(fixture("clone-inspect.bin"));
  const notSnapshottable = (s: string) =>
    `source ${s}'s rootfs is not a btrfs subvolume with a btrfs: config, so it cannot be snapshot-cloned; ` +
    `declare an LxcSubvolumeRootfs for ${s} and pass it in this clone's dependsOn`;

  it("the real subvolume source with a btrfs: config is fine", () => {
    expect(sourceProblem(REAL, CAP_LXC, "sv")).to.equal(undefined);
  });

  it("the real directory source needs an LxcSubvolumeRootfs in dependsOn", () => {
    expect(
      sourceProblem(parseCloneInspection(fixture("clone-inspect-dirsource.bin")), CAP_LXC, "d1"),
    ).to.equal(notSnapshottable("d1"));
  });

  const table: [string, CloneInspection, string][] = [
    [
      "missing source",
      { ...REAL, source: { dir: "missing", isSubvolume: false } },
      "source container sv does not exist in /var/lib/lxc",
    ],
    [
      "source on ext4",
      { ...REAL, source: { ...REAL.source, fstype: "ext2/ext3" } },
      "source sv is on ext2/ext3, not btrfs",
    ],
    [
      "a subvolume with a dir: config (the overlay-clone trap)",
      { ...REAL, sourceConfig: REAL.sourceConfig.replace("btrfs:", "dir:") },
      notSnapshottable("sv"),
    ],
    [
      "a subvolume with a bare path",
      { ...REAL, sourceConfig: REAL.sourceConfig.replace("btrfs:", "") },
      notSnapshottable("sv"),
    ],
    [
      "a btrfs: config but not a subvolume",
      { ...REAL, source: { ...REAL.source, isSubvolume: false } },
      notSnapshottable("sv"),
    ],
  ];
  for (const [what, insp, want] of table) {
    it(what, () => {
      const lxcPath = what === "missing source" ? "/var/lib/lxc" : CAP_LXC;
      expect(sourceProblem(insp, lxcPath, "sv")).to.equal(want);
    });
  }

  it("a btrfs: config of a source in another lxcPath is refused", () => {
    expect(sourceProblem(REAL, "/var/lib/lxc", "sv")).to.equal(notSnapshottable("sv"));
  });
});

describe("clone-plan: finishCloneConfig", () => {
  const o = { lxcPath: "/var/lib/lxc", source: "src", name: "new", hostname: "web1", macs: new Map() };
  const before = [
    "# lxc.mount.entry = /var/lib/lxc/src/x x none bind 0 0",
    "lxc.rootfs.path = btrfs:/var/lib/lxc/new/rootfs",
    "lxc.uts.name = new",
    "lxc.mount.entry = /var/lib/lxc/src/shared mnt/shared none bind,create=dir 0 0",
    "lxc.mount.entry = /var/lib/lxc/srcX/other mnt/other none bind 0 0",
    "lxc.mount.entry = /srv/data mnt/data none bind 0 0",
    "lxc.mount.entry=/var/lib/lxc/src/rootfs.extra mnt/e none bind 0 0",
    "lxc.log.file = /var/lib/lxc/src/src.log",
    "lxc.mount.fstab = /var/lib/lxc/src/fstab",
    "lxc.hook.pre-start = /var/lib/lxc/src/hook.sh",
    "lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc",
    "",
  ].join("\n");

  it("moves mount sources, log file and fstab under the clone's dir, sets uts.name; nothing else", () => {
    expect(finishCloneConfig(before, o)).to.equal(
      [
        "# lxc.mount.entry = /var/lib/lxc/src/x x none bind 0 0",
        "lxc.rootfs.path = btrfs:/var/lib/lxc/new/rootfs",
        "lxc.uts.name = web1",
        "lxc.mount.entry = /var/lib/lxc/new/shared mnt/shared none bind,create=dir 0 0",
        "lxc.mount.entry = /var/lib/lxc/srcX/other mnt/other none bind 0 0",
        "lxc.mount.entry = /srv/data mnt/data none bind 0 0",
        "lxc.mount.entry=/var/lib/lxc/new/rootfs.extra mnt/e none bind 0 0",
        "lxc.log.file = /var/lib/lxc/new/src.log",
        "lxc.mount.fstab = /var/lib/lxc/new/fstab",
        "lxc.hook.pre-start = /var/lib/lxc/src/hook.sh",
        "lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc",
        "",
      ].join("\n"),
    );
  });

  it("adds lxc.uts.name when the config has none (lxc-copy -K keeps the source's lines, which may lack it)", () => {
    expect(finishCloneConfig("lxc.arch = x86_64\n", o)).to.equal("lxc.arch = x86_64\nlxc.uts.name = web1\n");
    expect(finishCloneConfig("lxc.arch = x86_64", o)).to.equal("lxc.arch = x86_64\nlxc.uts.name = web1\n");
    expect(finishCloneConfig("", o)).to.equal("lxc.uts.name = web1\n");
  });

  it("keeps indentation and spacing of the uts.name line and replaces a quoted value", () => {
    expect(finishCloneConfig('  lxc.uts.name="src"\n', o)).to.equal("  lxc.uts.name=web1\n");
  });

  it("replaces MACs listed as a string on every line, matching case-insensitively", () => {
    const text = "lxc.net.0.hwaddr = 00:16:3E:AA:BB:CC\nlxc.net.1.hwaddr = 00:16:3e:11:11:11\n";
    const macs = new Map([["00:16:3e:aa:bb:cc", "00:16:3e:01:02:03"]]);
    expect(finishCloneConfig(text, { ...o, macs })).to.equal(
      "lxc.net.0.hwaddr = 00:16:3e:01:02:03\nlxc.net.1.hwaddr = 00:16:3e:11:11:11\nlxc.uts.name = web1\n",
    );
  });

  it("gives each line of a duplicated MAC its own value from a list (first line keeps it)", () => {
    const text = "lxc.net.0.hwaddr = 00:16:3e:aa:aa:aa\nlxc.net.1.hwaddr = 00:16:3e:aa:aa:aa\n";
    const macs = new Map([["00:16:3e:aa:aa:aa", ["00:16:3e:aa:aa:aa", "00:16:3e:40:80:80"]]]);
    expect(finishCloneConfig(text, { ...o, macs })).to.equal(
      "lxc.net.0.hwaddr = 00:16:3e:aa:aa:aa\nlxc.net.1.hwaddr = 00:16:3e:40:80:80\nlxc.uts.name = web1\n",
    );
  });

  it("the real lxc-copy output: only uts.name changes for a new hostname", () => {
    const out = finishCloneConfig(CL_CONFIG, {
      lxcPath: CAP_LXC,
      source: "sv",
      name: "cl",
      hostname: "web1",
      macs: new Map(),
    });
    expect(out).to.equal(CL_CONFIG.replace("lxc.uts.name = cl\n", "lxc.uts.name = web1\n"));
    expect(
      finishCloneConfig(CL_CONFIG, {
        lxcPath: CAP_LXC,
        source: "sv",
        name: "cl",
        hostname: "cl",
        macs: new Map(),
      }),
    ).to.equal(CL_CONFIG);
  });
});

describe("clone-plan: rewriteHosts", () => {
  const hosts = [
    "127.0.0.1\tlocalhost",
    "127.0.1.1\tsrc.example.com src",
    "10.0.0.1 srcdb src-backup mysrc src_x",
    "# src is the old name, src.example.com too",
    "::1 ip6-localhost src # src alias",
    "",
  ].join("\n");

  it("replaces whole words and name.domain, outside comments, keeping tabs", () => {
    expect(rewriteHosts(hosts, "src", "new")).to.equal(
      [
        "127.0.0.1\tlocalhost",
        "127.0.1.1\tnew.example.com new",
        "10.0.0.1 srcdb src-backup mysrc src_x",
        "# src is the old name, src.example.com too",
        "::1 ip6-localhost new # src alias",
        "",
      ].join("\n"),
    );
  });

  it("the real captured /etc/hosts of the clone", () => {
    const insp = parseCloneInspection(fixture("clone-inspect.bin"));
    expect(rewriteHosts(insp.cloneHosts, "sv", "cl")).to.equal(
      "127.0.0.1\tlocalhost\n127.0.1.1\tcl.example.com cl # was sv\n",
    );
  });

  it("an empty or unchanged name leaves the text alone", () => {
    expect(rewriteHosts(hosts, "", "new")).to.equal(hosts);
    expect(rewriteHosts(hosts, "src", "src")).to.equal(hosts);
  });
});

describe("clone-plan: randomMac and uniqueMacs (seeded rand)", () => {
  it("randomMac uses LXC's 00:16:3e prefix and keeps the 4th byte below 0x80", () => {
    expect(randomMac(seq(0.5, 0.5, 0.5))).to.equal("00:16:3e:40:80:80");
    expect(randomMac(seq(0.999999, 0.999999, 0.999999))).to.equal("00:16:3e:7f:ff:ff");
    expect(randomMac(seq(0, 0, 0))).to.equal("00:16:3e:00:00:00");
  });

  it("no collision: nothing to replace", () => {
    expect(uniqueMacs(["00:16:3e:aa:aa:aa"], ["00:16:3e:bb:bb:bb"], seq(0.5))).to.deep.equal(new Map());
  });

  it("a MAC another container uses is replaced on every line (case-insensitive)", () => {
    expect(uniqueMacs(["00:16:3E:AA:AA:AA"], ["00:16:3e:aa:aa:aa"], seq(0.5, 0.5, 0.5))).to.deep.equal(
      new Map([["00:16:3e:aa:aa:aa", ["00:16:3e:40:80:80"]]]),
    );
  });

  it("a fresh MAC that is itself taken is drawn again", () => {
    const r = seq(0.5, 0.5, 0.5, 0.25, 0.25, 0.25);
    expect(uniqueMacs(["00:16:3e:aa:aa:aa"], ["00:16:3e:aa:aa:aa", "00:16:3e:40:80:80"], r)).to.deep.equal(
      new Map([["00:16:3e:aa:aa:aa", ["00:16:3e:20:40:40"]]]),
    );
  });

  it("a fresh MAC never equals another MAC of the clone", () => {
    const r = seq(0.5, 0.5, 0.5, 0.25, 0.25, 0.25);
    expect(uniqueMacs(["00:16:3e:aa:aa:aa", "00:16:3e:40:80:80"], ["00:16:3e:aa:aa:aa"], r)).to.deep.equal(
      new Map([["00:16:3e:aa:aa:aa", ["00:16:3e:20:40:40"]]]),
    );
  });

  it("a MAC duplicated within the clone: the first line keeps it, the second gets a fresh one", () => {
    expect(uniqueMacs(["00:16:3e:aa:aa:aa", "00:16:3e:aa:aa:aa"], [], seq(0.5, 0.5, 0.5))).to.deep.equal(
      new Map([["00:16:3e:aa:aa:aa", ["00:16:3e:aa:aa:aa", "00:16:3e:40:80:80"]]]),
    );
  });

  it("a duplicated MAC that another container uses: each line gets its own fresh one", () => {
    const r = seq(0.5, 0.5, 0.5, 0.25, 0.25, 0.25);
    expect(uniqueMacs(["00:16:3e:aa:aa:aa", "00:16:3e:aa:aa:aa"], ["00:16:3e:aa:aa:aa"], r)).to.deep.equal(
      new Map([["00:16:3e:aa:aa:aa", ["00:16:3e:40:80:80", "00:16:3e:20:40:40"]]]),
    );
  });

  it("uniqueMacs + finishCloneConfig leave a config whose MACs are unique and not used elsewhere", () => {
    const text = [
      "lxc.net.0.hwaddr = 00:16:3e:aa:aa:aa",
      "lxc.net.1.hwaddr = 00:16:3e:aa:aa:aa",
      "lxc.net.2.hwaddr = 00:16:3e:bb:bb:bb",
      "lxc.net.3.hwaddr = 00:16:3e:bb:bb:bb",
      "lxc.net.4.hwaddr = 00:16:3e:cc:cc:cc",
      "",
    ].join("\n");
    const others = ["00:16:3e:bb:bb:bb"];
    const macs = uniqueMacs(
      findHwaddrs(text),
      others,
      seq(0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75),
    );
    const out = finishCloneConfig(text, { lxcPath: "/l", source: "s", name: "n", hostname: "n", macs });
    expect(out).to.equal(
      [
        "lxc.net.0.hwaddr = 00:16:3e:aa:aa:aa",
        "lxc.net.1.hwaddr = 00:16:3e:40:80:80",
        "lxc.net.2.hwaddr = 00:16:3e:20:40:40",
        "lxc.net.3.hwaddr = 00:16:3e:60:c0:c0",
        "lxc.net.4.hwaddr = 00:16:3e:cc:cc:cc",
        "lxc.uts.name = n",
        "",
      ].join("\n"),
    );
    const after = findHwaddrs(out);
    expect(new Set(after).size).to.equal(after.length);
    expect(after.filter((m) => others.includes(m))).to.deep.equal([]);
  });
});

describe("clone-plan: cloneDrift and driftNeedsReplace", () => {
  const REAL = parseCloneInspection(fixture("clone-inspect.bin"));
  const want = (over: Partial<CloneDesired> = {}): CloneDesired => ({
    name: "cl",
    source: "sv",
    hostname: "cl",
    start: false,
    ...over,
  });

  it("the real fresh clone is in sync", () => {
    expect(cloneDrift(REAL, want(), CAP_LXC, SV_UUID)).to.deep.equal([]);
    expect(cloneDrift(REAL, want(), CAP_LXC, null)).to.deep.equal([]);
  });

  const table: [string, CloneInspection, CloneDesired, string | null, string[]][] = [
    ["want it started", REAL, want({ start: true }), SV_UUID, ["state is STOPPED, want RUNNING"]],
    [
      "running but not wanted",
      { ...REAL, clone: { ...REAL.clone, state: "RUNNING" } },
      want(),
      SV_UUID,
      ["state is RUNNING, want STOPPED"],
    ],
    ["another hostname", REAL, want({ hostname: "web1" }), SV_UUID, ["hostname is cl, want web1"]],
    [
      "uts.name removed",
      { ...REAL, cloneConfig: REAL.cloneConfig.replace("lxc.uts.name = cl\n", "") },
      want(),
      SV_UUID,
      ["hostname is (unset), want cl"],
    ],
    [
      "a quoted uts.name is the same name",
      { ...REAL, cloneConfig: REAL.cloneConfig.replace("lxc.uts.name = cl", 'lxc.uts.name = "cl"') },
      want(),
      SV_UUID,
      [],
    ],
    [
      "rootfs replaced by a plain subvolume",
      {
        ...REAL,
        clone: { ...REAL.clone, subvolume: { id: 300, uuid: CL_UUID, parentUuid: null, generation: 9 } },
      },
      want(),
      SV_UUID,
      ["rootfs is no longer a snapshot of the source"],
    ],
    [
      "rootfs no longer a subvolume",
      { ...REAL, clone: { dir: "present", fstype: "btrfs", state: "STOPPED", isSubvolume: false } },
      want(),
      SV_UUID,
      ["rootfs is no longer a subvolume"],
    ],
    [
      "config back to dir:",
      { ...REAL, cloneConfig: REAL.cloneConfig.replace("btrfs:", "dir:") },
      want(),
      SV_UUID,
      [`lxc.rootfs.path is dir:${CAP_LXC}/cl/rootfs`],
    ],
    [
      "everything at once",
      {
        ...REAL,
        clone: { dir: "present", fstype: "btrfs", state: "RUNNING", isSubvolume: false },
        cloneConfig: "lxc.net.0.type = empty\n",
      },
      want({ hostname: "web1" }),
      SV_UUID,
      [
        "rootfs is no longer a subvolume",
        "hostname is (unset), want web1",
        "lxc.rootfs.path is (unset)",
        "state is RUNNING, want STOPPED",
      ],
    ],
  ];
  for (const [what, insp, w, parent, drift] of table) {
    it(what, () => {
      expect(cloneDrift(insp, w, CAP_LXC, parent)).to.deep.equal(drift);
    });
  }

  const needs: [string[], boolean][] = [
    [[], false],
    [["state is STOPPED, want RUNNING"], false],
    [["hostname is cl, want web1"], false],
    [["rootfs is no longer a subvolume"], true],
    [["rootfs is no longer a snapshot of the source"], true],
    [["hostname is cl, want web1", "lxc.rootfs.path is dir:/x"], true],
  ];
  for (const [drift, replace] of needs) {
    it(`driftNeedsReplace(${JSON.stringify(drift)}) = ${replace}`, () => {
      expect(driftNeedsReplace(drift)).to.equal(replace);
    });
  }
});
