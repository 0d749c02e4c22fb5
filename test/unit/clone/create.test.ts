/**
 * The branches of a clone's create (clone/provider.ts createCloneWith) driven through a FakeRemote that
 * replays the real outputs of clone.sh captured by `sh test/fixtures/capture.sh rounds` (source cs, a
 * stopped subvolume container; clone cc made with lxc-copy and finished; cvr, a directory container).
 */
import { expect } from "chai";
import { type CloneInputs, cloneArgsSchema } from "../../../provider/clone/inputs";
import { type CloneInspection, parseCloneInspection } from "../../../provider/clone/inspection";
import { type CloneOutputs, createCloneWith } from "../../../provider/clone/provider";
import { validate } from "../../../provider/core/inputs";
import { FakeRemote, out, withLog } from "../fake-remote";
import { CLONE_ROUNDS_LXC, fixture } from "../fixtures";

const L = CLONE_ROUNDS_LXC;

function inputs(name = "cc", raw: Record<string, unknown> = {}): CloneInputs {
  const res = validate(cloneArgsSchema, {
    connection: { host: "fake" },
    lxcPath: L,
    source: "cs",
    name,
    ...raw,
  });
  if (!res.ok) throw new Error(JSON.stringify(res.failures));
  return res.value;
}

const clone = (op: string, name = "cc", ...args: string[]) => ["plb-clone", op, L, "cs", name, ...args];
const MAKE = clone("make", "cc", "stopped", "lxc-copy", "0");
/** The edits the provider computes from make's inspection: config (1188 bytes), hostname (3), hosts kept. */
const FINISH = clone("finish", "cc", "1188", "3", "-", "-");

/** The config and hostname finish writes: lxc-copy's config with lxc.uts.name set, then "cc\n". */
function finishStdin(): string {
  const make = fixture("clone-rounds-make.bin");
  const at = make.indexOf("@@clone_config\0") + "@@clone_config\0".length;
  const config = make.slice(at, make.indexOf("\0", at));
  expect(config).to.include('lxc.uts.name = "cs"\n');
  return `${config.replace('lxc.uts.name = "cs"\n', "lxc.uts.name = cc\n")}cc\n`;
}

/** What create returns for cc after the captured make and finish. */
function made(over: Partial<CloneOutputs> = {}): { id: string; outs: CloneOutputs } {
  return {
    id: `fake:22:${L}/cc`,
    outs: {
      ...inputs(),
      target: "root@fake:22",
      rootfsPath: `${L}/cc/rootfs`,
      subvolumeId: 257,
      subvolumeUuid: "10fb1cd8-8243-7447-b413-c51cf7d6b1b8",
      parentUuid: "00c709b5-e309-fb4e-b269-4d4f2d956956",
      sourceGeneration: 7,
      state: "STOPPED",
      hwaddrs: [],
      actualHostname: "cc",
      adopted: false,
      drift: [],
      sentUuid: null,
      transferredBytes: null,
      sentParentUuid: null,
      ...over,
    },
  };
}

const LOG = (name = "cc") => `[lxc-btrfs] clone ${name} on root@fake:22:`;

describe("clone orchestration: createCloneWith (FakeRemote, captured outputs)", () => {
  it("a fresh clone: inspect, make (snapshot), finish (config and hostname), in three round trips", async () => {
    const remote = new FakeRemote([
      out(fixture("clone-rounds-inspect-none.bin")),
      out(fixture("clone-rounds-make.bin")),
      out(fixture("clone-rounds-finish.bin")),
    ]);
    const { log, value, error } = await withLog(() => createCloneWith(remote, inputs()));
    expect(error).to.equal(undefined);
    expect(remote.commands).to.deep.equal([clone("inspect"), MAKE, FINISH]);
    expect(remote.calls.map((c) => c.stdin)).to.deep.equal([undefined, undefined, finishStdin()]);
    expect(value).to.deep.equal(made());
    expect(log).to.deep.equal([`${LOG()} snapshotting cs with lxc-copy -s (source stopped)`]);
  });

  it("the inspections that end make and finish carry what the provider reads next, and no more", () => {
    // Each against the full inspection of the same state: inspect-making right after make, inspect-done
    // right after finish.
    const make = parseCloneInspection(fixture("clone-rounds-make.bin"));
    const afterMake = parseCloneInspection(fixture("clone-rounds-inspect-making.bin"));
    const fin = parseCloneInspection(fixture("clone-rounds-finish.bin"));
    const afterFin = parseCloneInspection(fixture("clone-rounds-inspect-done.bin"));
    for (const [x, full] of [
      [make, afterMake],
      [fin, afterFin],
    ]) {
      // the clone side and the source's subvolume (outputs); not the filesystem types, the source's state
      // or the nested subvolumes (a walk of the source tree)
      expect(x.clone).to.deep.equal({ ...full.clone, fstype: undefined });
      expect(x.source).to.deep.equal({ ...full.source, fstype: undefined, state: undefined });
      expect(x.making).to.equal(full.making);
      expect(x.nested).to.deep.equal([]);
      expect(x.cloneConfig).to.equal(full.cloneConfig);
    }
    // after make: the MACs, the source's config and the identity files too, for finish's edits
    const edits = (i: CloneInspection) => [i.hwaddrs, i.sourceConfig, i.cloneHostname, i.cloneHosts];
    expect(edits(make)).to.deep.equal(edits(afterMake));
    expect(make.sourceConfig).to.include("lxc.rootfs.path = btrfs:");
    // after finish: none of them
    expect(edits(fin)).to.deep.equal([[], "", "", ""]);
  });

  it("adopts an existing snapshot of the source that is already as declared: one inspection", async () => {
    const remote = new FakeRemote([out(fixture("clone-rounds-inspect-done.bin"))]);
    const { log, value } = await withLog(() => createCloneWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([clone("inspect")]);
    expect(value).to.deep.equal(made({ adopted: true }));
    expect(log).to.deep.equal([`${LOG()} adopting the existing snapshot clone`]);
  });

  it("refuses a name taken by a container that is not a snapshot of the source; nothing runs", async () => {
    const remote = new FakeRemote([out(fixture("clone-rounds-inspect-taken.bin"))]);
    const { error } = await withLog(() => createCloneWith(remote, inputs("cvr")));
    expect(remote.commands).to.deep.equal([clone("inspect", "cvr")]);
    expect(error?.message).to.equal(
      "LxcSnapshotClone cvr (from cs) on root@fake:22: a container named cvr already exists and is not a snapshot of cs; choose another name or remove it. Nothing was changed.",
    );
  });

  it("resumes a create cut off after make (its marker is there): destroy, inspect, make, finish", async () => {
    const remote = new FakeRemote([
      out(fixture("clone-rounds-inspect-making.bin")),
      out(""), // destroy prints nothing
      out(fixture("clone-rounds-inspect-none.bin")),
      out(fixture("clone-rounds-make.bin")),
      out(fixture("clone-rounds-finish.bin")),
    ]);
    const { log, value } = await withLog(() => createCloneWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([
      clone("inspect"),
      clone("destroy"),
      clone("inspect"),
      MAKE,
      FINISH,
    ]);
    expect(value).to.deep.equal(made());
    expect(log).to.deep.equal([
      `${LOG()} removing an unfinished clone left by an interrupted create`,
      `${LOG()} snapshotting cs with lxc-copy -s (source stopped)`,
    ]);
  });

  it("a finish that fails removes the new clone and reports the failure", async () => {
    const remote = new FakeRemote([
      out(fixture("clone-rounds-inspect-none.bin")),
      out(fixture("clone-rounds-make.bin")),
      { code: 3, stderr: `${L}/cc/rootfs/etc is a symlink` },
      out(""),
    ]);
    const { log, error } = await withLog(() => createCloneWith(remote, inputs()));
    expect(remote.commands).to.deep.equal([clone("inspect"), MAKE, FINISH, clone("destroy")]);
    expect(error?.message).to.equal(
      `LxcSnapshotClone cc (from cs): on root@fake:22: \`${FINISH.join(" ")}\` exited with code 3: ${L}/cc/rootfs/etc is a symlink`,
    );
    expect(log[log.length - 1]).to.equal(`${LOG()} finishing the clone failed; removing it`);
  });

  describe("source running", () => {
    const running = () => out(fixture("clone-rounds-inspect-srcrunning.bin"));

    it('ifSourceRunning "fail" (the default): refused before anything is made', async () => {
      const remote = new FakeRemote([running()]);
      const { error } = await withLog(() => createCloneWith(remote, inputs("cc2")));
      expect(remote.commands).to.deep.equal([clone("inspect", "cc2")]);
      expect(error?.message).to.equal(
        'LxcSnapshotClone cc2 (from cs) on root@fake:22: source cs is RUNNING; stop it, or set ifSourceRunning: "freeze" or "restart". Nothing was changed.',
      );
    });

    it('"freeze": make runs in freeze mode; a name taken meanwhile (exit 4) is refused, nothing removed', async () => {
      const remote = new FakeRemote([running(), { code: 4, stderr: `${L}/cc2 already exists` }]);
      const { log, error } = await withLog(() =>
        createCloneWith(remote, inputs("cc2", { ifSourceRunning: "freeze" })),
      );
      expect(remote.commands).to.deep.equal([
        clone("inspect", "cc2"),
        clone("make", "cc2", "freeze", "lxc-copy", "0"),
      ]);
      expect(error?.message).to.equal(
        "LxcSnapshotClone cc2 (from cs) on root@fake:22: a container named cc2 appeared while the clone was being made; choose another name or remove it. Nothing was changed.",
      );
      expect(log).to.deep.equal([`${LOG("cc2")} snapshotting cs with lxc-copy -s (source freeze)`]);
    });

    it('"restart": make runs in restart mode; a failed make removes what it made', async () => {
      const remote = new FakeRemote([running(), { code: 1, stderr: "lxc-copy: error" }, out("")]);
      const { log, error } = await withLog(() =>
        createCloneWith(remote, inputs("cc2", { ifSourceRunning: "restart" })),
      );
      const make = clone("make", "cc2", "restart", "lxc-copy", "0");
      expect(remote.commands).to.deep.equal([clone("inspect", "cc2"), make, clone("destroy", "cc2")]);
      expect(error?.message).to.equal(
        `LxcSnapshotClone cc2 (from cs): on root@fake:22: \`${make.join(" ")}\` exited with code 1: lxc-copy: error`,
      );
      expect(log).to.deep.equal([
        `${LOG("cc2")} snapshotting cs with lxc-copy -s (source restart)`,
        `${LOG("cc2")} clone failed; removing what was made`,
      ]);
    });
  });
});
