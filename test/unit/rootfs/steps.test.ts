/**
 * rootfs/steps.ts: which steps run together and their argv, held to step.sh's own list of ops, and reading
 * back what step.sh prints (real captured output).
 */
import { expect } from "chai";
import type { Step } from "../../../provider/rootfs/plan";
import {
  batchArgs,
  batchThenInspectArgs,
  compareTreeReports,
  handOffProblem,
  hardlinkGroups,
  inspectionAfter,
  nextStepMarker,
  STEP_OPS,
  stepBatches,
  verifyDiffArgs,
  verifyReport,
} from "../../../provider/rootfs/steps";
import { script } from "../../../provider/transport/remote-scripts";
import { caseArms } from "../../support/shell-case";
import { fixture } from "../fixtures";

/** Items joined as the verify step prints them: each followed by NUL. */
const z = (...items: string[]) => items.map((x) => `${x}\0`).join("");

const D = "/var/lib/lxc/c1";

const R = `${D}/rootfs`;
const NEW = `${D}/rootfs.plb-new`;
const BAK = `${D}/rootfs.pre-btrfs`;

/** The first batch of a live conversion, as planConvert makes it. */
const LIVE_FIRST: Step[] = [
  { op: "journal", phase: "precopying", kind: "convert", wasRunning: true },
  { op: "subvol-create", path: NEW },
  { op: "precopy", from: R, to: NEW, total: 100_000 },
  { op: "journal", phase: "catching-up", kind: "convert", wasRunning: true },
  { op: "stop" },
  { op: "catchup", from: R, to: NEW },
  { op: "verify", a: R, b: NEW },
];
/** What follows the verification in a conversion (planConvert, ifRunning "restart" or "live"). */
const SWAP_AND_FINISH: Step[] = [
  { op: "journal", phase: "swapping", kind: "convert", wasRunning: true },
  { op: "swap", cur: R, next: NEW, old: BAK },
  { op: "journal", phase: "swapped", kind: "convert", wasRunning: true },
  { op: "move-nested", from: BAK, to: R },
  { op: "start" },
  { op: "remove", path: BAK },
  { op: "journal-clear" },
];
const COPY_FIRST: Step[] = [
  { op: "journal", phase: "copying", kind: "convert", wasRunning: true },
  { op: "stop" },
  { op: "subvol-create", path: NEW },
  { op: "copy", from: R, to: NEW, total: 1000 },
  { op: "verify", a: R, b: NEW },
];

describe("rootfs steps: step.sh's ops are the Step union's (the contract between the two)", () => {
  it("step.sh's `step` dispatch, as sent, has an arm for every op of Step, plus inspect and verify-diff, and refuses others", () => {
    const arms = caseArms(script("step"), "step");
    // inspect and verify-diff: the provider's own ops (batchThenInspectArgs, verifyDiffArgs), never in a plan.
    expect([...arms].sort()).to.deep.equal([...STEP_OPS, "inspect", "verify-diff", "*"].sort());
    expect(arms.at(-1)).to.equal("*");
    expect(new Set(arms).size).to.equal(arms.length);
    expect(STEP_OPS).to.have.length(20); // 16 of a conversion, 4 of a restore;
  });

  it("inspect takes its nonce, after the batch's steps: OP NARGS ARG...", () => {
    const steps: Step[] = [{ op: "journal-clear" }, { op: "start" }];
    expect(batchThenInspectArgs("/var/lib/lxc", "c1", steps, "0a1b")).to.deep.equal([
      "/var/lib/lxc",
      "c1",
      ...["journal-clear", "0", "start", "0"],
      ...["inspect", "1", "0a1b"],
    ]);
  });

  it("step.sh as sent holds inspect-rootfs.sh as the function inspect_rootfs, run in a subshell", () => {
    const text = script("step");
    const fn = text.slice(text.indexOf("\ninspect_rootfs() (\n"));
    expect(fn.startsWith("\ninspect_rootfs() (\nset -u\nlxcpath=$1 name=$2 walk=$3 mode=$3\n")).to.equal(
      true,
    );
    expect(fn).to.include("\n)\n");
  });

  it("verify-diff takes the verification's two trees as step.sh takes any op: OP NARGS ARG...", () => {
    expect(verifyDiffArgs("/var/lib/lxc", "c1", { op: "verify", a: R, b: NEW })).to.deep.equal([
      "/var/lib/lxc",
      "c1",
      ...["verify-diff", "2", R, NEW],
    ]);
  });
});

describe("rootfs steps: stepBatches (a copy or catch-up shares its batch with its verification)", () => {
  it("a conversion runs as a batch up to each verification, then the rest", () => {
    expect(stepBatches([...COPY_FIRST, ...SWAP_AND_FINISH])).to.deep.equal([COPY_FIRST, SWAP_AND_FINISH]);
    expect(stepBatches([...LIVE_FIRST, ...SWAP_AND_FINISH])).to.deep.equal([LIVE_FIRST, SWAP_AND_FINISH]);
    expect(stepBatches(SWAP_AND_FINISH)).to.deep.equal([SWAP_AND_FINISH]);
    expect(stepBatches([])).to.deep.equal([]);
  });

  const refused: [string, Step[], string][] = [
    [
      "a copy with no verification after it",
      COPY_FIRST.slice(0, -1),
      `the copy of ${R} into ${NEW} is not followed by their verify in its batch`,
    ],
    [
      "a catch-up followed by the verification of other trees",
      [...LIVE_FIRST.slice(0, -1), { op: "verify", a: R, b: `${D}/other` }],
      `the catchup of ${R} into ${NEW} is followed by the verify of ${R} against ${D}/other`,
    ],
    [
      "a copy, then a catch-up before the verification",
      [{ op: "copy", from: R, to: NEW, total: 1 }, { op: "catchup", from: R, to: NEW }, COPY_FIRST[4]],
      `the copy of ${R} is followed by a catchup before its verify`,
    ],
  ];
  for (const [what, steps, problem] of refused) {
    it(`refuses ${what}: as a plan, and as one batch`, () => {
      expect(handOffProblem(steps)).to.equal(problem);
      expect(() => stepBatches([...steps, ...SWAP_AND_FINISH])).to.throw(
        Error,
        `internal error: a plan whose steps cannot run: ${problem}`,
      );
      expect(() => batchArgs("/var/lib/lxc", "c1", steps)).to.throw(
        Error,
        `internal error: a step batch that cannot run: ${problem}`,
      );
    });
  }

  it("a batch cut between a copy and its verification is refused, whichever side it is cut on", () => {
    for (let cut = 1; cut < COPY_FIRST.length; cut++) {
      const before = COPY_FIRST.slice(0, cut);
      const hasCopy = before.some((s) => s.op === "copy");
      expect(handOffProblem(before), `cut at ${cut}`).to.equal(
        hasCopy ? `the copy of ${R} into ${NEW} is not followed by their verify in its batch` : undefined,
      );
    }
    expect(handOffProblem(COPY_FIRST)).to.equal(undefined);
    expect(handOffProblem(LIVE_FIRST)).to.equal(undefined);
  });
});

describe("rootfs steps: the argv of a live conversion's first batch", () => {
  it("precopy carries source, copy and progress interval; catchup source and copy; journal phases by name", () => {
    expect(batchArgs("/var/lib/lxc", "c1", LIVE_FIRST)).to.deep.equal([
      "/var/lib/lxc",
      "c1",
      ...["journal", "3", "precopying", "convert", "1"],
      ...["subvol-create", "1", NEW],
      ...["precopy", "3", R, NEW, "10000"],
      ...["journal", "3", "catching-up", "convert", "1"],
      ...["stop", "0"],
      ...["catchup", "2", R, NEW],
      ...["verify", "2", R, NEW],
    ]);
  });
});

describe("rootfs steps: inspectionAfter (the inspection that ends a batch)", () => {
  const N = "9f3c2a7e1b0d4c56";
  const table: [string, string, string | undefined][] = [
    [
      "after the steps' markers",
      `@@step 1 journal-clear\n@@step 2 inspect\n@@inspect ${N}\nk=v\n@@x\0`,
      "k=v\n@@x\0",
    ],
    ["the whole output (nothing before it)", `@@inspect ${N}\nk=v\n`, "k=v\n"],
    ["missing: the batch ran no inspection", "@@step 1 journal-clear\n", undefined],
    [
      "a line with another nonce (a file name made before the batch) is not it",
      `x\n@@inspect 0000\nk=v\n`,
      undefined,
    ],
    ["not at the start of a line", `x@@inspect ${N}\nk=v\n`, undefined],
    [
      "the first line with the nonce counts: what the inspection printed may hold anything after it",
      `@@inspect ${N}\nconfig=@@inspect ${N}\n`,
      `config=@@inspect ${N}\n`,
    ],
  ];
  for (const [what, stdout, want] of table)
    it(what, () => {
      expect(inspectionAfter(stdout, N)).to.equal(want);
    });
});

describe("rootfs steps: hardlinkGroups", () => {
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

describe("rootfs steps: compareTreeReports", () => {
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

describe("rootfs steps: verifyReport (the verification at the end of a step batch)", () => {
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

describe("rootfs steps: the verification report cannot be forged or emptied by the trees", () => {
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

describe("rootfs steps: nextStepMarker (which steps of a batch started)", () => {
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
