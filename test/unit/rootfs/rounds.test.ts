/**
 * The conversion's orchestration (rootfs/provider.ts: inspect -> plan -> apply steps -> inspect again until
 * done, and the rollback of a failed batch) driven through a FakeRemote that replays the real outputs of
 * one conversion captured by `sh test/fixtures/capture.sh rounds` (container cv, stopped; cvr, running).
 */
import { expect } from "chai";
import { describeArgv, UserError } from "../../../provider/core/errors";
import { validate } from "../../../provider/core/inputs";
import { type RootfsInputs, rootfsArgsSchema } from "../../../provider/rootfs/inputs";
import { convergeWith, type RootfsOutputs } from "../../../provider/rootfs/provider";
import {
  batchOps,
  FakeRemote,
  NONCE,
  out,
  type Reply,
  stepMarkers,
  thenInspection,
  withLog,
  withNonce,
} from "../fake-remote";
import { fixture, ROUNDS_LXC } from "../fixtures";

const L = ROUNDS_LXC;
const C = `${L}/cv`;

function inputs(container = "cv", raw: Record<string, unknown> = {}): RootfsInputs {
  const res = validate(rootfsArgsSchema, { connection: { host: "fake" }, container, lxcPath: L, ...raw });
  if (!res.ok) throw new Error(JSON.stringify(res.failures));
  return res.value;
}

/** sha256sum of cv's config file at capture time (write-config refuses to write if it changed since the inspection). */
const CONFIG_SHA = "77ba58ad9347487b28ba7d2252d284b3f16d1dcd286dd51e67355dac85cc5b7d";

const INSPECT = (name = "cv") => ["plb-inspect-rootfs", L, name, "auto"];
const BATCH_COPY = [
  "plb-step",
  L,
  "cv",
  ...["journal", "3", "copying", "convert", "0"],
  ...["subvol-create", "1", `${C}/rootfs.plb-new`],
  ...["copy", "3", `${C}/rootfs`, `${C}/rootfs.plb-new`, "1000"],
  ...["verify", "2", `${C}/rootfs`, `${C}/rootfs.plb-new`],
];
const BATCH_SWAP = [
  "plb-step",
  L,
  "cv",
  ...["journal", "3", "swapping", "convert", "0"],
  ...["swap", "3", `${C}/rootfs`, `${C}/rootfs.plb-new`, `${C}/rootfs.pre-btrfs`],
  ...["journal", "3", "swapped", "convert", "0"],
  ...["write-config", "2", CONFIG_SHA, "config.pre-btrfs"],
  ...["move-nested", "2", `${C}/rootfs.pre-btrfs`, `${C}/rootfs`],
  ...["remove", "1", `${C}/rootfs.pre-btrfs`],
  ...["journal-clear", "0"],
  // The next round's inspection, in the same round trip.
  ...["inspect", "1", NONCE],
];
const ROLLBACK = [
  "plb-step",
  L,
  "cv",
  ...["unswapped", "2", `${C}/rootfs`, `${C}/rootfs.pre-btrfs`],
  ...["discard", "1", `${C}/rootfs.plb-new`],
  ...["journal-clear", "0"],
];
const VERIFY_DIFF = ["plb-step", L, "cv", "verify-diff", "2", `${C}/rootfs`, `${C}/rootfs.plb-new`];

const dir = () => out(fixture("rounds-inspect-dir.bin"));
const subvol = () => out(fixture("rounds-inspect-subvol.bin"));
/** The swap batch's captured output, then the converted container's captured inspection. */
const swapThenSubvol = () =>
  thenInspection(out(fixture("rounds-step-swap.bin")), fixture("rounds-inspect-subvol.bin"));

/** The config the swap batch writes: the captured one with its rootfs line pointing at btrfs:. */
function convertedConfig(): string {
  const insp = fixture("rounds-inspect-dir.bin");
  const config = insp.slice(insp.indexOf("@@config\0") + 9);
  return config.replace(`lxc.rootfs.path = dir:${C}/rootfs`, `lxc.rootfs.path = btrfs:${C}/rootfs`);
}

/**
 * The batch up to the verification when the copy differs from its original: step.sh's real output of the
 * first three steps, then of the verification run alone after a mode was changed in the copy, its marker
 * renumbered as the fourth step of the batch (a plain join of the two captured outputs).
 */
function differsBatch(): string {
  const verify = fixture("rounds-step-differs-verify.bin");
  expect(verify.startsWith("@@step 1 verify\n")).to.equal(true);
  return fixture("rounds-step-differs-copy.bin") + verify.replace("@@step 1 verify\n", "@@step 4 verify\n");
}

function failed(stdout: string, stderr: string, code = 3): Reply {
  return { code, stdout, stderr };
}

const LOG = "[lxc-btrfs] cv on root@fake:22:";
const VERIFIED = `${LOG} verified 302 entries: types, modes, owners, sizes, mtimes, links, devices, hardlinks, inode flags, xattrs (btrfs compression property included)`;

/** What convergeWith returns for cv after the captured conversion. */
function converted(over: Partial<RootfsOutputs> = {}): RootfsOutputs {
  return {
    ...inputs(),
    target: "root@fake:22",
    rootfsPath: `${C}/rootfs`,
    rootfsIsSubvolume: true,
    subvolumeId: 257,
    subvolumeUuid: "0620d0b5-c28b-ad40-800f-50644061917f",
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

/** The message of a failed step batch, as the provider reports it (resource named, then the command). */
function batchFailure(argv: string[], stderr: string): string {
  return `LxcSubvolumeRootfs cv: on root@fake:22: \`${argv.join(" ")}\` exited with code 3: ${stderr}`;
}

describe("rootfs orchestration: conversion rounds (FakeRemote, captured outputs)", () => {
  it("converts in two rounds, three round trips: inspect, copy+verify, swap+config+cleanup+inspect (done)", async () => {
    const remote = new FakeRemote([dir(), out(fixture("rounds-step-copy.bin")), swapThenSubvol()]);
    const { log, value, error } = await withLog(() => convergeWith(remote, inputs()));
    expect(error).to.equal(undefined);
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, BATCH_SWAP]);
    expect(remote.calls.map((c) => c.stdin)).to.deep.equal([undefined, undefined, convertedConfig()]);
    expect(remote.unused).to.equal(0);
    // entries (files) and bytes come from the first round's walk: the later inspection does not walk.
    expect(value).to.deep.equal(converted());
    expect(log).to.deep.equal([
      `${LOG} create: convert rootfs to a subvolume`,
      `${LOG} copying 301 entries (reflink: metadata only, no data blocks)`,
      VERIFIED,
    ]);
  });

  for (const [what, reply] of [
    ["did not run (no line of its own)", out(fixture("rounds-step-swap.bin"))],
    ["printed what cannot be read", thenInspection(out(fixture("rounds-step-swap.bin")), "garbage")],
  ] as const)
    it(`the swap batch's inspection ${what}: the next round inspects on its own`, async () => {
      const remote = new FakeRemote([dir(), out(fixture("rounds-step-copy.bin")), reply, subvol()]);
      const { value, error } = await withLog(() => convergeWith(remote, inputs()));
      expect(error).to.equal(undefined);
      expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, BATCH_SWAP, INSPECT()]);
      expect(remote.unused).to.equal(0);
      expect(value).to.deep.equal(converted());
    });

  it("adopts an already converted container: one inspection, no step runs", async () => {
    const remote = new FakeRemote([subvol()]);
    const { log, value } = await withLog(() => convergeWith(remote, inputs(), "update"));
    expect(remote.commands).to.deep.equal([INSPECT()]);
    expect(value).to.deep.equal(converted({ adopted: true, entries: null, files: null, bytes: null }));
    expect(log).to.deep.equal([]);
  });

  it("gives up after 4 rounds that each change something and never settle", async () => {
    const round = () => [dir(), out(fixture("rounds-step-copy.bin")), out(fixture("rounds-step-swap.bin"))];
    const remote = new FakeRemote([...round(), ...round(), ...round(), ...round()]);
    const { error } = await withLog(() => convergeWith(remote, inputs()));
    expect(error?.message).to.equal(
      "LxcSubvolumeRootfs cv on root@fake:22: the host did not settle after 4 rounds; run again",
    );
    const one = [INSPECT(), BATCH_COPY, BATCH_SWAP];
    expect(remote.commands).to.deep.equal([...one, ...one, ...one, ...one]);
  });
});

describe("rootfs orchestration: rollback of a failed batch (FakeRemote)", () => {
  it("a step failing before the swap: discard the partial subvolume, clear the journal, report the failure", async () => {
    const stderr = `cp: cannot create regular file '${C}/rootfs.plb-new/./bin/busybox': No space left on device`;
    const remote = new FakeRemote([
      dir(),
      // step.sh's real markers of the first three steps, then the copy's failure (exit 3, as fail() exits)
      failed(fixture("rounds-step-differs-copy.bin"), stderr),
      out(fixture("rounds-step-rollback.bin")),
    ]);
    const { log, error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, ROLLBACK]);
    expect(error?.message).to.equal(batchFailure(BATCH_COPY, stderr));
    expect(log).to.deep.equal([
      `${LOG} create: convert rootfs to a subvolume`,
      `${LOG} copying 301 entries (reflink: metadata only, no data blocks)`,
    ]);
  });

  it("a running container: the rollback starts it again before clearing the journal", async () => {
    const R = `${L}/cvr`;
    const batch = [
      "plb-step",
      L,
      "cvr",
      ...["journal", "3", "copying", "convert", "1"],
      ...["stop", "0"],
      ...["subvol-create", "1", `${R}/rootfs.plb-new`],
      ...["copy", "3", `${R}/rootfs`, `${R}/rootfs.plb-new`, "1000"],
      ...["verify", "2", `${R}/rootfs`, `${R}/rootfs.plb-new`],
    ];
    const rollback = [
      ...["plb-step", L, "cvr"],
      ...["unswapped", "2", `${R}/rootfs`, `${R}/rootfs.pre-btrfs`],
      ...["discard", "1", `${R}/rootfs.plb-new`, "start", "0", "journal-clear", "0"],
    ];
    const remote = new FakeRemote([
      out(fixture("rounds-inspect-running.bin")),
      // markers as step.sh prints them before each step; the copy fails
      failed("@@step 1 journal\n@@step 2 stop\n@@step 3 subvol-create\n@@step 4 copy\n", "cp: boom"),
      out("@@step 1 unswapped\n@@step 2 discard\n@@step 3 start\n@@step 4 journal-clear\n"),
    ]);
    const { error } = await withLog(() => convergeWith(remote, inputs("cvr", { ifRunning: "restart" })));
    expect(remote.commands).to.deep.equal([INSPECT("cvr"), batch, rollback]);
    expect(error?.message).to.equal(
      `LxcSubvolumeRootfs cvr: on root@fake:22: \`${batch.join(" ")}\` exited with code 3: cp: boom`,
    );
  });

  it("a running container with ifRunning fail: refused before any step", async () => {
    const remote = new FakeRemote([out(fixture("rounds-inspect-running.bin"))]);
    const { error } = await withLog(() => convergeWith(remote, inputs("cvr")));
    expect(remote.commands).to.deep.equal([INSPECT("cvr")]);
    expect(error?.message).to.equal(
      'LxcSubvolumeRootfs cvr on root@fake:22: container cvr is RUNNING; stop it first or set ifRunning: "restart" or "live". Nothing was changed.',
    );
  });

  it("no rollback once the swap started: the journal lets the next run finish", async () => {
    const stderr = `${C}/config changed while the conversion ran; run again`;
    const swap = fixture("rounds-step-swap.bin");
    const upToConfig = swap.slice(0, swap.indexOf("@@step 5 "));
    expect(upToConfig).to.equal("@@step 1 journal\n@@step 2 swap\n@@step 3 journal\n@@step 4 write-config\n");
    const remote = new FakeRemote([dir(), out(fixture("rounds-step-copy.bin")), failed(upToConfig, stderr)]);
    const { error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, BATCH_SWAP]);
    expect(remote.unused).to.equal(0);
    expect(withNonce(error?.message)).to.equal(batchFailure(BATCH_SWAP, stderr));
  });

  it("a batch failing before its swap marker still rolls back (the swap had not started)", async () => {
    const remote = new FakeRemote([
      dir(),
      out(fixture("rounds-step-copy.bin")),
      failed("@@step 1 journal\n", "mv: cannot move"),
      out(fixture("rounds-step-rollback.bin")),
    ]);
    const { error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, BATCH_SWAP, ROLLBACK]);
    expect(withNonce(error?.message)).to.equal(batchFailure(BATCH_SWAP, "mv: cannot move"));
  });

  it("the swap step itself failing rolls back too (the host's guard refuses the rollback once it renamed)", async () => {
    const stderr =
      "cv is running (started since it was stopped for the conversion); not swapping its rootfs: run again";
    const remote = new FakeRemote([
      dir(),
      out(fixture("rounds-step-copy.bin")),
      failed("@@step 1 journal\n@@step 2 swap\n", stderr),
      out(fixture("rounds-step-rollback.bin")),
    ]);
    const { error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, BATCH_SWAP, ROLLBACK]);
    expect(remote.unused).to.equal(0);
    expect(withNonce(error?.message)).to.equal(batchFailure(BATCH_SWAP, stderr));
  });

  const DIFFERS =
    "LxcSubvolumeRootfs cv on root@fake:22: the copy does not match the original (metadata differs); " +
    "the copy was discarded and the original left as it was.\n" +
    fixture("rounds-verify-diff.bin").replace("@@step 1 verify-diff\n", "").trim();

  it("a verification report that differs: the diff is fetched, the copy discarded, the error shows the diff", async () => {
    const remote = new FakeRemote([
      dir(),
      out(differsBatch()),
      out(fixture("rounds-verify-diff.bin")),
      out(fixture("rounds-step-rollback.bin")),
    ]);
    const { log, error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, VERIFY_DIFF, ROLLBACK]);
    expect(remote.unused).to.equal(0);
    expect(error?.message).to.equal(DIFFERS);
    expect(error?.message).to.include("< ./etc/passwd f 0644 0 0 30");
    expect(log).to.not.include(VERIFIED);
  });

  it('a file named "x\\n@@step 9 swap" in the verify report does not suppress the rollback', async () => {
    // A hardlinked file whose name carries step markers, listed in the report after the last step's marker
    // (inserted into the real report's hardlink list).
    const evil = differsBatch().replace(
      "@@a\0",
      "@@a\x00123 ./x\n@@step 5 journal\n@@step 6 swap\n@@step 9 swap\n\x00123 ./y\0",
    );
    expect(evil).to.include("\n@@step 9 swap\n");
    const remote = new FakeRemote([
      dir(),
      out(evil),
      out(fixture("rounds-verify-diff.bin")),
      out(fixture("rounds-step-rollback.bin")),
    ]);
    const { error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, VERIFY_DIFF, ROLLBACK]);
    expect(error?.message).to.equal(DIFFERS);
  });

  it("a rollback that fails itself is logged; the original failure is what the user sees", async () => {
    const remote = new FakeRemote([
      dir(),
      failed(fixture("rounds-step-differs-copy.bin"), "cp: boom"),
      failed("@@step 1 discard\n", "btrfs: busy"),
    ]);
    const { log, error } = await withLog(() => convergeWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([INSPECT(), BATCH_COPY, ROLLBACK]);
    expect(error?.message).to.equal(batchFailure(BATCH_COPY, "cp: boom"));
    expect(log[log.length - 1]).to.equal(
      `${LOG} rollback incomplete (on root@fake:22: \`${ROLLBACK.join(" ")}\` exited with code 3: btrfs: busy); the journal stays and the next run finishes it`,
    );
  });
});

describe("rootfs orchestration: a malformed batch reply (FakeRemote)", () => {
  it("fails each resource in the batch under its own name, with the host and the batch command", async () => {
    // Two conversions at once: their inspections go out as one inspect-many.sh, whose reply is unreadable.
    const remote = new FakeRemote([out("@@plb-item 0 0 3 0\nabc@@plb-item 7 0 0 0\n")]);
    const { value: settled } = await withLog(() =>
      Promise.allSettled([convergeWith(remote, inputs("cv")), convergeWith(remote, inputs("cvr"))]),
    );
    const errors = (settled ?? []).map((r) => (r.status === "rejected" ? (r.reason as Error) : undefined));
    expect(remote.commands.map((c) => c.filter((a) => !a.includes("\n")))).to.deep.equal([
      ["plb-inspect-many", L, "auto", "cv", "cvr"],
    ]);
    const cmd = `on root@fake:22: \`${describeArgv(remote.calls[0].argv)}\` exited with code 0\nhint: its output could not be read: unrecognised batch output at item 1`;
    expect(describeArgv(remote.calls[0].argv)).to.match(/^plb-inspect-many \S.*\.\.\. \/\S+ auto cv cvr$/);
    expect(errors.map((e) => e instanceof UserError && e.stack === e.message)).to.deep.equal([true, true]);
    expect(errors.map((e) => e?.message)).to.deep.equal([
      `LxcSubvolumeRootfs cv: ${cmd}`,
      `LxcSubvolumeRootfs cvr: ${cmd}`,
    ]);
  });
});

describe("rootfs orchestration: the container's downtime in the log (FakeRemote)", () => {
  /** Log lines with the measured downtime replaced by N (the pure Downtime test pins the number). */
  const logOf = (log: string[]) => log.map((l) => l.replace(/after \d+\.\ds$/, "after Ns"));
  const CVR = "[lxc-btrfs] cvr on root@fake:22:";
  const VERIFIED_CVR = `${CVR} verified 308 entries: types, modes, owners, sizes, mtimes, links, devices, hardlinks, inode flags, xattrs (btrfs compression property included)`;
  const DOWNTIME = [
    `${CVR} starting the container`,
    `${CVR} the container is running: downtime ends after Ns`,
  ];

  for (const ifRunning of ["restart", "live"] as const) {
    it(`ifRunning "${ifRunning}": the stop says downtime starts, the start done says when it ended`, async () => {
      const remote = new FakeRemote([
        out(fixture("rounds-inspect-running.bin")),
        stepMarkers(fixture("verify-ok.bin")),
        // cv's converted inspection, as cvr's: what the next round finds, at the end of the last batch.
        thenInspection(stepMarkers(), fixture("rounds-inspect-subvol.bin").split(`${C}/`).join(`${L}/cvr/`)),
      ]);
      const { log, error } = await withLog(() => convergeWith(remote, inputs("cvr", { ifRunning })));
      expect(error?.message).to.equal(undefined);
      const ops = remote.commands.map(batchOps);
      const FINISH = [
        "journal",
        "swap",
        "journal",
        "write-config",
        "move-nested",
        "start",
        "remove",
        "journal-clear",
        "inspect",
      ];
      expect(ops.slice(1, 3)).to.deep.equal(
        ifRunning === "restart"
          ? [["journal", "stop", "subvol-create", "copy", "verify"], FINISH]
          : [["journal", "subvol-create", "precopy", "journal", "stop", "catchup", "verify"], FINISH],
      );
      expect(logOf(log)).to.deep.equal([
        `${CVR} create: convert rootfs to a subvolume`,
        ...(ifRunning === "restart"
          ? [
              `${CVR} stopping the container: downtime starts`,
              `${CVR} copying 304 entries (reflink: metadata only, no data blocks)`,
            ]
          : [
              `${CVR} copying 304 entries (reflink: metadata only, no data blocks)`,
              `${CVR} stopping the container: downtime starts`,
            ]),
        VERIFIED_CVR,
        ...DOWNTIME,
      ]);
    });
  }

  it("a failed batch after the stop: the rollback's start ends the downtime", async () => {
    const remote = new FakeRemote([
      out(fixture("rounds-inspect-running.bin")),
      failed("@@step 1 journal\n@@step 2 stop\n@@step 3 subvol-create\n@@step 4 copy\n", "cp: boom"),
      stepMarkers(),
    ]);
    const { log, error } = await withLog(() => convergeWith(remote, inputs("cvr", { ifRunning: "restart" })));
    expect(error?.message).to.match(/exited with code 3: cp: boom$/);
    expect(logOf(log)).to.deep.equal([
      `${CVR} create: convert rootfs to a subvolume`,
      `${CVR} stopping the container: downtime starts`,
      `${CVR} copying 304 entries (reflink: metadata only, no data blocks)`,
      ...DOWNTIME,
    ]);
  });
});
