/**
 * A `pulumi up` killed with SIGKILL in the middle of a conversion (the CLI, the language host and our
 * provider process all at once): the original tree is intact, and after the refresh Pulumi asks for, the
 * next `pulumi up` finishes the work from the host's journal, with no leftovers.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { expect } from "chai";
import { type FleetHost, hostExec, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, hostSh } from "../support/host";
import { runPulumi, tempProject } from "../support/pulumi";
import { linkPackage } from "../support/repo";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;
const NAME = "e2e-crash";

const PROGRAM = `import { LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";
new LxcSubvolumeRootfs("crash", {
  connection: { host: "${h1.address}", privateKeyPath: "${inv.users.root.privateKeyPath}", knownHostsPath: "${inv.knownHostsPath}" },
  container: "${NAME}",
});
`;

/** SIGKILLs every process still working in `dir` (found by its cwd). */
function killLeftovers(dir: string): void {
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/cwd`).startsWith(dir)) process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone already, or not ours to read
    }
  }
}

const sh = (script: string, ...args: string[]) => hostSh(h1, script, ...args);

describe("a pulumi up killed mid-conversion", function () {
  this.timeout(600_000);
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    linkPackage();
    await sh(
      'lxc-destroy -n "$1" >/dev/null 2>&1; lxc-create -n "$1" -t busybox >/dev/null 2>&1 && mkdir "/var/lib/lxc/$1/rootfs/bulk" && cd "/var/lib/lxc/$1/rootfs/bulk" && seq 1 40000 | xargs touch',
      NAME,
    );
    ({ dir, env } = tempProject(
      "crash",
      { "index.ts": PROGRAM },
      { extraEnv: { PULUMI_NODEJS_TRANSPILE_ONLY: "true" } },
    ));
    await runPulumi(["stack", "init", "crash"], { cwd: dir, env });
  });
  after(() => destroyContainers(h1, NAME));

  it("leaves the original intact, and the next up (after refresh) finishes it", async () => {
    const before = await manifest(h1, `/var/lib/lxc/${NAME}/rootfs`);
    const up = spawn("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive", "--stack", "crash"], {
      cwd: dir,
      env,
      detached: true,
      stdio: "ignore",
    });
    const exited = new Promise((r) => up.on("exit", r));
    const end = Date.now() + 120_000;
    while ((await hostExec(h1, ["pgrep", "-f", `[c]p -a --preserve=xattr .*/${NAME}/rootfs/`])).code !== 0) {
      if (Date.now() > end) throw new Error("the copy never started");
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(-(up.pid as number), "SIGKILL"); // the CLI, the language host and the provider
    await exited;
    killLeftovers(dir); // plugins of the killed engine (the language host outlives it)
    // Whatever the remote side still does, the original tree is never touched before the swap.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await manifest(h1, `/var/lib/lxc/${NAME}/rootfs`)).to.equal(before);
    expect(await sh('cat "/var/lib/lxc/$1/.plb-journal"', NAME)).to.match(
      /^op=convert\nphase=(copying|swapping|swapped)\n/,
    );

    // What Pulumi asks of a user after a killed update: drop the lock, then the pending create.
    await runPulumi(["cancel", "--yes", "--stack", "crash"], { cwd: dir, env });
    await runPulumi(["refresh", "--yes", "--clear-pending-creates", "--stack", "crash"], {
      cwd: dir,
      env,
      timeoutMs: 300_000,
    });
    await runPulumi(["up", "--yes", "--skip-preview", "--stack", "crash"], {
      cwd: dir,
      env,
      timeoutMs: 300_000,
    });
    expect(await sh('stat -c %i "/var/lib/lxc/$1/rootfs"; ls -A "/var/lib/lxc/$1"', NAME)).to.equal(
      "256\nconfig\nconfig.pre-btrfs\nrootfs\n",
    );
    expect(await manifest(h1, `/var/lib/lxc/${NAME}/rootfs`)).to.equal(before);
  });
});
