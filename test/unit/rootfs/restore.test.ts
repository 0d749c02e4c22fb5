/**
 * restoreFrom (roll back in place), pure parts: when a run restores, the plan of a restore, how an
 * interrupted one resumes from its journal, the journal's parsing and the step argv.
 */
import { expect } from "chai";
import { validate } from "../../../provider/core/inputs";
import { type RootfsInputs, rootfsArgsSchema } from "../../../provider/rootfs/inputs";
import {
  type Journal,
  parseJournal,
  parseRootfsInspection,
  type RootfsInspection,
} from "../../../provider/rootfs/inspection";
import {
  planConvert,
  planRestore,
  planRevert,
  type RootfsPlan,
  type RootfsPolicy,
  type Step,
} from "../../../provider/rootfs/plan";
import { convergeWith, diff, restoreRequested } from "../../../provider/rootfs/provider";
import { batchArgs } from "../../../provider/rootfs/steps";
import { logged } from "../../support/log";
import { FakeRemote, NONCE, out, thenInspection, withLog, withNonce } from "../fake-remote";
import { fixture } from "../fixtures";

const L = "/var/lib/lxc";
const D = `${L}/c1`;
const R = `${D}/rootfs`;
const NEW = `${D}/rootfs.plb-restore`;
const OLD = `${D}/rootfs.pre-restore`;
const SNAP = `${D}/snaps/snap0`;

/** A converted, stopped container with no leftovers: what planRestore is asked about. */
function insp(over: Partial<RootfsInspection> = {}): RootfsInspection {
  return {
    btrfsVersion: "btrfs-progs v6.2",
    lxcVersion: "5.0.2",
    hasLxcCopy: true,
    hasGetfattr: true,
    rootfsFlags: "----------------------",
    containerDir: "present",
    fstype: "btrfs",
    availBytes: 2 ** 30,
    rootfs: "dir",
    rootfsIsSubvolume: true,
    exists: {
      "rootfs.plb-new": false,
      "rootfs.pre-btrfs": false,
      "rootfs.plb-old": false,
      "rootfs.plb-dir": false,
      "config.pre-btrfs": true,
      "rootfs.plb-restore": false,
      "rootfs.pre-restore": false,
    },
    state: "STOPPED",
    nested: [],
    mounts: [],
    config: `lxc.rootfs.path = btrfs:${R}\nlxc.uts.name = c1\n`,
    ...over,
  };
}

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

const jr = (phase: Journal["phase"], wasRunning: boolean, snapshot = "snap0"): Step => ({
  op: "journal-restore",
  phase,
  snapshot,
  wasRunning,
});
const check = (keep = false): Step => ({ op: "snapshot-check", snapshot: SNAP, cur: R, keep });
const MAKE: Step[] = [
  { op: "restore-snapshot", snapshot: SNAP, path: NEW },
  { op: "restore-verify", snapshot: SNAP, path: NEW },
];
const SWAP: Step = { op: "swap", cur: R, next: NEW, old: OLD };
const apply = (action: string, steps: Step[], restores?: string): RootfsPlan =>
  restores === undefined ? { kind: "apply", action, steps } : { kind: "apply", action, steps, restores };
const ACTION = "restore rootfs from snapshot snap0";
/** The restore of a running container (restart, or live, which restores the same way). */
const RESTORE_RUNNING = apply(
  ACTION,
  [
    check(),
    jr("copying", true),
    { op: "stop" },
    ...MAKE,
    jr("swapping", true),
    SWAP,
    jr("swapped", true),
    { op: "start" },
    { op: "remove", path: OLD },
    { op: "journal-clear" },
  ],
  "snap0",
);

describe("rootfs-restore: planRestore", () => {
  const table: [string, Partial<RootfsInspection>, Partial<RootfsPolicy>, RootfsPlan][] = [
    [
      "stopped: check, journal, snapshot, verify, swap, remove the replaced rootfs",
      {},
      {},
      apply(
        ACTION,
        [
          check(),
          jr("copying", false),
          ...MAKE,
          jr("swapping", false),
          SWAP,
          jr("swapped", false),
          { op: "remove", path: OLD },
          { op: "journal-clear" },
        ],
        "snap0",
      ),
    ],
    [
      "stopped, keepBackup: the replaced rootfs stays as rootfs.pre-restore, nested subvolumes allowed",
      {},
      { keepBackup: true },
      apply(
        ACTION,
        [
          check(true),
          jr("copying", false),
          ...MAKE,
          jr("swapping", false),
          SWAP,
          jr("swapped", false),
          { op: "journal-clear" },
        ],
        "snap0",
      ),
    ],
    [
      "running, ifRunning restart: stopped before the snapshot, started before the removal",
      { state: "RUNNING" },
      { ifRunning: "restart" },
      RESTORE_RUNNING,
    ],
    [
      "frozen, ifRunning live: the same as restart (nothing to pre-copy)",
      { state: "FROZEN" },
      { ifRunning: "live" },
      RESTORE_RUNNING,
    ],
    [
      "running, ifRunning fail: refused",
      { state: "RUNNING" },
      {},
      {
        kind: "refuse",
        reason:
          'container c1 is RUNNING; stop it first or set ifRunning: "restart" to restore it from snapshot snap0',
      },
    ],
    [
      "a leftover rootfs.pre-restore (an earlier restore's backup): refused",
      { exists: { ...insp().exists, "rootfs.pre-restore": true } },
      { keepBackup: true },
      {
        kind: "refuse",
        reason: `${D}/rootfs.pre-restore already exists (an earlier restore's backup?) and no journal explains it; move it away or delete it (btrfs subvolume delete) and run again`,
      },
    ],
    [
      "a leftover rootfs.plb-restore: refused",
      { exists: { ...insp().exists, "rootfs.plb-restore": true } },
      {},
      {
        kind: "refuse",
        reason: `${D}/rootfs.plb-restore already exists (an earlier restore's backup?) and no journal explains it; move it away or delete it (btrfs subvolume delete) and run again`,
      },
    ],
    [
      "an immutable rootfs directory cannot be renamed: refused",
      { rootfsFlags: "----i-----------------" },
      {},
      {
        kind: "refuse",
        reason: `${R} itself is immutable or append-only (lsattr: ----i-----------------), so it cannot be renamed; clear it with chattr -i -a ${R} and run again`,
      },
    ],
    [
      "not a subvolume: refused",
      { rootfsIsSubvolume: false },
      {},
      { kind: "refuse", reason: `${R} is not a subvolume; cannot restore it` },
    ],
  ];
  for (const [what, over, pol, want] of table) {
    it(what, () => {
      expect(planRestore(insp(over), policy(pol), "snap0")).to.deep.equal(want);
    });
  }

  it("the batch's argv: each op with its argument count, the snapshot path and the keep flag", () => {
    const plan = planRestore(insp(), policy(), "snap0") as Extract<RootfsPlan, { kind: "apply" }>;
    expect(batchArgs(L, "c1", plan.steps)).to.deep.equal([
      L,
      "c1",
      ...["snapshot-check", "3", SNAP, R, "0"],
      ...["journal-restore", "3", "copying", "snap0", "0"],
      ...["restore-snapshot", "2", SNAP, NEW],
      ...["restore-verify", "2", SNAP, NEW],
      ...["journal-restore", "3", "swapping", "snap0", "0"],
      ...["swap", "3", R, NEW, OLD],
      ...["journal-restore", "3", "swapped", "snap0", "0"],
      ...["remove", "1", OLD],
      ...["journal-clear", "0"],
    ]);
  });
});

describe("rootfs-restore: an interrupted restore resumes from its journal (planConvert and planRevert)", () => {
  const j = (phase: Journal["phase"], wasRunning: boolean): Journal => ({
    op: "restore",
    phase,
    wasRunning,
    snapshot: "snap0",
  });
  const has = (...names: string[]) => ({
    ...insp().exists,
    ...Object.fromEntries(names.map((n) => [n, true])),
  });
  const ROLLBACK = "roll back an interrupted restore from snapshot snap0 (not yet swapped)";
  const table: [string, Partial<RootfsInspection>, Partial<RootfsPolicy>, RootfsPlan][] = [
    [
      "copying: the writable snapshot is discarded (the restore is then done again)",
      { journal: j("copying", false), exists: has("rootfs.plb-restore") },
      {},
      apply(ROLLBACK, [{ op: "discard", path: NEW }, { op: "journal-clear" }]),
    ],
    [
      "copying, was running and now stopped: discarded and started again",
      { journal: j("copying", true), exists: has("rootfs.plb-restore") },
      {},
      apply(ROLLBACK, [{ op: "discard", path: NEW }, { op: "start" }, { op: "journal-clear" }]),
    ],
    [
      "swapping, the rootfs still in place and no rootfs.pre-restore: not started, rolled back",
      { journal: j("swapping", true), exists: has("rootfs.plb-restore"), state: "RUNNING" },
      {},
      apply(ROLLBACK, [{ op: "discard", path: NEW }, { op: "journal-clear" }]),
    ],
    [
      "swapping, first rename done (rootfs missing): the swap is completed",
      {
        journal: j("swapping", false),
        rootfs: "missing",
        rootfsIsSubvolume: false,
        exists: has("rootfs.plb-restore", "rootfs.pre-restore"),
      },
      {},
      apply("resume an interrupted restore from snapshot snap0 (complete the swap)", [
        SWAP,
        jr("swapped", false),
      ]),
    ],
    [
      "swapping, both renames done: the swap step finds it done; journal swapped",
      { journal: j("swapping", true), exists: has("rootfs.pre-restore") },
      {},
      apply("resume an interrupted restore from snapshot snap0 (complete the swap)", [
        SWAP,
        jr("swapped", true),
      ]),
    ],
    [
      "swapped: start, remove the replaced rootfs, clear; completes the restore of snap0",
      { journal: j("swapped", true), exists: has("rootfs.pre-restore") },
      {},
      apply(
        "resume an interrupted restore from snapshot snap0 (finish)",
        [{ op: "start" }, { op: "remove", path: OLD }, { op: "journal-clear" }],
        "snap0",
      ),
    ],
    [
      "swapped, already running and the replaced rootfs gone: only clear",
      { journal: j("swapped", true), state: "RUNNING" },
      {},
      apply("resume an interrupted restore from snapshot snap0 (finish)", [{ op: "journal-clear" }], "snap0"),
    ],
    [
      "swapped with keepBackup: the replaced rootfs is kept",
      { journal: j("swapped", false), exists: has("rootfs.pre-restore") },
      { keepBackup: true },
      apply("resume an interrupted restore from snapshot snap0 (finish)", [{ op: "journal-clear" }], "snap0"),
    ],
  ];
  for (const [what, over, pol, want] of table) {
    it(what, () => {
      expect(planConvert(insp(over), policy(pol))).to.deep.equal(want);
    });
  }
  it("a delete with onDelete revert resumes the restore first", () => {
    expect(planRevert(insp({ journal: j("copying", false) }), policy())).to.deep.equal(
      apply(ROLLBACK, [{ op: "discard", path: NEW }, { op: "journal-clear" }]),
    );
  });
});

describe("rootfs-restore: parseJournal of a restore", () => {
  it("reads the snapshot's name", () => {
    expect(parseJournal("op=restore\nphase=swapping\nsnapshot=snap-1.a\nwas_running=1\n")).to.deep.equal({
      op: "restore",
      phase: "swapping",
      wasRunning: true,
      snapshot: "snap-1.a",
    });
  });
  for (const text of [
    "op=restore\nphase=copying\nwas_running=0\n",
    "op=restore\nphase=copying\nsnapshot=../x\nwas_running=0\n",
    "op=restore\nphase=copying\nsnapshot=a b\nwas_running=0\n",
    "op=restore\nphase=copying\nsnapshot=\nwas_running=0\n",
  ]) {
    it(`refuses a missing or invalid snapshot name: ${JSON.stringify(text)}`, () => {
      expect(() => parseJournal(text)).to.throw(
        Error,
        `unrecognised journal ${JSON.stringify(text)}: bad snapshot name`,
      );
    });
  }
  it("refuses a live conversion's phase in a restore journal", () => {
    const text = "op=restore\nphase=precopying\nsnapshot=s\nwas_running=1\n";
    expect(() => parseJournal(text)).to.throw(Error, `unrecognised journal ${JSON.stringify(text)}`);
  });
});

describe("rootfs-restore: restoreRequested (when a run restores)", () => {
  const inputs = (restoreFrom?: string): RootfsInputs => {
    const res = validate(rootfsArgsSchema, {
      connection: { host: "h1" },
      container: "c1",
      ...(restoreFrom === undefined ? {} : { restoreFrom }),
    });
    if (!res.ok) throw new Error(JSON.stringify(res.failures));
    return res.value;
  };
  const table: [
    string,
    { restoreFrom?: string | null } | undefined,
    string | undefined,
    string | undefined,
  ][] = [
    ["create with restoreFrom", undefined, "a", "a"],
    ["create without", undefined, undefined, undefined],
    ["update, set for the first time", {}, "a", "a"],
    ["update, changed", { restoreFrom: "a" }, "b", "b"],
    ["update, unchanged: never again", { restoreFrom: "a" }, "a", undefined],
    ["update, removed: nothing", { restoreFrom: "a" }, undefined, undefined],
    ["update from state that stored null", { restoreFrom: null }, "a", "a"],
  ];
  for (const [what, olds, news, want] of table) {
    it(what, () => {
      expect(restoreRequested(olds as never, inputs(news))).to.equal(want);
    });
  }
  it("restoreFrom is validated like a container name", () => {
    const res = validate(rootfsArgsSchema, {
      connection: { host: "h1" },
      container: "c1",
      restoreFrom: "../x",
    });
    expect(res).to.deep.equal({
      ok: false,
      failures: [
        {
          property: "restoreFrom",
          reason:
            "must be a container name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..' or '/'",
        },
      ],
    });
  });
});

describe("rootfs-restore: the preview", () => {
  const i = (restoreFrom?: string) =>
    rootfsArgsSchema.parse({ connection: { host: "192.0.2.1" }, container: "c1", restoreFrom });
  it("diff logs what will be restored, from the inputs alone (192.0.2.1 is unreachable)", async () => {
    const { result, lines } = await logged(async () => diff({ ...i(), restoredFrom: null }, i("s1")));
    expect(result).to.deep.equal({ changes: true, replaces: [] });
    expect(lines).to.deep.equal([
      "[lxc-btrfs] c1: rootfs will be restored from snapshot s1 (/var/lib/lxc/c1/snaps/s1/rootfs)",
    ]);
  });
  it("no line when restoreFrom is unchanged or removed", async () => {
    const { result, lines } = await logged(async () => [diff(i("s1"), i("s1")), diff(i("s1"), i())]);
    expect(result).to.deep.equal([
      { changes: false, replaces: [] },
      { changes: true, replaces: [] },
    ]);
    expect(lines).to.deep.equal([]);
  });
});

describe("rootfs-restore: a real inspection of a restore cut between its two renames", () => {
  // capture.sh restore: the restore's steps up to its swapping journal, then rootfs -> rootfs.pre-restore.
  const raw = fixture("inspect-restore-swapping.bin");
  const lxc = /btrfs:(\/\S+)\/rs\/rootfs/.exec(raw)?.[1] as string;
  it("parses the journal with its snapshot, the missing rootfs and both restore trees", () => {
    const insp = parseRootfsInspection(raw);
    expect(insp.journal).to.deep.equal({
      op: "restore",
      phase: "swapping",
      wasRunning: false,
      snapshot: "s",
    });
    expect(insp).to.include({ rootfs: "missing", rootfsIsSubvolume: false, state: "STOPPED" });
    expect(insp.exists).to.include({ "rootfs.plb-restore": true, "rootfs.pre-restore": true });
  });
  it("plans completing the swap", () => {
    const d = `${lxc}/rs`;
    expect(planConvert(parseRootfsInspection(raw), policy({ container: "rs", lxcPath: lxc }))).to.deep.equal(
      apply("resume an interrupted restore from snapshot s (complete the swap)", [
        { op: "swap", cur: `${d}/rootfs`, next: `${d}/rootfs.plb-restore`, old: `${d}/rootfs.pre-restore` },
        { op: "journal-restore", phase: "swapped", snapshot: "s", wasRunning: false },
      ]),
    );
  });
});

describe("rootfs-restore: orchestration (FakeRemote replaying a real restore, capture.sh restore)", () => {
  const before = fixture("restore-rounds-inspect-before.bin");
  const lxc = /btrfs:(\/\S+)\/rr\/rootfs/.exec(before)?.[1] as string;
  const d = `${lxc}/rr`;
  const i = (restoreFrom?: string) =>
    rootfsArgsSchema.parse({ connection: { host: "fake" }, container: "rr", lxcPath: lxc, restoreFrom });
  const INSPECT = ["plb-inspect-rootfs", lxc, "rr", "auto"];
  const batch = (snap: string) => [
    "plb-step",
    lxc,
    "rr",
    ...["snapshot-check", "3", `${d}/snaps/${snap}`, `${d}/rootfs`, "0"],
    ...["journal-restore", "3", "copying", snap, "0"],
    ...["restore-snapshot", "2", `${d}/snaps/${snap}`, `${d}/rootfs.plb-restore`],
    ...["restore-verify", "2", `${d}/snaps/${snap}`, `${d}/rootfs.plb-restore`],
    ...["journal-restore", "3", "swapping", snap, "0"],
    ...["swap", "3", `${d}/rootfs`, `${d}/rootfs.plb-restore`, `${d}/rootfs.pre-restore`],
    ...["journal-restore", "3", "swapped", snap, "0"],
    ...["remove", "1", `${d}/rootfs.pre-restore`],
    ...["journal-clear", "0"],
    // The next round's inspection, in the same round trip.
    ...["inspect", "1", NONCE],
  ];
  const LOG = "[lxc-btrfs] rr on root@fake:22:";

  it("restores in one round, two round trips: inspect, the restore batch ending with the inspection (done); outputs record the snapshot and its UUID", async () => {
    const remote = new FakeRemote([
      out(before),
      thenInspection(out(fixture("restore-rounds-batch.bin")), fixture("restore-rounds-inspect-after.bin")),
    ]);
    const t0 = new Date().toISOString();
    const { log, value, error } = await withLog(() => convergeWith(remote, i("s"), "update", "s"));
    expect(error).to.equal(undefined);
    expect(remote.commands).to.deep.equal([INSPECT, batch("s")]);
    expect(remote.unused).to.equal(0);
    expect(log).to.deep.equal([`${LOG} update: restore rootfs from snapshot s`]);
    expect(value).to.include({
      restoredFrom: "s",
      restoredSnapshotUuid: "3e950eff-4134-4345-973b-a452b9cde035",
      subvolumeUuid: "65c8c375-ec34-c247-8a7a-68e9acf9d266",
      rootfsIsSubvolume: true,
      interrupted: null,
    });
    expect((value?.restoredAt as string) >= t0).to.equal(true);
  });

  it("no restore requested (restoreFrom unchanged): one inspection, nothing sent, the prior record kept", async () => {
    const remote = new FakeRemote([out(before)]);
    const prior = { restoredFrom: "s", restoredSnapshotUuid: "u", restoredAt: "2026-01-01T00:00:00.000Z" };
    const { value } = await withLog(() => convergeWith(remote, i("s"), "update", undefined, prior));
    expect(remote.commands).to.deep.equal([INSPECT]);
    expect(value).to.include(prior);
  });

  it("a snapshot refused by the batch's first step: the host's reason as a refusal, no rollback sent", async () => {
    const remote = new FakeRemote([
      out(before),
      {
        code: 3,
        stdout: fixture("restore-rounds-refused.bin"),
        stderr: fixture("restore-rounds-refused.err"),
      },
    ]);
    const { error } = await withLog(() => convergeWith(remote, i("nope"), "create", "nope"));
    expect(error?.message).to.equal(
      `LxcSubvolumeRootfs rr on root@fake:22: there is no snapshot nope of rr: ${d}/snaps/nope is missing; make the snapshot first (LxcSnapshot or lxc-snapshot) or correct restoreFrom. Nothing was changed.`,
    );
    expect(remote.commands).to.deep.equal([INSPECT, batch("nope")]);
    expect(remote.unused).to.equal(0);
  });

  it("a batch failing after the writable snapshot was made: rolled back (the swap had not started)", async () => {
    const marks =
      "@@step 1 snapshot-check\n@@step 2 journal-restore\n@@step 3 restore-snapshot\n@@step 4 restore-verify\n";
    const remote = new FakeRemote([
      out(before),
      { code: 3, stdout: marks, stderr: "not swapping it in\n" },
      out("@@step 1 unswapped\n@@step 2 discard\n@@step 3 journal-clear\n"),
    ]);
    const { error } = await withLog(() => convergeWith(remote, i("s"), "create", "s"));
    expect(withNonce(error?.message)).to.equal(
      `LxcSubvolumeRootfs rr: on root@fake:22: \`${batch("s").join(" ")}\` exited with code 3: not swapping it in`,
    );
    expect(remote.commands).to.deep.equal([
      INSPECT,
      batch("s"),
      [
        "plb-step",
        lxc,
        "rr",
        ...["unswapped", "2", `${d}/rootfs`, `${d}/rootfs.pre-restore`],
        ...["discard", "1", `${d}/rootfs.plb-restore`],
        ...["journal-clear", "0"],
      ],
    ]);
  });
});
