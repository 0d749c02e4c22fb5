/**
 * LxcSnapshot's pure parts on real outputs of snapshot.sh (capture.sh snapshot): the schema, the
 * inspection parser, the refusals and their texts, adoption, drift, diff, and a create driven through a
 * fake remote that asserts every command sent.
 */
import { expect } from "chai";
import { cloneArgsSchema } from "../../../provider/clone/inputs";
import { parseCloneInspection } from "../../../provider/clone/inspection";
import { sourceProblem } from "../../../provider/clone/plan";
import { diffClone } from "../../../provider/clone/provider";
import { validate } from "../../../provider/core/inputs";
import { type SnapshotInputs, snapshotArgsSchema } from "../../../provider/snapshot/inputs";
import {
  parseCreationTime,
  parseSnapshotInspection,
  parseSubvolumeShow,
} from "../../../provider/snapshot/inspection";
import {
  containerProblem,
  existingSnapshot,
  frozenMs,
  snapshotDrift,
  snapshotPath,
  takeProblem,
} from "../../../provider/snapshot/plan";
import { createSnapshotWith, diffSnapshot, update } from "../../../provider/snapshot/provider";
import { FakeRemote, out, withLog } from "../fake-remote";
import { fixture, SNAP_LXC } from "../fixtures";

const CT_UUID = "e9590f63-43ab-7a4f-9c03-a0074eb53cf4";
/** A UUID no subvolume of the capture run has. */
const OTHER_UUID = "8a6e5f3b-0a59-6c4a-ae85-3c5e1f2b8d0d";

function inputs(extra: Record<string, unknown> = {}): SnapshotInputs {
  const res = validate(snapshotArgsSchema, {
    connection: { host: "fake" },
    container: "sn",
    name: "s1",
    lxcPath: SNAP_LXC,
    ...extra,
  });
  if (!res.ok) throw new Error(JSON.stringify(res.failures));
  return res.value as SnapshotInputs;
}

const insp = (name: string) => parseSnapshotInspection(fixture(name));

describe("LxcSnapshot: inputs", () => {
  it("fills in the defaults", () => {
    expect(inputs()).to.include({
      lxcPath: SNAP_LXC,
      ifRunning: "freeze",
      nestedSubvolumes: "fail",
    });
    expect(
      snapshotArgsSchema.parse({ connection: { host: "h" }, container: "c", name: "n" }).lxcPath,
    ).to.equal("/var/lib/lxc");
  });

  it("refuses names with path tricks, unknown keys and unknown policies, naming each property", () => {
    for (const name of ["../x", "a/b", ".plb-making-x", "-x", "x..y", "", "a b", "x".repeat(65)]) {
      const res = validate(snapshotArgsSchema, { connection: { host: "h" }, container: "c", name });
      expect(res.ok, name).to.equal(false);
      if (!res.ok) expect(res.failures.map((f) => f.property)).to.deep.equal(["name"]);
    }
    const res = validate(snapshotArgsSchema, {
      connection: { host: "h" },
      container: "c",
      name: "n",
      ifRunning: "restart",
      nestedSubvolumes: "keep",
      snapshot: "x",
    });
    expect(res.ok).to.equal(false);
    if (!res.ok)
      expect(res.failures).to.deep.equal([
        { property: "ifRunning", reason: 'must be one of "freeze", "live", "fail"' },
        { property: "nestedSubvolumes", reason: 'must be one of "fail", "include"' },
        { property: "snapshot", reason: "is not a known property; check the spelling" },
      ]);
  });
});

describe("LxcSnapshot: parsing snapshot.sh's output", () => {
  it("a container with no snapshot yet", () => {
    const i = insp("snapshot-inspect-none.bin");
    expect(i).to.deep.include({
      hasLxcFreeze: true,
      containerDir: "dir",
      fstype: "btrfs",
      state: "STOPPED",
      snaps: "missing",
      snapshot: undefined,
      nested: [],
      ts: "",
      thawed: false,
      droppedBuild: false,
    });
    expect(i.rootfs).to.deep.equal({ id: 256, uuid: CT_UUID, parentUuid: null, generation: 7 });
    expect(i.config).to.include(`lxc.rootfs.path = btrfs:${SNAP_LXC}/sn/rootfs\n`);
  });

  it("the end of a make of a running container: frozen ns, state, the read-only snapshot, nothing else read", () => {
    const i = insp("snapshot-make-frozen.bin");
    expect(i).to.deep.include({
      frozenNs: 22210730,
      stateAtSnapshot: "RUNNING",
      snapDir: "dir",
      snapRootfs: "subvol",
      snapConfig: "file",
      // make checked the container itself: its end reads only the snapshot it made (one process)
      ts: "",
      config: "",
      state: undefined,
      rootfs: undefined,
      snapNested: [],
    });
    expect(i.snapshot).to.deep.equal({
      uuid: "7ccef094-2810-8d4b-9635-a1e5611aff86",
      parentUuid: CT_UUID,
      generation: 10,
      id: 258,
      createdAt: "2026-12-07T19:14:07.000Z",
      readOnly: true,
    });
    expect(frozenMs(i.frozenNs)).to.equal(23);
  });

  it("nested subvolumes: the walk of the container (NUL-separated, a space kept) and the snapshot's list", () => {
    expect(insp("snapshot-inspect-nested.bin").nested).to.deep.equal(["srv/nest", "srv/nest/in ner"]);
    const made = insp("snapshot-make-nested.bin");
    expect(made.snapNested).to.deep.equal(["srv/nest", "srv/nest/in ner"]);
    expect(made.frozenNs).to.equal(undefined);
    expect(made.stateAtSnapshot).to.equal("STOPPED");
  });

  it("a snapshot made writable by hand, and `btrfs subvolume show` of it", () => {
    expect(insp("snapshot-inspect-writable.bin").snapshot?.readOnly).to.equal(false);
    expect(parseSubvolumeShow(fixture("snapshot-show-writable.txt")).readOnly).to.equal(false);
  });

  it("a symlinked snaps/ is reported as such, and nothing below it is looked at", () => {
    const i = insp("snapshot-inspect-symlink.bin");
    expect(i.snaps).to.equal("symlink");
    expect(i.snapDir).to.equal(undefined);
    expect(i.making).to.equal(undefined);
  });

  it("fails closed on output it does not know", () => {
    expect(() => parseSnapshotInspection("has_lxc_freeze=1\n")).to.throw(
      "unrecognised snapshot inspection output",
    );
    expect(() => parseSnapshotInspection("ct_dir=weird\n@@config\0")).to.throw(
      'unrecognised path kind "weird"',
    );
    expect(() => parseCreationTime("yesterday")).to.throw('unrecognised creation time "yesterday"');
    expect(parseCreationTime("2026-12-07 17:05:28 +0100")).to.equal("2026-12-07T16:05:28.000Z");
    expect(() => parseSubvolumeShow("\tUUID: \t\t7ccef094-2810-8d4b-9635-a1e5611aff86\n")).to.throw(
      "unrecognised `btrfs subvolume show` output",
    );
  });
});

describe("LxcSnapshot: plan", () => {
  const PATH = `${SNAP_LXC}/sn/snaps/s1`;

  it("the snapshot's path is where LXC keeps its own", () => {
    expect(snapshotPath(inputs())).to.equal(PATH);
  });

  it("refuses a container that is not converted, naming LxcSubvolumeRootfs and dependsOn", () => {
    const i = insp("snapshot-inspect-none.bin");
    expect(containerProblem(i, inputs())).to.equal(undefined);
    expect(containerProblem({ ...i, rootfs: undefined }, inputs())).to.equal(
      "sn's rootfs is not a btrfs subvolume with a btrfs: config, so it cannot be snapshotted; declare an LxcSubvolumeRootfs for sn and pass it in this snapshot's dependsOn",
    );
    expect(containerProblem({ ...i, containerDir: "missing" }, inputs())).to.equal(
      `container sn does not exist in ${SNAP_LXC}`,
    );
    expect(containerProblem({ ...i, containerDir: "symlink" }, inputs())).to.equal(
      `${SNAP_LXC}/sn is a symlink, not a container's directory; snapshots are made only in a real one`,
    );
    expect(containerProblem({ ...i, fstype: "ext2/ext3" }, inputs())).to.equal(
      "sn is on ext2/ext3, not btrfs",
    );
  });

  it("refuses a symlinked snaps/ or build name", () => {
    const i = insp("snapshot-inspect-symlink.bin");
    expect(containerProblem(i, inputs({ container: "hs", name: "x" }))).to.equal(
      `${SNAP_LXC}/hs/snaps is a symlink (left by a person or another tool?); snapshots are made only in a real directory there: remove it (what a symlink points at is left alone) and run again`,
    );
    const none = insp("snapshot-inspect-read.bin");
    expect(containerProblem({ ...none, making: "file" }, inputs())).to.equal(
      `${SNAP_LXC}/sn/snaps/.plb-making-s1 is a regular file, not a build of this provider; remove it and run again`,
    );
  });

  it("running: freeze or live go on, fail refuses; nested subvolumes: fail refuses, include goes on", () => {
    const running = { ...insp("snapshot-inspect-none.bin"), state: "RUNNING" };
    expect(takeProblem(running, inputs())).to.equal(undefined);
    expect(takeProblem(running, inputs({ ifRunning: "live" }))).to.equal(undefined);
    expect(takeProblem(running, inputs({ ifRunning: "fail" }))).to.equal(
      'sn is RUNNING; stop it, or set ifRunning: "freeze" (consistent) or "live" (crash-consistent)',
    );
    expect(takeProblem({ ...running, hasLxcFreeze: false }, inputs())).to.equal(
      'sn is RUNNING and lxc-freeze is not installed; install lxc, or set ifRunning: "live"',
    );
    const nested = insp("snapshot-inspect-nested.bin");
    expect(takeProblem(nested, inputs({ name: "s3" }))).to.equal(
      `sn's rootfs holds 2 nested subvolume(s) (srv/nest, srv/nest/in ner); a btrfs snapshot is not recursive and would hold an empty directory in their place: set nestedSubvolumes: "include" to snapshot each one read-only into its place`,
    );
    expect(takeProblem(nested, inputs({ name: "s3", nestedSubvolumes: "include" }))).to.equal(undefined);
  });

  it("adopts only a complete read-only snapshot of the container", () => {
    expect(existingSnapshot(insp("snapshot-inspect-none.bin"), inputs())).to.deep.equal({ kind: "none" });
    expect(existingSnapshot(insp("snapshot-inspect-read.bin"), inputs())).to.deep.equal({ kind: "adopt" });
    const notOurs = {
      kind: "refuse",
      why: `${PATH} already exists and is not a read-only snapshot of sn's rootfs with its config; choose another name or remove it`,
    };
    expect(existingSnapshot(insp("snapshot-inspect-writable.bin"), inputs())).to.deep.equal(notOurs);
    const read = insp("snapshot-inspect-read.bin");
    expect(existingSnapshot({ ...read, snapConfig: "missing" }, inputs())).to.deep.equal(notOurs);
    expect(existingSnapshot({ ...read, snapDir: "symlink" }, inputs())).to.deep.equal({
      kind: "refuse",
      why: `${PATH} is a symlink; choose another name or remove it`,
    });
  });

  it("drift: none, made writable, replaced by another subvolume, config gone", () => {
    const read = insp("snapshot-inspect-read.bin");
    const uuid = read.snapshot?.uuid ?? "";
    expect(snapshotDrift(read, uuid)).to.deep.equal([]);
    expect(snapshotDrift(insp("snapshot-inspect-writable.bin"), uuid)).to.deep.equal([
      "rootfs is no longer read-only",
    ]);
    expect(snapshotDrift(read, OTHER_UUID)).to.deep.equal([
      `rootfs is another subvolume (UUID ${uuid}, made ${OTHER_UUID})`,
    ]);
    expect(snapshotDrift({ ...read, snapConfig: "symlink" }, uuid)).to.deep.equal(["config is a symlink"]);
  });
});

describe("LxcSnapshot: diff and update", () => {
  const olds = { ...inputs(), drift: [] as string[] };

  it("ifRunning or nestedSubvolumes alone is an update; container, name, lxcPath or host replace", () => {
    expect(diffSnapshot(olds, inputs())).to.deep.equal({
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    expect(diffSnapshot(olds, inputs({ ifRunning: "live" }))).to.deep.equal({
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    expect(diffSnapshot(olds, inputs({ name: "s2" }))).to.deep.equal({
      changes: true,
      replaces: ["name"],
      deleteBeforeReplace: false,
    });
    expect(diffSnapshot(olds, inputs({ connection: { host: "other" } }))).to.deep.equal({
      changes: true,
      replaces: ["connection"],
      deleteBeforeReplace: false,
    });
    expect(diffSnapshot({ ...olds, drift: ["rootfs is no longer read-only"] }, inputs())).to.deep.equal({
      changes: true,
      replaces: ["name"],
      deleteBeforeReplace: true,
    });
  });

  it("update keeps what create recorded and takes the new inputs, without a host", async () => {
    const outs = { ...olds, uuid: OTHER_UUID, frozenMs: 12 } as never;
    const u = await update("", outs, inputs({ ifRunning: "live" }));
    expect(u.outs).to.deep.include({
      uuid: OTHER_UUID,
      frozenMs: 12,
      ifRunning: "live",
      target: "root@fake:22",
    });
  });
});

describe("LxcSnapshot: create through a fake remote", () => {
  const cmd = (r: FakeRemote) => r.commands.map((c) => c.join(" "));

  it("inspects, makes, and returns the outputs of the make's own inspection", async () => {
    const remote = new FakeRemote([
      out(fixture("snapshot-inspect-none.bin")),
      out(fixture("snapshot-make-stopped.bin")),
    ]);
    const { value, error } = await withLog(() => createSnapshotWith(remote, inputs()));
    expect(error).to.equal(undefined);
    expect(cmd(remote)).to.deep.equal([
      `plb-snapshot inspect ${SNAP_LXC} sn s1 all`,
      `plb-snapshot make ${SNAP_LXC} sn s1 freeze 0`,
    ]);
    const made = insp("snapshot-make-stopped.bin").snapshot;
    expect(value?.id).to.equal(`fake:22:${SNAP_LXC}/sn/snaps/s1`);
    expect(value?.outs).to.deep.include({
      path: `${SNAP_LXC}/sn/snaps/s1`,
      rootfsPath: `${SNAP_LXC}/sn/snaps/s1/rootfs`,
      uuid: made?.uuid,
      parentUuid: CT_UUID,
      generation: made?.generation,
      createdAt: made?.createdAt,
      readOnly: true,
      frozenMs: null,
      containerState: "STOPPED",
      nested: [],
      adopted: false,
      drift: [],
    });
  });

  it("adopts a complete snapshot at its path with one inspection", async () => {
    const remote = new FakeRemote([out(fixture("snapshot-inspect-read.bin"))]);
    const { value } = await withLog(() => createSnapshotWith(remote, inputs()));
    expect(remote.unused).to.equal(0);
    expect(value?.outs.adopted).to.equal(true);
  });

  it("refuses with the resource, the host and what to do, having sent only the inspection", async () => {
    const remote = new FakeRemote([out(fixture("snapshot-inspect-nested.bin"))]);
    const { error } = await withLog(() => createSnapshotWith(remote, inputs({ name: "s3" })));
    expect(error?.message).to.equal(
      `LxcSnapshot s3 (of sn) on root@fake:22: sn's rootfs holds 2 nested subvolume(s) (srv/nest, srv/nest/in ner); a btrfs snapshot is not recursive and would hold an empty directory in their place: set nestedSubvolumes: "include" to snapshot each one read-only into its place. Nothing was changed.`,
    );
    expect(remote.commands).to.have.length(1);
  });

  it("an unreadable report after the make says the snapshot was made, and that a next run starts from it", async () => {
    const remote = new FakeRemote([out(fixture("snapshot-inspect-none.bin")), out("garbage\n")]);
    const { error } = await withLog(() => createSnapshotWith(remote, inputs()));
    expect(error?.message).to.equal(
      "LxcSnapshot s1 (of sn) on root@fake:22: cannot read the host's inspection: unrecognised snapshot inspection output. This run had already changed the host (made the snapshot); run again: it starts from what it finds there.",
    );
  });

  it("a name taken between the inspection and the make: refused, nothing made", async () => {
    const remote = new FakeRemote([out(fixture("snapshot-inspect-none.bin")), { code: 4, stderr: "exists" }]);
    const { error } = await withLog(() => createSnapshotWith(remote, inputs()));
    expect(error?.message).to.equal(
      `LxcSnapshot s1 (of sn) on root@fake:22: ${SNAP_LXC}/sn/snaps/s1 appeared while the snapshot was being made; choose another name or remove it. Nothing was changed.`,
    );
  });
});

describe("LxcSnapshotClone of a snapshot: the source side is the snapshot", () => {
  const read = parseCloneInspection(fixture("clone-inspect.bin"));

  it("clone.sh is given SOURCE/snaps/SNAPSHOT, and a snapshot input change replaces the clone", () => {
    const a = cloneArgsSchema.parse({
      connection: { host: "h" },
      source: "web1",
      snapshot: "pre",
      name: "w",
    });
    expect(diffClone({ ...a, snapshot: undefined }, a).replaces).to.deep.equal(["snapshot"]);
    expect(diffClone({ ...a, snapshot: "other" }, a).replaces).to.deep.equal(["snapshot"]);
  });

  it("a missing snapshot, or one that is not a btrfs snapshot with its config, is refused", () => {
    expect(
      sourceProblem({ ...read, source: { dir: "missing", isSubvolume: false } }, "/l", "web1", "pre"),
    ).to.equal(
      "source web1 has no snapshot pre (/l/web1/snaps/pre does not exist); declare the LxcSnapshot and pass it in this clone's dependsOn",
    );
    expect(sourceProblem(read, "/l", "web1", "pre")).to.equal(
      "/l/web1/snaps/pre is not a snapshot with a btrfs subvolume rootfs and a btrfs: config pointing at it, so it cannot be snapshot-cloned",
    );
    const cfg = "lxc.rootfs.path = btrfs:/l/web1/snaps/pre/rootfs\n";
    expect(sourceProblem({ ...read, sourceConfig: cfg }, "/l", "web1", "pre")).to.equal(undefined);
    expect(sourceProblem({ ...read, sourceConfig: cfg, hasLxcCopy: false }, "/l", "web1", "pre")).to.equal(
      "cloning a snapshot needs lxc-copy (LXC >= 2.0); install lxc",
    );
  });
});
