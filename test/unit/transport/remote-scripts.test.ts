/**
 * remote-scripts.ts and prelude.sh: every script is sent after the prelude; the prelude's exit codes are
 * those of exit-codes.ts; its helpers run in the hosts' sh (dash) on real `btrfs subvolume show` output.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { ExitCode, exitCodeAssignments } from "../../../provider/transport/exit-codes";
import {
  preludeAsSent,
  preludePath,
  SCRIPT_FUNCTIONS,
  SCRIPT_LIBS,
  SCRIPT_NAMES,
  script,
  scriptArgv,
  scriptPath,
} from "../../../provider/transport/remote-scripts";
import { fixture, fixtureBytes } from "../fixtures";

const preludeFile = readFileSync(preludePath(), "utf8");
const prelude = preludeAsSent(preludeFile);

describe("remote-scripts: every script goes out after the prelude", () => {
  it("sends each script after the prelude without its comment lines, as `sh -c TEXT plb-NAME ARGS`", () => {
    expect(prelude.split("\n")).to.deep.equal(preludeFile.split("\n").filter((l) => !l.startsWith("#")));
    expect(prelude).to.not.match(/^\s*#/m);
    expect(prelude.endsWith("}\n")).to.equal(true);
    expect(SCRIPT_NAMES).to.deep.equal([
      "inspect-rootfs",
      "inspect-many",
      "step",
      "clone",
      "snapshot",
      "discover",
      "batch",
    ]);
    // The flag helpers travel with the two scripts that use them, between the prelude and the script.
    expect(SCRIPT_LIBS).to.deep.equal({ step: ["flags"], clone: ["flags"] });
    const flags = preludeAsSent(readFileSync(join(preludePath(), "..", "flags.sh"), "utf8"));
    expect(flags).to.match(/^flags_of\(\) \(/m);
    // step.sh also carries inspect-rootfs.sh, as a function run in a subshell (its closing inspection).
    expect(SCRIPT_FUNCTIONS).to.deep.equal({ step: [["inspect_rootfs", "inspect-rootfs"]] });
    const inspectFn = `inspect_rootfs() (\n${preludeAsSent(readFileSync(scriptPath("inspect-rootfs"), "utf8"))}\n)\n`;
    for (const name of SCRIPT_NAMES) {
      const lib = name === "step" || name === "clone" ? flags : "";
      const fns = name === "step" ? inspectFn : "";
      expect(script(name)).to.equal(prelude + lib + fns + readFileSync(scriptPath(name), "utf8"));
    }
    expect(scriptArgv("discover", ["/var/lib/lxc"])).to.deep.equal([
      "sh",
      "-c",
      script("discover"),
      "plb-discover",
      "/var/lib/lxc",
    ]);
  });

  it("the prelude's EXIT_* lines are exit-codes.ts's names and values, in order", () => {
    const lines = prelude.match(/^EXIT_[A-Z_]+=\S*/gm);
    expect(lines).to.deep.equal(exitCodeAssignments());
    expect(exitCodeAssignments()).to.deep.equal(["EXIT_REFUSED=3", "EXIT_NAME_TAKEN=4"]);
  });

  it("no script exits with a bare named code, nor spells out the subvolume inode", () => {
    for (const name of SCRIPT_NAMES) {
      const text = readFileSync(scriptPath(name), "utf8");
      for (const code of Object.values(ExitCode)) {
        expect(text, `${name}.sh: exit ${code}`).to.not.match(new RegExp(`\\bexit ${code}\\b`));
      }
      expect(text, `${name}.sh: 256`).to.not.match(/\b256\b/);
    }
  });
});

/** Runs `body` after the prelude in the host's sh, with a fake `btrfs` that prints `show` and exits `rc`. */
function withFakeBtrfs(show: string, rc: number, body: string): { status: number | null; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), "plb-prelude-"));
  try {
    writeFileSync(join(dir, "show.txt"), show);
    writeFileSync(join(dir, "btrfs"), `#!/bin/sh\ncat "${dir}/show.txt"\nexit ${rc}\n`);
    chmodSync(join(dir, "btrfs"), 0o755);
    const r = spawnSync("sh", ["-c", `set -eu\n${prelude}${body}`, "plb-test"], {
      encoding: "utf8",
      env: { PATH: `${dir}:${process.env.PATH}`, LC_ALL: "C" },
    });
    return { status: r.status, stdout: r.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("prelude: subvol_fields on real `btrfs subvolume show` output", () => {
  const print = 'subvol_fields /x "$1"; printf %s "$fields"; echo end';

  it("prints what inspect-rootfs.sh printed with sed for the same subvolume (captured together)", () => {
    const captured = fixtureBytes("inspect-subvol.bin")
      .toString("utf8")
      .split("\n")
      .filter((l) => l.startsWith("subvol "));
    const r = withFakeBtrfs(fixture("subvolume-show.txt"), 0, print.replace('"$1"', "subvol"));
    expect(r.status).to.equal(0);
    expect(r.stdout).to.equal(`${captured.join("\n")}\nend\n`);
    expect(captured).to.have.length(5);
  });

  it("keeps the five fields of a snapshot, in btrfs's order, under the given prefix", () => {
    const r = withFakeBtrfs(fixture("subvolume-show-snapshot.txt"), 0, print.replace('"$1"', "clone"));
    expect(r.stdout).to.equal(
      [
        "clone UUID=d557aa90-1888-a143-9253-252d5036c78b",
        "clone Parent UUID=451b3e71-7255-7642-9e24-3d0cf12faf54",
        "clone Received UUID=-",
        "clone Subvolume ID=261",
        "clone Generation=7",
        "end\n",
      ].join("\n"),
    );
  });

  it("gives no fields, and does not stop a `set -e` script, when btrfs fails", () => {
    const r = withFakeBtrfs(
      "ERROR: Not a Btrfs subvolume: Invalid argument\n",
      1,
      print.replace('"$1"', "x"),
    );
    expect(r).to.deep.equal({ status: 0, stdout: "end\n" });
  });
});

describe("prelude: fail and kv", () => {
  it("fail prints its message on stderr and exits EXIT_REFUSED; kv prints key=value", () => {
    const r = spawnSync("sh", ["-c", `${prelude}kv a "b c"; fail "no: $1"; echo after`, "plb-test", "x y"], {
      encoding: "utf8",
    });
    expect([r.status, r.stdout, r.stderr]).to.deep.equal([ExitCode.REFUSED, "a=b c\n", "no: x y\n"]);
  });
});
