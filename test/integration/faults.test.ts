/**
 * The fault matrix: for every step of a conversion and of a clone, each fault (the host's link cut,
 * sshd killed with its sessions, the provider process SIGKILLed, the disk filled) strikes while the
 * run is held at that step by the scripts' failpoint (/run/plb-hold/NAME.STEP). Then the fault is
 * cleared and the resource is created again, as `pulumi up` does after a failed create. Every cell
 * asserts: the original tree equals its manifest from before; the resource ends as declared; nothing is
 * left over (subvolumes, temp files, journal, a frozen source). The matrix is printed at the end.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { expect } from "chai";
import { type CloneInputs, cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FaultAction, type FleetHost, fault, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, hostSh, waitFor } from "../support/host";
import { logged } from "../support/log";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath as string, "utf8");
// One dial attempt: a run against a cut link gives up after keepalive (15 s) instead of retrying.
const connection = {
  host: h1.address,
  privateKey: key,
  knownHostsPath: inv.knownHostsPath,
  dialErrorLimit: 1,
  perDialTimeout: 4,
};
const LXC = "/var/lib/lxc";
const HOLD = "/run/plb-hold";

/**
 * What real containers hold (run in the rootfs): a systemd-style NOCOW journal directory with data, an
 * immutable file, an append-only log and a file with the btrfs compression property. cp copies none of
 * these flags and cannot reflink a NOCOW file into a COW one; the removal of the old tree must clear i
 * and a first.
 */
const FLAGGED_TREE =
  "mkdir -p var/log/journal && chattr +C var/log/journal && head -c 1048576 /dev/urandom >var/log/journal/system.journal && " +
  "echo locked >etc/locked && chattr +i etc/locked && echo log >var/log/app.log && chattr +a var/log/app.log && " +
  "echo zz >etc/zstd && btrfs property set etc/zstd compression zstd";

type Fault = "link cut" | "sshd killed" | "provider SIGKILL" | "disk full";
const FAULTS: Fault[] = ["link cut", "sshd killed", "provider SIGKILL", "disk full"];
const matrix: string[] = [];

const sh = (script: string, ...args: string[]) => hostSh(h1, script, ...args);
const destroy = (...names: string[]) => destroyContainers(h1, ...names);

/** Every subvolume in the container's directory: after any run, only its rootfs. */
const subvolumes = (name: string) => sh('find "/var/lib/lxc/$1" -type d -inum 256 | sort', name);

type Kind = "rootfs" | "clone";
type Inputs<K extends Kind> = K extends "rootfs" ? RootfsInputs : CloneInputs;

/** Runs a create in a separate node process (a provider process of its own), so it can be SIGKILLed. */
function providerChild(kind: Kind, inputs: unknown): { child: ChildProcess; done: Promise<number> } {
  const mod = path.resolve(__dirname, `../../provider/${kind}-provider.js`);
  const code = `require(${JSON.stringify(mod)}).create(JSON.parse(process.argv[1])).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); })`;
  const child = spawn(process.execPath, ["-e", code, JSON.stringify(inputs)], { stdio: "ignore" });
  const done = new Promise<number>((resolve) => child.on("exit", (c) => resolve(c ?? -1)));
  return { child, done };
}

/** fault.sh actions that inject and clear each fault; a SIGKILL needs no clearing. */
const INJECT: Record<Fault, FaultAction | undefined> = {
  "link cut": "cut",
  "sshd killed": "sshd-stop",
  "provider SIGKILL": undefined,
  "disk full": "fill",
};
const CLEAR: Record<Fault, FaultAction | undefined> = {
  "link cut": "restore",
  "sshd killed": "sshd-start",
  "provider SIGKILL": undefined,
  "disk full": "unfill",
};

/**
 * Holds `name` at `point`, starts a create of `kind` (in a provider child for a SIGKILL), injects the
 * fault once the point is reached, lets the host go on, waits for the faulted run to end, clears the
 * fault. Returns how the faulted run ended; unless the disk filled, it must have failed.
 */
async function strike<K extends Kind>(
  kind: K,
  inputs: Inputs<K>,
  name: string,
  point: string,
  f: Fault,
): Promise<string> {
  const hold = `${HOLD}/${name}.${point}`;
  await sh('mkdir -p "$1" && rm -f "$2.reached" && : >"$2"', HOLD, hold);
  let ended: Promise<string>;
  let proc: ChildProcess | undefined;
  if (f === "provider SIGKILL") {
    const c = providerChild(kind, inputs);
    proc = c.child;
    ended = c.done.then((code) => (code === 0 ? "succeeded" : `failed (exit ${code})`));
  } else {
    const create =
      kind === "rootfs" ? rootfs.create(inputs as RootfsInputs) : clone.create(inputs as CloneInputs);
    ended = create.then(
      () => "succeeded",
      (e: Error) => `failed: ${e.message.split("\n")[0].slice(0, 160)}`,
    );
  }
  await waitFor(
    `${hold}.reached`,
    async () => (await sh('[ -e "$1.reached" ] && echo y || true', hold)) === "y\n",
    60_000,
  );
  const inject = INJECT[f];
  if (inject) await fault(h1, inject);
  else proc?.kill("SIGKILL");
  await sh('rm -f "$1"', hold);
  const how = await ended;
  const clear = CLEAR[f];
  if (clear) await fault(h1, clear);
  await closeAllConnections();
  // A faulted run may have left its host-side script running (the link was cut, not the process): let
  // it reach its end before the next run looks, as a real next `pulumi up` comes much later.
  await waitFor(
    "the faulted run's host-side scripts to end",
    async () => (await sh(`pgrep -f "plb-(step|clone) .*${name}" >/dev/null && echo busy || true`)) === "",
    60_000,
  );
  // The client lost its connection or its process: it cannot have reported success.
  if (f !== "disk full") expect(how).to.match(/^failed/);
  return how;
}

describe("fault matrix: each step × link cut, sshd killed, provider SIGKILL, disk full", function () {
  this.timeout(900_000);
  after(async () => {
    await closeAllConnections();
    await sh(`rm -rf ${HOLD}`);
    console.log(`\n      step × fault -> outcome\n${matrix.map((l) => `      ${l}`).join("\n")}\n`);
  });

  describe("LxcSubvolumeRootfs conversion", () => {
    const name = "it-fault";
    const inputs = rootfsArgsSchema.parse({ connection, container: name });
    // The failpoints are the steps of the batches, in order (see provider/rootfs/plan.ts), and the
    // inspection that ends the last batch (read-only: the conversion is done by then).
    const steps = [
      "subvol-create",
      "copy",
      "verify",
      "swap",
      "write-config",
      "remove",
      "journal-clear",
      "inspect",
    ];
    for (const step of steps) {
      for (const f of FAULTS) {
        it(`${step} × ${f}: the next run finishes or rolls back; the tree is intact, nothing is left over`, async () => {
          await destroy(name);
          await sh(
            `lxc-create -n "$1" -t busybox >/dev/null 2>&1 && printf "lxc.net.0.type = empty\\n" >>"/var/lib/lxc/$1/config" && mkdir "/var/lib/lxc/$1/rootfs/bulk" && cd "/var/lib/lxc/$1/rootfs/bulk" && seq 1 2000 | xargs touch && ln 1 hard && cd .. && ${FLAGGED_TREE}`,
            name,
          );
          const before = await manifest(h1, `${LXC}/${name}/rootfs`);
          const how = await strike("rootfs", inputs, name, step, f);
          const { result, lines } = await logged(() => rootfs.create(inputs));
          const recovery = lines
            .find((l) => / (roll back|resume) an interrupted/.test(l))
            ?.replace(/^.*: /, "");
          expect(result.outs).to.include({
            rootfsIsSubvolume: true,
            configBackingStore: "btrfs",
            interrupted: null,
          });
          expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
          expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal("config\nconfig.pre-btrfs\nrootfs\n");
          expect(await subvolumes(name)).to.equal(`${LXC}/${name}/rootfs\n`);
          expect(
            await sh(
              'grep -c "^lxc.rootfs.path = btrfs:/var/lib/lxc/$1/rootfs$" "/var/lib/lxc/$1/config"',
              name,
            ),
          ).to.equal("1\n");
          matrix.push(
            `convert ${step.padEnd(13)} × ${f.padEnd(16)} -> faulted run ${how.startsWith("failed") ? "failed" : "succeeded"}; next run: ${recovery ?? (result.outs.adopted ? "found it done (adopted)" : "converted")}; tree intact`,
          );
        });
      }
    }
    after(() => destroy(name));
  });

  describe("LxcSubvolumeRootfs restore (restoreFrom)", () => {
    const name = "it-fault-rs";
    const D = `${LXC}/${name}`;
    const inputs = rootfsArgsSchema.parse({ connection, container: name, restoreFrom: "s" });
    const exists = async (p: string) => (await sh('[ -e "$1" ] && echo y || echo n', p)) === "y\n";
    // The failpoints are the restore's steps (see provider/rootfs/plan.ts): journal-restore is its first
    // journal (copying), the later ones are covered by the steps they precede; inspect ends the batch.
    const steps = [
      "journal-restore",
      "restore-snapshot",
      "restore-verify",
      "swap",
      "remove",
      "journal-clear",
      "inspect",
    ];
    for (const step of steps) {
      for (const f of FAULTS) {
        it(`${step} × ${f}: the old or the restored rootfs is in place; the next run ends restored, the snapshot untouched`, async () => {
          await destroy(name);
          // Already converted (lxc-create -B btrfs), with flags, hardlinks and 2000 files; a read-only
          // snapshot of it made by hand, then the container's tree changed.
          await sh(
            `lxc-create -n "$1" -t busybox -B btrfs >/dev/null 2>&1 && printf "lxc.net.0.type = empty\\n" >>"$2/config" && mkdir "$2/rootfs/bulk" && cd "$2/rootfs/bulk" && seq 1 2000 | xargs touch && ln 1 hard && cd .. && ${FLAGGED_TREE} && ` +
              'mkdir -p "$2/snaps/s" && btrfs subvolume snapshot -r "$2/rootfs" "$2/snaps/s/rootfs" >/dev/null && cp "$2/config" "$2/snaps/s/config" && date >"$2/snaps/s/ts" && ' +
              'cd "$2/rootfs" && echo new >bulk/new && rm bulk/7 && echo more >>etc/zstd && chattr -i etc/locked && echo x >>etc/locked && setfattr -n user.x -v 1 bulk/1',
            name,
            D,
          );
          const snap = await manifest(h1, `${D}/snaps/s/rootfs`);
          const changed = await manifest(h1, `${D}/rootfs`);
          const snapUuid = await sh(
            'btrfs subvolume show "$1" | sed -n "s/^[[:space:]]*UUID:[[:space:]]*//p"',
            `${D}/snaps/s/rootfs`,
          );
          const how = await strike("rootfs", inputs, name, step, f);
          // Never neither: the old tree, the restored one, or (between the two renames) both beside it.
          if (await exists(`${D}/rootfs`)) {
            expect([changed, snap]).to.include(await manifest(h1, `${D}/rootfs`));
            if (await exists(`${D}/rootfs.pre-restore`))
              expect(await manifest(h1, `${D}/rootfs.pre-restore`)).to.equal(changed);
          } else {
            expect(await manifest(h1, `${D}/rootfs.pre-restore`)).to.equal(changed);
            expect(await manifest(h1, `${D}/rootfs.plb-restore`)).to.equal(snap);
          }
          const { result, lines } = await logged(() => rootfs.create(inputs));
          const recovery = lines
            .find((l) => / (roll back|resume) an interrupted/.test(l))
            ?.replace(/^.*: /, "");
          expect(result.outs).to.include({
            restoredFrom: "s",
            restoredSnapshotUuid: snapUuid.trim(),
            interrupted: null,
          });
          expect(await manifest(h1, `${D}/rootfs`)).to.equal(snap);
          expect(await manifest(h1, `${D}/snaps/s/rootfs`)).to.equal(snap);
          expect(await sh('btrfs property get -ts "$1"', `${D}/snaps/s/rootfs`)).to.equal("ro=true\n");
          expect(await sh('ls -A "$1"', D)).to.equal("config\nrootfs\nsnaps\n");
          expect(await subvolumes(name)).to.equal(`${D}/rootfs\n${D}/snaps/s/rootfs\n`);
          matrix.push(
            `restore ${step.padEnd(16)} × ${f.padEnd(16)} -> faulted run ${how.startsWith("failed") ? "failed" : "succeeded"}; next run: ${recovery ?? (lines.some((l) => l.includes("restore rootfs")) ? "restored" : "found it done")}; restored exactly`,
          );
        });
      }
    }
    after(() => destroy(name));
  });

  describe("LxcSnapshotClone create", () => {
    const src = "it-fault-src";
    const name = "it-fault-cl";
    const inputs = cloneArgsSchema.parse({ connection, source: src, name, hostname: "faulty" });
    let sourceBefore: string;
    before(async () => {
      await destroy(name, src);
      await sh(
        'lxc-create -n "$1" -t busybox >/dev/null 2>&1 && printf "lxc.net.0.type = veth\\nlxc.net.0.link = br0\\nlxc.net.0.hwaddr = 00:16:3e:aa:bb:cc\\n" >>"/var/lib/lxc/$1/config"',
        src,
      );
      await rootfs.create(rootfsArgsSchema.parse({ connection, container: src }));
      sourceBefore = await manifest(h1, `${LXC}/${src}`);
    });
    after(() => destroy(name, src));

    // snapshot: before lxc-copy runs; nested: right after it (the clone exists, config not yet ours);
    // finish: before the config, hostname and hosts are rewritten.
    for (const point of ["snapshot", "nested", "finish"]) {
      for (const f of FAULTS) {
        it(`${point} × ${f}: the next create ends with the declared clone; the source is untouched`, async () => {
          await destroy(name);
          const how = await strike("clone", inputs, name, point, f);
          const { result, lines } = await logged(() => clone.create(inputs));
          const recovery = lines.find((l) => /removing an unfinished|adopting/.test(l))?.replace(/^.*: /, "");
          expect(result.outs).to.include({ name, state: "STOPPED", actualHostname: "faulty" });
          expect(result.outs.hwaddrs).to.have.length(1).and.not.include("00:16:3e:aa:bb:cc");
          expect(await manifest(h1, `${LXC}/${src}`)).to.equal(sourceBefore);
          expect((await sh('lxc-info -n "$1" -s', src)).trim()).to.match(/STOPPED$/);
          expect(await sh('cat "/var/lib/lxc/$1/rootfs/etc/hostname"', name)).to.equal("faulty\n");
          expect(await subvolumes(name)).to.equal(`${LXC}/${name}/rootfs\n`);
          expect(await sh('find "/var/lib/lxc/$1" -name "*.plb-tmp" | wc -l', name)).to.equal("0\n");
          matrix.push(
            `clone   ${point.padEnd(13)} × ${f.padEnd(16)} -> faulted run ${how.startsWith("failed") ? "failed" : "succeeded"}; next run: ${recovery ?? "created it"}; source intact`,
          );
        });
      }
    }
  });
});
