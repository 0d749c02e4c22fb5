/**
 * The message of every failure says truly what the run had changed on the host before it: "Nothing was
 * changed." only when nothing was. Driven through convergeWith / createCloneWith / updateCloneWith with a
 * remote that answers each command from a script (real captured outputs, or unreadable ones), no SSH.
 */
import { expect } from "chai";
import { type CloneInputs, cloneArgsSchema } from "../../provider/clone/inputs";
import { createCloneWith, updateCloneWith } from "../../provider/clone/provider";
import { validate } from "../../provider/core/inputs";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import { convergeWith } from "../../provider/rootfs/provider";
import { FakeRemote, out, withLog } from "./fake-remote";
import { CAP_LXC, fixture } from "./fixtures";

const TARGET = "root@fake:22";

/** A command as the scripts below name it: the remote script, and the op for clone.sh. */
function commandName(command: readonly string[]): string {
  const name = command[0].replace(/^plb-/, "");
  return name === "clone" ? `clone ${command[1]}` : name;
}

type Reply = [command: string, stdout: string, code?: number];

/** A FakeRemote answering with `script`'s replies in order (expectRan checks the commands). */
function scriptedRemote(script: Reply[]): FakeRemote {
  return new FakeRemote(
    script.map(([, stdout, code]) => (code ? { code, stdout, stderr: "scripted failure" } : out(stdout))),
  );
}

/** The remote was sent exactly the script's commands, in order, and used every reply. */
function expectRan(remote: FakeRemote, script: Reply[]): void {
  expect(remote.commands.map(commandName)).to.deep.equal(script.map(([command]) => command));
  expect(remote.unused).to.equal(0);
}

function parsed<T>(schema: Parameters<typeof validate>[0], raw: unknown): T {
  const res = validate(schema, raw);
  if (!res.ok) throw new Error(JSON.stringify(res.failures));
  return res.value as T;
}

/** The message `work` fails with (its step logs captured, out of the test report). */
async function failure(work: () => Promise<unknown>): Promise<string> {
  const { error } = await withLog(work);
  return error?.message ?? "(no failure)";
}

const AGAIN = "run again: it starts from what it finds there.";

describe("provider messages: LxcSubvolumeRootfs says what the run changed before it stopped", () => {
  const inputs = parsed<RootfsInputs>(rootfsArgsSchema, {
    connection: { host: "fake" },
    container: "sv",
    lxcPath: CAP_LXC,
  });
  const prefix = `LxcSubvolumeRootfs sv on ${TARGET}: `;
  // A converted rootfs whose config still says dir: one round rewrites the config line, then it is done.
  const dirConfig = fixture("inspect-subvol.bin").replace(
    "lxc.rootfs.path = btrfs:",
    "lxc.rootfs.path = dir:",
  );
  const CONFIG_ROUND = "point the config at the btrfs backing store (was dir)";
  const unreadable = 'cannot read the host\'s inspection: unrecognised inspection output line: "garbage"';

  const table: [string, Reply[], string][] = [
    [
      "round 1: an unreadable inspection, before any step",
      [["inspect-rootfs", "garbage\n"]],
      `${prefix}${unreadable}. Nothing was changed.`,
    ],
    [
      "round 2: an unreadable inspection after the config was rewritten",
      [
        ["inspect-rootfs", dirConfig],
        ["step", ""],
        ["inspect-rootfs", "garbage\n"],
      ],
      `${prefix}${unreadable}. This run had already changed the host (${CONFIG_ROUND}); ${AGAIN}`,
    ],
    [
      "round 2: a refusal after the config was rewritten",
      [
        ["inspect-rootfs", dirConfig],
        ["step", ""],
        ["inspect-rootfs", fixture("inspect-missing.bin")],
      ],
      `${prefix}container sv does not exist: ${CAP_LXC}/sv is missing; check the name and lxcPath. ` +
        `This run had already changed the host (${CONFIG_ROUND}); ${AGAIN}`,
    ],
  ];
  for (const [what, script, want] of table) {
    it(what, async () => {
      const remote = scriptedRemote(script);
      expect(await failure(() => convergeWith(remote, inputs))).to.equal(want);
      expectRan(remote, script);
    });
  }

  it("the same two rounds with a readable inspection converge (the script above is complete)", async () => {
    const script: Reply[] = [
      ["inspect-rootfs", dirConfig],
      ["step", ""],
      ["inspect-rootfs", fixture("inspect-subvol.bin")],
    ];
    const remote = scriptedRemote(script);
    const { value: outs } = await withLog(() => convergeWith(remote, inputs));
    expectRan(remote, script);
    expect([outs?.configBackingStore, outs?.adopted, outs?.entries, outs?.files]).to.deep.equal([
      "btrfs",
      false,
      301,
      301,
    ]);
  });
});

describe("provider messages: LxcSnapshotClone says what the run changed before it stopped", () => {
  const insp = fixture("clone-inspect.bin");
  const lxcPath = /btrfs:(\S+)\/sv\/rootfs/.exec(insp)?.[1] as string;
  const inputs = parsed<CloneInputs>(cloneArgsSchema, {
    connection: { host: "fake" },
    lxcPath,
    source: "sv",
    name: "cl",
  });
  const prefix = `LxcSnapshotClone cl (from sv) on ${TARGET}: `;
  const unreadable = "cannot read the host's inspection: unrecognised clone inspection output";
  const MADE = "made the snapshot clone, removed again on failure";
  // The snapshot as lxc-copy leaves it: finish rewrites its /etc/hosts.
  const WROTE = "wrote the clone's /etc/hosts";

  const creates: [string, Reply[], string][] = [
    [
      "an unreadable first inspection",
      [["clone inspect", "garbage"]],
      `${prefix}${unreadable}. Nothing was changed.`,
    ],
    [
      "the name taken between inspection and snapshot (make exits 4: nothing made)",
      [
        ["clone inspect", fixture("clone-inspect-noclone.bin")],
        ["clone make", "", 4],
      ],
      `${prefix}a container named cl appeared while the clone was being made; choose another name or remove it. Nothing was changed.`,
    ],
    [
      "an unreadable report after make: the clone was made, and is removed",
      [
        ["clone inspect", fixture("clone-inspect-noclone.bin")],
        ["clone make", "garbage"],
        ["clone destroy", ""],
      ],
      `${prefix}${unreadable}. This run had already changed the host (${MADE}); ${AGAIN}`,
    ],
    [
      "an unreadable report after finish: made and written, and removed",
      [
        ["clone inspect", fixture("clone-inspect-noclone.bin")],
        ["clone make", insp],
        ["clone finish", "garbage"],
        ["clone destroy", ""],
      ],
      `${prefix}${unreadable}. This run had already changed the host (${MADE}; ${WROTE}); ${AGAIN}`,
    ],
    [
      "an unfinished clone removed, then an unreadable inspection",
      [
        ["clone inspect", `making=1\n${insp}`],
        ["clone destroy", ""],
        ["clone inspect", "garbage"],
      ],
      `${prefix}${unreadable}. This run had already changed the host (removed an unfinished clone left by an interrupted create); ${AGAIN}`,
    ],
    [
      "an unfinished clone removed, then the source refused as running",
      [
        ["clone inspect", `making=1\n${insp}`],
        ["clone destroy", ""],
        [
          "clone inspect",
          fixture("clone-inspect-noclone.bin").replace("source_state=STOPPED", "source_state=RUNNING"),
        ],
      ],
      `${prefix}source sv is RUNNING; stop it, or set ifSourceRunning: "freeze" or "restart". ` +
        `This run had already changed the host (removed an unfinished clone left by an interrupted create); ${AGAIN}`,
    ],
  ];
  for (const [what, script, want] of creates) {
    it(`create: ${what}`, async () => {
      const remote = scriptedRemote(script);
      expect(await failure(() => createCloneWith(remote, inputs))).to.equal(want);
      expectRan(remote, script);
    });
  }

  const updates: [string, Partial<CloneInputs>, Reply[], string][] = [
    [
      "an unreadable report after finish: written, not removed",
      {},
      [
        ["clone inspect", insp],
        ["clone finish", "garbage"],
      ],
      `${prefix}${unreadable}. This run had already changed the host (${WROTE}); ${AGAIN}`,
    ],
    [
      "an unreadable report after finish wrote every file and started the clone",
      { hostname: "web7", start: true },
      [
        ["clone inspect", insp],
        ["clone finish", "garbage"],
      ],
      `${prefix}${unreadable}. This run had already changed the host ` +
        `(wrote the clone's config, /etc/hostname, /etc/hosts; started the clone); ${AGAIN}`,
    ],
    [
      "a clone that is gone: refused, nothing changed",
      {},
      [["clone inspect", fixture("clone-inspect-noclone.bin")]],
      `${prefix}the clone cl no longer exists; run \`pulumi up --refresh\` to create it again. Nothing was changed.`,
    ],
  ];
  for (const [what, over, script, want] of updates) {
    it(`update: ${what}`, async () => {
      const remote = scriptedRemote(script);
      expect(await failure(() => updateCloneWith(remote, { ...inputs, ...over }, false))).to.equal(want);
      expectRan(remote, script);
    });
  }

  it("create with readable reports makes the clone (the scripts above are complete)", async () => {
    const script: Reply[] = [
      ["clone inspect", fixture("clone-inspect-noclone.bin")],
      ["clone make", insp],
      ["clone finish", insp],
    ];
    const remote = scriptedRemote(script);
    const { value } = await withLog(() => createCloneWith(remote, inputs));
    expectRan(remote, script);
    expect(value?.id).to.equal(`fake:22:${lxcPath}/cl`);
    expect([value?.outs.adopted, value?.outs.subvolumeId, value?.outs.drift]).to.deep.equal([false, 261, []]);
  });
});
