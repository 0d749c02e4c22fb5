import { expect } from "chai";
import {
  type Journal,
  parseRootfsInspection,
  type RootfsInspection,
} from "../../../provider/rootfs/inspection";
import {
  planConvert,
  planRevert,
  type RootfsPlan,
  type RootfsPolicy,
  requiredFreeBytes,
  rootfsPaths,
  type Step,
} from "../../../provider/rootfs/plan";
import { CAP_EXT_LXC, CAP_LXC, fixture } from "../fixtures";

const L = "/var/lib/lxc";
const D = `${L}/c1`;
const R = `${D}/rootfs`;
const NEW = `${D}/rootfs.plb-new`;
const BAK = `${D}/rootfs.pre-btrfs`;
const RDIR = `${D}/rootfs.plb-dir`;
const ROLD = `${D}/rootfs.plb-old`;

const cfg = (value: string) => `lxc.net.0.type = empty\nlxc.rootfs.path = ${value}\nlxc.uts.name = c1\n`;
const CFG_DIR = cfg(`dir:${R}`);
const CFG_BTRFS = cfg(`btrfs:${R}`);
const CFG_BARE = cfg(R);
/** sha256sum of the three configs above, computed with coreutils, not with the code under test. */
const SHA_DIR = "6cb1042f31fd5f9e20852f080d88bb1fb607dbf149cb2a82155e6cc2c27112d9";
const SHA_BTRFS = "0f89c96f729dff796ee704626cb391c31c4d2ad0e93e62ffe1734b7814b1c9f3";
const SHA_BARE = "41750d53aa2167e83b6619b055642dbf8f6875325a28d63aea1970a1cb576ccb";

const GiB = 2 ** 30;

function insp(over: Partial<RootfsInspection> = {}): RootfsInspection {
  return {
    btrfsVersion: "btrfs-progs v6.2",
    lxcVersion: "5.0.2",
    hasLxcCopy: true,
    hasGetfattr: true,
    rootfsFlags: "----------------------",
    containerDir: "present",
    fstype: "btrfs",
    availBytes: 10 * GiB,
    rootfs: "dir",
    rootfsIsSubvolume: false,
    exists: {
      "rootfs.plb-new": false,
      "rootfs.pre-btrfs": false,
      "rootfs.plb-old": false,
      "rootfs.plb-dir": false,
      "config.pre-btrfs": false,
    },
    state: "STOPPED",
    files: 1000,
    bytes: 50_000_000,
    nested: [],
    mounts: [],
    config: CFG_DIR,
    ...over,
  };
}

const exists = (names: string[]) => ({
  ...insp().exists,
  ...Object.fromEntries(names.map((n) => [n, true])),
});

function policy(over: Partial<RootfsPolicy> = {}): RootfsPolicy {
  return {
    container: "c1",
    lxcPath: L,
    ifRunning: "fail",
    nestedSubvolumes: "fail",
    keepBackup: false,
    ...over,
  };
}

const j = (phase: Journal["phase"], kind: "convert" | "revert", wasRunning: boolean): Step => ({
  op: "journal",
  phase,
  kind,
  wasRunning,
});
const toBtrfs: Step = {
  op: "write-config",
  expectedSha: SHA_DIR,
  content: CFG_BTRFS,
  backupName: "config.pre-btrfs",
};

/** The whole conversion of a stopped directory rootfs with 1000 entries. */
const CONVERT_STOPPED: Step[] = [
  j("copying", "convert", false),
  { op: "subvol-create", path: NEW },
  { op: "copy", from: R, to: NEW, total: 1000 },
  { op: "verify", a: R, b: NEW },
  j("swapping", "convert", false),
  { op: "swap", cur: R, next: NEW, old: BAK },
  j("swapped", "convert", false),
  toBtrfs,
  { op: "move-nested", from: BAK, to: R },
  { op: "remove", path: BAK },
  { op: "journal-clear" },
];

const refuse = (reason: string): RootfsPlan => ({ kind: "refuse", reason });

describe("rootfs-plan: rootfsPaths and requiredFreeBytes", () => {
  it("rootfsPaths names every path of the layout", () => {
    expect(rootfsPaths("/var/lib/lxc", "c1")).to.deep.equal({
      dir: D,
      rootfs: R,
      next: NEW,
      backup: BAK,
      revertDir: RDIR,
      revertOld: ROLD,
      restoreNew: `${D}/rootfs.plb-restore`,
      restoreOld: `${D}/rootfs.pre-restore`,
    });
  });

  it("requiredFreeBytes is 64 MiB plus 2 KiB per entry", () => {
    expect([0, 1, 1000, 1_000_000].map(requiredFreeBytes)).to.deep.equal([
      67108864, 67110912, 69156864, 2115108864,
    ]);
  });
});

describe("rootfs-plan: planConvert refusals", () => {
  const table: [string, RootfsInspection, Partial<RootfsPolicy>, RootfsPlan][] = [
    [
      "missing container",
      insp({ containerDir: "missing" }),
      {},
      refuse("container c1 does not exist: /var/lib/lxc/c1 is missing; check the name and lxcPath"),
    ],
    [
      "ext4",
      insp({ fstype: "ext2/ext3" }),
      {},
      refuse(
        "/var/lib/lxc/c1 is on ext2/ext3, not btrfs; LxcSubvolumeRootfs needs /var/lib/lxc on a btrfs filesystem",
      ),
    ],
    [
      "unreadable config",
      insp({ config: null }),
      {},
      refuse("/var/lib/lxc/c1/config is missing or unreadable; is c1 an LXC container?"),
    ],
    [
      "an immutable rootfs directory (the swap could not rename it)",
      insp({ rootfsFlags: "----i-----------------" }),
      {},
      refuse(
        "/var/lib/lxc/c1/rootfs itself is immutable or append-only (lsattr: ----i-----------------), so it cannot be renamed; clear it with chattr -i -a /var/lib/lxc/c1/rootfs and run again",
      ),
    ],
    [
      "an append-only rootfs directory",
      insp({ rootfsFlags: "-----a----------------" }),
      {},
      refuse(
        "/var/lib/lxc/c1/rootfs itself is immutable or append-only (lsattr: -----a----------------), so it cannot be renamed; clear it with chattr -i -a /var/lib/lxc/c1/rootfs and run again",
      ),
    ],
    [
      "symlink rootfs",
      insp({ rootfs: "symlink" }),
      {},
      refuse("/var/lib/lxc/c1/rootfs is a symlink; expected a directory"),
    ],
    [
      "missing rootfs",
      insp({ rootfs: "missing" }),
      {},
      refuse("/var/lib/lxc/c1/rootfs is missing; expected a directory"),
    ],
    [
      "legacy key",
      insp({ config: `lxc.rootfs = ${R}\n` }),
      {},
      refuse(
        "/var/lib/lxc/c1/config: the config uses the legacy key lxc.rootfs (LXC < 3.0); convert it with lxc-update-config -c <config> and run again",
      ),
    ],
    [
      "two rootfs lines",
      insp({ config: `${CFG_DIR}lxc.rootfs.path = btrfs:${R}\n` }),
      {},
      refuse(
        "/var/lib/lxc/c1/config: the config has 2 lxc.rootfs.path lines (lines 2, 4); keep exactly one and run again",
      ),
    ],
    [
      "rootfs elsewhere",
      insp({ config: cfg("dir:/srv/c1") }),
      {},
      refuse(
        "/var/lib/lxc/c1/config: lxc.rootfs.path points at /srv/c1, not at /var/lib/lxc/c1/rootfs; only the standard layout is supported",
      ),
    ],
    [
      "overlay",
      insp({ config: cfg(`overlay:${L}/base/rootfs:${D}/delta0`) }),
      {},
      refuse(
        "/var/lib/lxc/c1/config: lxc.rootfs.path = overlay:/var/lib/lxc/base/rootfs:/var/lib/lxc/c1/delta0 uses a backing store this resource does not convert",
      ),
    ],
    [
      "mount points inside",
      insp({ mounts: [`${R}/mnt/data`, `${R}/proc`] }),
      {},
      refuse(
        "mount points inside /var/lib/lxc/c1/rootfs: /var/lib/lxc/c1/rootfs/mnt/data, /var/lib/lxc/c1/rootfs/proc; unmount them first",
      ),
    ],
    [
      "leftover rootfs.plb-new without journal",
      insp({ exists: exists(["rootfs.plb-new"]) }),
      {},
      refuse(
        "/var/lib/lxc/c1/rootfs.plb-new already exists and no conversion journal explains it; move it away and run again",
      ),
    ],
    [
      "leftover rootfs.pre-btrfs without journal",
      insp({ exists: exists(["rootfs.pre-btrfs"]) }),
      {},
      refuse(
        "/var/lib/lxc/c1/rootfs.pre-btrfs already exists and no conversion journal explains it; move it away and run again",
      ),
    ],
    [
      "nested subvolumes with nestedSubvolumes: fail",
      insp({ nested: [`${R}/var/lib/machines`, `${R}/srv/my vol`] }),
      {},
      refuse(
        'nested subvolumes inside /var/lib/lxc/c1/rootfs: /var/lib/lxc/c1/rootfs/var/lib/machines, /var/lib/lxc/c1/rootfs/srv/my vol; set nestedSubvolumes: "keep" to move them into the new subvolume',
      ),
    ],
    [
      "running with ifRunning: fail",
      insp({ state: "RUNNING" }),
      {},
      refuse('container c1 is RUNNING; stop it first or set ifRunning: "restart" or "live"'),
    ],
    [
      "frozen with ifRunning: fail",
      insp({ state: "FROZEN" }),
      {},
      refuse('container c1 is FROZEN; stop it first or set ifRunning: "restart" or "live"'),
    ],
    [
      "one byte less than needed",
      insp({ availBytes: 69156863 }),
      {},
      refuse(
        "not enough free space in /var/lib/lxc/c1: 69156863 bytes available, 69156864 needed for the metadata of 1000 entries; free some space and run again",
      ),
    ],
  ];
  for (const [what, i, p, want] of table) {
    it(what, () => {
      expect(planConvert(i, policy(p))).to.deep.equal(want);
    });
  }
});

describe("rootfs-plan: planConvert steps", () => {
  it("a stopped directory rootfs: the whole step list", () => {
    expect(planConvert(insp(), policy())).to.deep.equal({
      kind: "apply",
      action: "convert rootfs to a subvolume",
      steps: CONVERT_STOPPED,
    });
  });

  it("exactly the free space needed is enough", () => {
    expect(planConvert(insp({ availBytes: 69156864 }), policy())).to.deep.equal({
      kind: "apply",
      action: "convert rootfs to a subvolume",
      steps: CONVERT_STOPPED,
    });
  });

  it("a bare-path config is rewritten to btrfs: too", () => {
    const plan = planConvert(insp({ config: CFG_BARE }), policy());
    expect(plan.kind === "apply" && plan.steps.filter((s) => s.op === "write-config")).to.deep.equal([
      { op: "write-config", expectedSha: SHA_BARE, content: CFG_BTRFS, backupName: "config.pre-btrfs" },
    ]);
  });

  it("keepBackup: true keeps rootfs.pre-btrfs (no remove step)", () => {
    expect(planConvert(insp(), policy({ keepBackup: true }))).to.deep.equal({
      kind: "apply",
      action: "convert rootfs to a subvolume",
      steps: CONVERT_STOPPED.filter((s) => s.op !== "remove"),
    });
  });

  it("running with ifRunning: restart stops first and starts before removing the old tree", () => {
    for (const state of ["RUNNING", "FROZEN"]) {
      expect(planConvert(insp({ state }), policy({ ifRunning: "restart" })), state).to.deep.equal({
        kind: "apply",
        action: "convert rootfs to a subvolume",
        steps: [
          j("copying", "convert", true),
          { op: "stop" },
          { op: "subvol-create", path: NEW },
          { op: "copy", from: R, to: NEW, total: 1000 },
          { op: "verify", a: R, b: NEW },
          j("swapping", "convert", true),
          { op: "swap", cur: R, next: NEW, old: BAK },
          j("swapped", "convert", true),
          toBtrfs,
          { op: "move-nested", from: BAK, to: R },
          { op: "start" },
          { op: "remove", path: BAK },
          { op: "journal-clear" },
        ],
      });
    }
  });

  it("running with ifRunning: live pre-copies while it runs, stops only for the catch-up, starts before the removal", () => {
    for (const state of ["RUNNING", "FROZEN"]) {
      expect(planConvert(insp({ state }), policy({ ifRunning: "live" })), state).to.deep.equal({
        kind: "apply",
        action: "convert rootfs to a subvolume",
        steps: [
          j("precopying", "convert", true),
          { op: "subvol-create", path: NEW },
          { op: "precopy", from: R, to: NEW, total: 1000 },
          j("catching-up", "convert", true),
          { op: "stop" },
          { op: "catchup", from: R, to: NEW },
          { op: "verify", a: R, b: NEW },
          j("swapping", "convert", true),
          { op: "swap", cur: R, next: NEW, old: BAK },
          j("swapped", "convert", true),
          toBtrfs,
          { op: "move-nested", from: BAK, to: R },
          { op: "start" },
          { op: "remove", path: BAK },
          { op: "journal-clear" },
        ],
      });
    }
  });

  it("a stopped container with ifRunning: live converts like any stopped one (no pre-copy, no stop)", () => {
    expect(planConvert(insp(), policy({ ifRunning: "live" }))).to.deep.equal({
      kind: "apply",
      action: "convert rootfs to a subvolume",
      steps: CONVERT_STOPPED,
    });
  });

  it("live with keepBackup: true keeps the old tree: no remove step", () => {
    const plan = planConvert(insp({ state: "RUNNING" }), policy({ ifRunning: "live", keepBackup: true }));
    expect(plan.kind === "apply" && plan.steps.slice(-3)).to.deep.equal([
      { op: "move-nested", from: BAK, to: R },
      { op: "start" },
      { op: "journal-clear" },
    ]);
  });

  it("nested subvolumes with nestedSubvolumes: keep are moved into the new subvolume", () => {
    expect(
      planConvert(insp({ nested: [`${R}/var/lib/machines`] }), policy({ nestedSubvolumes: "keep" })),
    ).to.deep.equal({ kind: "apply", action: "convert rootfs to a subvolume", steps: CONVERT_STOPPED });
  });

  it("a subvolume with a btrfs: config is done and adopted", () => {
    expect(planConvert(insp({ rootfsIsSubvolume: true, config: CFG_BTRFS }), policy())).to.deep.equal({
      kind: "done",
      adopted: true,
    });
  });

  it("done wins over leftovers, low space and a running container", () => {
    const i = insp({
      rootfsIsSubvolume: true,
      config: CFG_BTRFS,
      exists: exists(["rootfs.pre-btrfs"]),
      availBytes: 0,
      state: "RUNNING",
    });
    expect(planConvert(i, policy())).to.deep.equal({ kind: "done", adopted: true });
  });

  it("a subvolume with a dir: config only rewrites the config (exact content and sha256)", () => {
    expect(planConvert(insp({ rootfsIsSubvolume: true, state: "RUNNING" }), policy())).to.deep.equal({
      kind: "apply",
      action: "point the config at the btrfs backing store (was dir)",
      steps: [toBtrfs],
    });
  });

  it("a subvolume with a bare config says so", () => {
    expect(planConvert(insp({ rootfsIsSubvolume: true, config: CFG_BARE }), policy())).to.deep.equal({
      kind: "apply",
      action: "point the config at the btrfs backing store (was bare)",
      steps: [
        { op: "write-config", expectedSha: SHA_BARE, content: CFG_BTRFS, backupName: "config.pre-btrfs" },
      ],
    });
  });
});

describe("rootfs-plan: planConvert resumes from the journal", () => {
  const journal = (phase: Journal["phase"], wasRunning: boolean, op = "convert" as const) => ({
    op,
    phase,
    wasRunning,
  });

  it("copying: discard the partial copy and clear the journal", () => {
    expect(
      planConvert(insp({ journal: journal("copying", false), exists: exists(["rootfs.plb-new"]) }), policy()),
    ).to.deep.equal({
      kind: "apply",
      action: "roll back an interrupted convert (copy not yet verified)",
      steps: [{ op: "discard", path: NEW }, { op: "journal-clear" }],
    });
  });

  it("copying of a container that was running: start it again", () => {
    expect(planConvert(insp({ journal: journal("copying", true) }), policy())).to.deep.equal({
      kind: "apply",
      action: "roll back an interrupted convert (copy not yet verified)",
      steps: [{ op: "discard", path: NEW }, { op: "start" }, { op: "journal-clear" }],
    });
  });

  it("precopying or catching-up (a live conversion before its verification): roll back, start it if it is not running", () => {
    for (const phase of ["precopying", "catching-up"] as const) {
      for (const [state, start] of [
        ["STOPPED", [{ op: "start" }]],
        ["RUNNING", []],
      ] as const) {
        const i = insp({ journal: { op: "convert", phase, wasRunning: true }, state });
        expect(planConvert(i, policy({ ifRunning: "live" })), `${phase} ${state}`).to.deep.equal({
          kind: "apply",
          action: "roll back an interrupted convert (copy not yet verified)",
          steps: [{ op: "discard", path: NEW }, ...start, { op: "journal-clear" }],
        });
      }
    }
  });

  it("copying, was running and already running again: no start", () => {
    expect(
      planConvert(insp({ journal: journal("copying", true), state: "RUNNING" }), policy()),
    ).to.deep.equal({
      kind: "apply",
      action: "roll back an interrupted convert (copy not yet verified)",
      steps: [{ op: "discard", path: NEW }, { op: "journal-clear" }],
    });
  });

  it("swapping, the first rename done: complete the swap and journal swapped (finishing is planned next round)", () => {
    for (const at of [
      { rootfs: "missing" as const, exists: exists(["rootfs.plb-new", "rootfs.pre-btrfs"]) },
      { exists: exists(["rootfs.pre-btrfs"]) },
    ]) {
      expect(planConvert(insp({ journal: journal("swapping", true), ...at }), policy())).to.deep.equal({
        kind: "apply",
        action: "resume an interrupted convert (complete the swap)",
        steps: [{ op: "swap", cur: R, next: NEW, old: BAK }, j("swapped", "convert", true)],
      });
    }
  });

  it("swapping, the original still in place: the copy may be stale (the container may have run since): roll back", () => {
    const rollback =
      "roll back an interrupted convert (the swap had not started; the original may have changed since its verification)";
    const table: [Partial<RootfsInspection>, Step[]][] = [
      // stopped, as the conversion left it: discard, start it again, clear
      [{ state: "STOPPED" }, [{ op: "discard", path: NEW }, { op: "start" }, { op: "journal-clear" }]],
      // started meanwhile (autostart after a power cut): never swapped away under it
      [{ state: "RUNNING" }, [{ op: "discard", path: NEW }, { op: "journal-clear" }]],
    ];
    for (const [over, steps] of table) {
      const i = insp({ journal: journal("swapping", true), exists: exists(["rootfs.plb-new"]), ...over });
      expect(planConvert(i, policy())).to.deep.equal({ kind: "apply", action: rollback, steps });
    }
  });

  it("swapped: config, nested, start, remove, clear", () => {
    const i = insp({
      journal: journal("swapped", true),
      rootfsIsSubvolume: true,
      exists: exists(["rootfs.pre-btrfs"]),
    });
    expect(planConvert(i, policy())).to.deep.equal({
      kind: "apply",
      action: "resume an interrupted convert (finish)",
      steps: [
        toBtrfs,
        { op: "move-nested", from: BAK, to: R },
        { op: "start" },
        { op: "remove", path: BAK },
        { op: "journal-clear" },
      ],
    });
  });

  it("swapped, crashed after the start: only the removal is left; the running container is not stopped", () => {
    for (const ifRunning of ["fail", "restart", "live"] as const) {
      const i = insp({
        journal: journal("swapped", true),
        rootfsIsSubvolume: true,
        config: CFG_BTRFS,
        state: "RUNNING",
        exists: exists(["rootfs.pre-btrfs"]),
      });
      expect(planConvert(i, policy({ ifRunning })), ifRunning).to.deep.equal({
        kind: "apply",
        action: "resume an interrupted convert (finish)",
        steps: [
          { op: "move-nested", from: BAK, to: R },
          { op: "remove", path: BAK },
          { op: "journal-clear" },
        ],
      });
    }
  });

  it("swapped with the config already btrfs: and the backup gone: only clear", () => {
    const i = insp({ journal: journal("swapped", false), rootfsIsSubvolume: true, config: CFG_BTRFS });
    expect(planConvert(i, policy())).to.deep.equal({
      kind: "apply",
      action: "resume an interrupted convert (finish)",
      steps: [{ op: "journal-clear" }],
    });
  });

  it("swapped with keepBackup: true moves nested subvolumes but keeps the backup", () => {
    const i = insp({ journal: journal("swapped", false), exists: exists(["rootfs.pre-btrfs"]) });
    expect(planConvert(i, policy({ keepBackup: true }))).to.deep.equal({
      kind: "apply",
      action: "resume an interrupted convert (finish)",
      steps: [toBtrfs, { op: "move-nested", from: BAK, to: R }, { op: "journal-clear" }],
    });
  });

  it("the journal wins over leftovers and mount checks", () => {
    const i = insp({
      journal: journal("copying", false),
      exists: exists(["rootfs.plb-new", "rootfs.pre-btrfs"]),
      mounts: [`${R}/mnt`],
    });
    expect(planConvert(i, policy()).kind).to.equal("apply");
  });
});

describe("rootfs-plan: planRevert", () => {
  const SUBVOL = { rootfsIsSubvolume: true, config: CFG_BTRFS };
  const toDir: Step = {
    op: "write-config",
    expectedSha: SHA_BTRFS,
    content: CFG_DIR,
    backupName: "config.pre-dir",
  };

  it("a subvolume with a btrfs: config: the whole step list", () => {
    expect(planRevert(insp(SUBVOL), policy())).to.deep.equal({
      kind: "apply",
      action: "revert rootfs to a directory",
      steps: [
        j("copying", "revert", false),
        { op: "mkdir-new", path: RDIR },
        { op: "copy", from: R, to: RDIR, total: 1000 },
        { op: "verify", a: R, b: RDIR },
        j("swapping", "revert", false),
        { op: "swap", cur: R, next: RDIR, old: ROLD },
        j("swapped", "revert", false),
        toDir,
        { op: "move-nested", from: ROLD, to: R },
        { op: "remove", path: ROLD },
        { op: "journal-clear" },
      ],
    });
  });

  it("a running container with ifRunning: live: pre-copy into a directory, stop, catch up", () => {
    const plan = planRevert(insp({ ...SUBVOL, state: "RUNNING" }), policy({ ifRunning: "live" }));
    expect(plan.kind === "apply" && plan.steps.slice(0, 7)).to.deep.equal([
      j("precopying", "revert", true),
      { op: "mkdir-new", path: RDIR },
      { op: "precopy", from: R, to: RDIR, total: 1000 },
      j("catching-up", "revert", true),
      { op: "stop" },
      { op: "catchup", from: R, to: RDIR },
      { op: "verify", a: R, b: RDIR },
    ]);
  });

  it("keepBackup does not keep the old subvolume on revert", () => {
    const plan = planRevert(insp(SUBVOL), policy({ keepBackup: true }));
    expect(plan.kind === "apply" && plan.steps.filter((s) => s.op === "remove")).to.deep.equal([
      { op: "remove", path: ROLD },
    ]);
  });

  it("nested subvolumes never refuse a revert", () => {
    const plan = planRevert(insp({ ...SUBVOL, nested: [`${R}/var/lib/machines`] }), policy());
    expect(plan.kind).to.equal("apply");
  });

  it("a directory with a dir: config is done, not adopted", () => {
    expect(planRevert(insp(), policy())).to.deep.equal({ kind: "done", adopted: false });
  });

  it("a directory with a btrfs: config gets a dir: config", () => {
    expect(planRevert(insp({ config: CFG_BTRFS }), policy())).to.deep.equal({
      kind: "apply",
      action: "point the config at the dir backing store",
      steps: [toDir],
    });
  });

  it("a missing container is done", () => {
    expect(planRevert(insp({ containerDir: "missing" }), policy())).to.deep.equal({
      kind: "done",
      adopted: false,
    });
  });

  it("refuses on ext4, running, leftovers", () => {
    expect(planRevert(insp({ ...SUBVOL, fstype: "ext2/ext3" }), policy())).to.deep.equal(
      refuse(
        "/var/lib/lxc/c1 is on ext2/ext3, not btrfs; LxcSubvolumeRootfs needs /var/lib/lxc on a btrfs filesystem",
      ),
    );
    expect(planRevert(insp({ ...SUBVOL, state: "RUNNING" }), policy())).to.deep.equal(
      refuse('container c1 is RUNNING; stop it first or set ifRunning: "restart" or "live"'),
    );
    expect(planRevert(insp({ ...SUBVOL, exists: exists(["rootfs.plb-dir"]) }), policy())).to.deep.equal(
      refuse("/var/lib/lxc/c1/rootfs.plb-dir already exists and no journal explains it; move it away"),
    );
    expect(planRevert(insp({ ...SUBVOL, exists: exists(["rootfs.plb-old"]) }), policy())).to.deep.equal(
      refuse("/var/lib/lxc/c1/rootfs.plb-old already exists and no journal explains it; move it away"),
    );
  });

  it("resumes an interrupted revert after the swap", () => {
    const i = insp({
      journal: { op: "revert", phase: "swapped", wasRunning: false },
      config: CFG_BTRFS,
      exists: exists(["rootfs.plb-old"]),
    });
    expect(planRevert(i, policy({ keepBackup: true }))).to.deep.equal({
      kind: "apply",
      action: "resume an interrupted revert (finish)",
      steps: [
        toDir,
        { op: "move-nested", from: ROLD, to: R },
        { op: "remove", path: ROLD },
        { op: "journal-clear" },
      ],
    });
  });

  it("rolls back an interrupted revert copy", () => {
    const i = insp({ ...SUBVOL, journal: { op: "revert", phase: "copying", wasRunning: false } });
    expect(planRevert(i, policy())).to.deep.equal({
      kind: "apply",
      action: "roll back an interrupted revert (copy not yet verified)",
      steps: [{ op: "discard", path: RDIR }, { op: "journal-clear" }],
    });
  });

  it("rolls back an interrupted revert swap that had not started (the subvolume may have changed since)", () => {
    const i = insp({
      ...SUBVOL,
      journal: { op: "revert", phase: "swapping", wasRunning: false },
      exists: exists(["rootfs.plb-dir"]),
    });
    expect(planRevert(i, policy())).to.deep.equal({
      kind: "apply",
      action:
        "roll back an interrupted revert (the swap had not started; the original may have changed since its verification)",
      steps: [{ op: "discard", path: RDIR }, { op: "journal-clear" }],
    });
  });

  it("completes an interrupted revert swap", () => {
    const i = insp({
      ...SUBVOL,
      journal: { op: "revert", phase: "swapping", wasRunning: true },
      exists: exists(["rootfs.plb-old"]),
    });
    expect(planRevert(i, policy())).to.deep.equal({
      kind: "apply",
      action: "resume an interrupted revert (complete the swap)",
      steps: [{ op: "swap", cur: R, next: RDIR, old: ROLD }, j("swapped", "revert", true)],
    });
  });
});

describe("rootfs-plan: plans for the real captured inspections", () => {
  const real = (name: string) => parseRootfsInspection(fixture(name));
  const p = (container: string, over: Partial<RootfsPolicy> = {}) =>
    policy({ lxcPath: CAP_LXC, container, ...over });

  it("a real directory rootfs converts with the real config rewritten", () => {
    const i = real("inspect-dir.bin");
    const d = `${CAP_LXC}/d1`;
    const plan = planConvert(i, p("d1"));
    expect(plan.kind).to.equal("apply");
    const steps = plan.kind === "apply" ? plan.steps : [];
    expect(steps.map((s) => s.op)).to.deep.equal([
      "journal",
      "subvol-create",
      "copy",
      "verify",
      "journal",
      "swap",
      "journal",
      "write-config",
      "move-nested",
      "remove",
      "journal-clear",
    ]);
    expect(steps[2]).to.deep.equal({
      op: "copy",
      from: `${d}/rootfs`,
      to: `${d}/rootfs.plb-new`,
      total: 301,
    });
    const wc = steps[7] as Extract<Step, { op: "write-config" }>;
    expect(wc.content).to.equal(
      (i.config as string).replace(
        `lxc.rootfs.path = dir:${d}/rootfs\n`,
        `lxc.rootfs.path = btrfs:${d}/rootfs\n`,
      ),
    );
  });

  it("the real subvolume with btrfs: is adopted", () => {
    expect(planConvert(real("inspect-subvol.bin"), p("sv"))).to.deep.equal({ kind: "done", adopted: true });
  });

  it("the real running subvolume container is done too (no stop needed)", () => {
    expect(planConvert(real("inspect-running.bin"), p("run1"))).to.deep.equal({
      kind: "done",
      adopted: true,
    });
  });

  it("the real nested subvolumes refuse with their paths", () => {
    expect(planConvert(real("inspect-nested.bin"), p("n1"))).to.deep.equal(
      refuse(
        `nested subvolumes inside ${CAP_LXC}/n1/rootfs: ${CAP_LXC}/n1/rootfs/var/lib/machines, ${CAP_LXC}/n1/rootfs/srv/my vol; set nestedSubvolumes: "keep" to move them into the new subvolume`,
      ),
    );
  });

  it("the real mount point refuses", () => {
    expect(planConvert(real("inspect-mounted.bin"), p("d1"))).to.deep.equal(
      refuse(
        `mount points inside ${CAP_LXC}/d1/rootfs: ${CAP_LXC}/d1/rootfs/mnt/with space; unmount them first`,
      ),
    );
  });

  it("the real interrupted copy rolls back and restarts the container", () => {
    expect(planConvert(real("inspect-journal.bin"), p("j1"))).to.deep.equal({
      kind: "apply",
      action: "roll back an interrupted convert (copy not yet verified)",
      steps: [
        { op: "discard", path: `${CAP_LXC}/j1/rootfs.plb-new` },
        { op: "start" },
        { op: "journal-clear" },
      ],
    });
  });

  it("the real ext4 container, symlink without config, and missing container refuse", () => {
    expect(
      planConvert(real("inspect-ext4.bin"), policy({ lxcPath: CAP_EXT_LXC, container: "e1" })),
    ).to.deep.equal(
      refuse(
        `${CAP_EXT_LXC}/e1 is on ext2/ext3, not btrfs; LxcSubvolumeRootfs needs ${CAP_EXT_LXC} on a btrfs filesystem`,
      ),
    );
    expect(planConvert(real("inspect-symlink-noconfig.bin"), p("s1"))).to.deep.equal(
      refuse(`${CAP_LXC}/s1/config is missing or unreadable; is s1 an LXC container?`),
    );
    expect(planConvert(real("inspect-missing.bin"), p("nosuch"))).to.deep.equal(
      refuse(`container nosuch does not exist: ${CAP_LXC}/nosuch is missing; check the name and lxcPath`),
    );
    expect(planRevert(real("inspect-missing.bin"), p("nosuch"))).to.deep.equal({
      kind: "done",
      adopted: false,
    });
  });
});
