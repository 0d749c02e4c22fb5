/**
 * Faults of cross-host clones (h1 -> h2, and between btrfs-progs versions): sshd killed on either host and
 * the target's disk filled in the middle of the stream; the provider SIGKILLed and sshd killed at each step
 * boundary of a create (the sent snapshot taken, the receive complete, the clone placed); a copy between a
 * host with btrfs-progs 6.2 and one with 6.14, both ways. Every cell asserts what each host holds after the
 * fault (never a half-received subvolume in place, nothing the next create does not remove or replace, the
 * source untouched), that the next create completes the copy, and that deleting it leaves both hosts as
 * they were.
 */
import { expect } from "chai";
import type { CloneInputs } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FaultAction, type FleetHost, fault, fleetScript, manifest, run } from "../support/fleet";
import { destroyContainers, failpoint, hostSh, makeBusybox, rejectionOf, waitFor } from "../support/host";
import { logged } from "../support/log";
import {
  args,
  connTo,
  host,
  L,
  providerCall,
  providerChild,
  receivedPast,
  rewritten,
  sentDir,
  subvol,
  sum,
} from "../support/xhost";

const h1 = host("h1");
const h2 = host("h2");
const h4 = host("h4");
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** The end of the message of a create that failed after the copy started (as a RegExp source). */
const AFTER =
  "This run had already changed the host \\(.*\\); run again: it starts from what it finds there\\.";
/** The source's channel closed under btrfs send (as a RegExp source). */
const SEND_CUT =
  "btrfs send on the source was cut off \\(its connection was lost, or it was killed\\), and btrfs receive on the target then failed:";

/**
 * A copy's inputs that give up at once on an unreachable host (one dial, 4 s), as a faulted run should:
 * the default dials again for minutes.
 */
function faultArgs(src: string, name: string, to = h2, from = h1): CloneInputs {
  const quick = (h: FleetHost) => ({
    ...connTo(h),
    dialErrorLimit: 1,
    perDialTimeout: 4,
    commandTimeout: 20,
  });
  return args(
    src,
    name,
    { connection: quick(to) as never, sourceConnection: quick(from) as never },
    to,
    from,
  );
}

/**
 * What a clone has on its target: the entries of lxcPath named for it (the clone, the marker, the receiving
 * directory) and every subvolume below them with its ro property, one per line.
 */
function targetState(h: FleetHost, name: string): Promise<string> {
  return hostSh(
    h,
    `cd "$1" || exit 1
for e in "$2" ".plb-making-$2" ".plb-refreshing-$2" ".plb-receiving-$2" "$2/rootfs.plb-new" "$2/rootfs.plb-old"; do if [ -e "$e" ] || [ -L "$e" ]; then echo "entry $e"; fi; done
btrfs subvolume list . | sed 's/^.* path //' | awk -v a="$2/" -v b=".plb-receiving-$2/" 'index($0, a) == 1 || index($0, b) == 1' | sort |
  while read -r p; do echo "subvol $p $(btrfs property get -ts "$p" ro)"; done`,
    L,
    name,
  );
}

/** What a source holds: what is in its snaps/ directory, and its subvolumes with their ro property. */
function sourceState(h: FleetHost, src: string): Promise<string> {
  return hostSh(
    h,
    `cd "$1" || exit 1
if [ -d "$2/snaps" ]; then ls -A "$2/snaps" | sed 's/^/snaps /'; fi
btrfs subvolume list . | sed 's/^.* path //' | awk -v a="$2/" 'index($0, a) == 1' | sort |
  while read -r p; do echo "subvol $p $(btrfs property get -ts "$p" ro)"; done`,
    L,
    src,
  );
}

/** The pristine source: its rootfs only, nothing in snaps/. */
const pristine = (src: string) => `subvol ${src}/rootfs ro=false\n`;

/** Waits until no script of this clone runs on the host (a faulted run's may linger a moment). */
async function scriptsEnded(h: FleetHost, name: string): Promise<void> {
  await waitFor(
    `the clone scripts of ${name} on ${h.name} to end`,
    async () =>
      (await hostSh(
        h,
        'pgrep -f "plb-clon[e] .* $1( |$)" >/dev/null && echo busy || true; pgrep -f "btrfs (sen[d]|receiv[e]) .*$1" >/dev/null && echo busy || true',
        name,
      )) === "",
    120_000,
  );
}

/**
 * The next create after a fault: the copy completes (the clone's `big` has the source's checksum, its kept
 * parent is the receive of the snapshot kept on the source, nothing of the receive is left), and deleting
 * it leaves the target without a trace of it and the source as it was. Returns its log lines.
 */
async function nextCreateCompletes(
  src: string,
  name: string,
  srcManifest: string,
  to = h2,
  from = h1,
  adopted = false,
  seen: (outs: clone.CloneOutputs) => void = () => {},
): Promise<string[]> {
  const { result, lines } = await logged(() => clone.create(args(src, name, {}, to, from)));
  const { outs } = result;
  seen(outs);
  expect(outs).to.include({ adopted, state: "STOPPED", actualHostname: name });
  expect(await sum(to, `${L}/${name}/rootfs/big`)).to.equal(await sum(from, `${L}/${src}/rootfs/big`));
  const sent = await subvol(from, `${sentDir(src, name, to)}/rootfs`);
  expect(sent).to.include({ UUID: outs.sentUuid, ro: "ro=true" });
  const received = await subvol(to, `${L}/${name}/snaps/.plb-received/rootfs`);
  expect(received).to.include({ "Received UUID": outs.sentUuid, ro: "ro=true" });
  expect(await manifest(to, `${L}/${name}/snaps/.plb-received/rootfs`)).to.equal(
    await manifest(from, `${sentDir(src, name, to)}/rootfs`),
  );
  expect(await targetState(to, name)).to.equal(
    `entry ${name}\nsubvol ${name}/rootfs ro=false\nsubvol ${name}/snaps/.plb-received/rootfs ro=true\n`,
  );
  expect(await sourceState(from, src)).to.equal(
    `snaps .plb-sent-${sentDir(src, name, to).split("/.plb-sent-")[1]}\n${pristine(src)}subvol ${src}/snaps/.plb-sent-${sentDir(src, name, to).split("/.plb-sent-")[1]}/rootfs ro=true\n`,
  );
  await clone.del("", outs);
  expect(await targetState(to, name)).to.equal("");
  expect(await sourceState(from, src)).to.equal(pristine(src));
  expect(await manifest(from, `${L}/${src}/rootfs`)).to.equal(srcManifest);
  return lines;
}

/** The source: a converted busybox container with `mib` MiB of random data in /big. */
async function makeSource(h: FleetHost, src: string, mib: number): Promise<string> {
  await destroyContainers(h, src);
  await makeBusybox(h, src, "lxc.net.0.type = empty\n");
  await rootfs.create(rootfsArgsSchema.parse({ connection: connTo(h), container: src }));
  await hostSh(h, 'head -c "$2" /dev/urandom >"$1/big"', `${L}/${src}/rootfs`, String(mib * 2 ** 20));
  return manifest(h, `${L}/${src}/rootfs`);
}

const recovery = (lines: string[]) =>
  lines
    .filter((l) =>
      /removing what an interrupted create left|taking the read-only snapshot|adopting the existing copy/.test(
        l,
      ),
    )
    .map((l) => l.replace(/^\[lxc-btrfs\] clone [^ ]+ on [^ ]+: /, "").replace(/ \(source .*$/, ""));

describe("cross-host clone faults (h1 -> h2)", function () {
  this.timeout(900_000);
  after(() => closeAllConnections());

  describe("in the middle of a 1 GiB stream", () => {
    const SRC = "it-xfsrc";
    let srcManifest: string;
    before(async () => {
      srcManifest = await makeSource(h1, SRC, 1024);
    });
    after(async () => {
      await fault(h1, "sshd-start");
      await fault(h2, "sshd-start");
      await fault(h2, "unfill");
      await destroyContainers(h2, "it-xfsshd2", "it-xfsshd1", "it-xffull", "it-xfspace");
      await hostSh(
        h2,
        'cd "$1" && for n in it-xfsshd2 it-xfsshd1 it-xffull it-xfspace; do rm -f ".plb-making-$n"; if [ -d ".plb-receiving-$n" ]; then btrfs subvolume delete ".plb-receiving-$n"/* >/dev/null 2>&1; rm -rf ".plb-receiving-$n"; fi; done',
        L,
      );
      await destroyContainers(h1, SRC);
    });

    /** Starts a create in this process; strikes once the target has received 100 MiB; how it ended. */
    async function strikeMidStream(name: string, strike: () => Promise<unknown>): Promise<string> {
      const partial = `${L}/.plb-receiving-${name}/rootfs/big`;
      const create = rejectionOf(clone.create(faultArgs(SRC, name)));
      await receivedPast(h2, partial, 100);
      await strike();
      return create;
    }

    it("sshd killed on the target: the source's snapshot is removed, the partial receive is left beside the containers and removed by the next create", async () => {
      const name = "it-xfsshd2";
      let msg: string;
      try {
        msg = await strikeMidStream(name, () => fault(h2, "sshd-stop"));
      } finally {
        await fault(h2, "sshd-start");
        await closeAllConnections();
      }
      console.log(`      faulted run: ${msg}`);
      expect(msg).to.match(
        new RegExp(
          `^LxcSnapshotClone ${name} \\(from ${SRC}\\) on root@${re(h2.address)}:22: the relay failed: btrfs receive ended before the stream did\\. ${AFTER}$`,
        ),
      );
      await scriptsEnded(h1, name);
      await scriptsEnded(h2, name);
      // No clone; the marker and the partial (writable: never completed) receive, which nothing uses.
      expect(await targetState(h2, name)).to.equal(
        `entry .plb-making-${name}\nentry .plb-receiving-${name}\nsubvol .plb-receiving-${name}/rootfs ro=false\n`,
      );
      expect(await sourceState(h1, SRC)).to.equal(pristine(SRC));
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
      const lines = await nextCreateCompletes(SRC, name, srcManifest);
      expect(recovery(lines)).to.deep.equal([
        "removing what an interrupted create left (a partial receive, an unfinished clone)",
        `taking the read-only snapshot ${sentDir(SRC, name)}/rootfs to send`,
      ]);
    });

    it("sshd killed on the source: the target's partial receive is removed at once, the source's snapshot is replaced by the next create", async () => {
      const name = "it-xfsshd1";
      let msg: string;
      try {
        msg = await strikeMidStream(name, () => fault(h1, "sshd-stop"));
      } finally {
        await fault(h1, "sshd-start");
        await closeAllConnections();
      }
      console.log(`      faulted run: ${msg}`);
      // The error points at the source, whose connection was lost; the receive's short read (or EOF within a
      // command: where the stream is cut decides which) follows from it.
      expect(msg).to.match(
        new RegExp(
          `^LxcSnapshotClone ${name} \\(from ${SRC}\\) on root@${re(h2.address)}:22: ${SEND_CUT} Chroot to ${L}/\\.plb-receiving-${name} \\| At subvol rootfs \\| ERROR: (short read from stream: expected \\d+ read \\d+|unexpected EOF in stream)\\. ${AFTER}$`,
        ),
      );
      await scriptsEnded(h1, name);
      await scriptsEnded(h2, name);
      expect(await targetState(h2, name)).to.equal("");
      const orphan = await subvol(h1, `${sentDir(SRC, name)}/rootfs`);
      expect(await sourceState(h1, SRC)).to.equal(
        `snaps .plb-sent-${sentDir(SRC, name).split("/.plb-sent-")[1]}\n${pristine(SRC)}subvol ${SRC}/snaps/.plb-sent-${sentDir(SRC, name).split("/.plb-sent-")[1]}/rootfs ro=true\n`,
      );
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
      await nextCreateCompletes(SRC, name, srcManifest);
      expect(orphan.UUID).to.be.a("string");
    });

    it("the target's disk filled during the receive: the error names the clone and the host and says to free space; after freeing it the next create completes", async () => {
      const name = "it-xffull";
      let msg: string;
      try {
        msg = await strikeMidStream(name, () => fault(h2, "fill"));
        console.log(`      faulted run: ${msg}`);
        await scriptsEnded(h1, name);
        await scriptsEnded(h2, name);
        expect(await targetState(h2, name)).to.equal("");
        expect(await sourceState(h1, SRC)).to.equal(pristine(SRC));
      } finally {
        await fault(h2, "unfill");
      }
      expect(msg).to.match(
        new RegExp(
          `^LxcSnapshotClone ${name} \\(from ${SRC}\\) on root@${re(h2.address)}:22: btrfs receive on the target exited with code 1: Chroot to ${L}/\\.plb-receiving-${name} \\| At subvol rootfs \\| ERROR: [^|]*: No space left on device; the target's filesystem is full: free space on the target and run again\\. ${AFTER}$`,
        ),
      );
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
      await nextCreateCompletes(SRC, name, srcManifest);
    });

    it("refuses up front when the target's free space (btrfs' estimate) is below the source's size, with nothing changed on either host", async () => {
      const name = "it-xfspace";
      const h2Before = await hostSh(h2, 'ls -A "$1" | grep -vx .plb-fill', L);
      try {
        await fault(h2, "fill");
        const msg = await rejectionOf(clone.create(faultArgs(SRC, name)));
        console.log(`      refused: ${msg}`);
        expect(msg).to.match(
          new RegExp(
            `^LxcSnapshotClone ${name} \\(from ${SRC}\\) on root@${re(h2.address)}:22: the target has \\d+\\.\\d MiB free in ${L}, and the source's tree takes 10\\d\\d\\.\\d MiB \\(1\\d\\d\\d\\.\\d MiB needed with room for metadata\\); free space on the target\\. Nothing was changed\\.$`,
          ),
        );
        expect(await hostSh(h2, 'ls -A "$1" | grep -vx .plb-fill', L)).to.equal(h2Before);
        expect(await targetState(h2, name)).to.equal("");
        expect(await sourceState(h1, SRC)).to.equal(pristine(SRC));
      } finally {
        await fault(h2, "unfill");
      }
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
    });
  });

  describe("at each step boundary of a create, on each host (a 20 MiB source)", () => {
    const SRC = "it-xfsm";
    let srcManifest: string;
    const names: string[] = [];
    before(async () => {
      srcManifest = await makeSource(h1, SRC, 20);
    });
    after(async () => {
      for (const h of [h1, h2]) {
        await fault(h, "sshd-start");
        await hostSh(h, "rm -f /run/plb-hold/it-xfb-*");
      }
      await destroyContainers(h2, ...names);
      await hostSh(
        h2,
        'cd "$1" && shift && for n; do rm -f ".plb-making-$n"; if [ -d ".plb-receiving-$n" ]; then btrfs subvolume delete ".plb-receiving-$n"/* >/dev/null 2>&1; rm -rf ".plb-receiving-$n"; fi; done',
        L,
        ...names,
      );
      await destroyContainers(h1, SRC);
      console.log(
        `\n      boundary × fault -> left on the hosts; next create\n${matrix.map((l) => `      ${l}`).join("\n")}\n`,
      );
    });
    const matrix: string[] = [];

    type Fault = "provider SIGKILL" | "sshd killed";
    const sent = () => {
      const d = sentDir(SRC, "NAME").split("/snaps/")[1];
      return (name: string) => d.replace("NAME", name);
    };
    /** What the source holds with the sent snapshot of `name` kept: a next create replaces it. */
    const withSent = (name: string) =>
      `snaps ${sent()(name)}\n${pristine(SRC)}subvol ${SRC}/snaps/${sent()(name)}/rootfs ro=true\n`;
    const clean = "";
    const receiving = (name: string, ro: boolean) =>
      `entry .plb-making-${name}\nentry .plb-receiving-${name}\n` +
      (ro ? `subvol .plb-receiving-${name}/rootfs ro=true\n` : "");
    /** The clone placed but not finished: its marker says so. */
    const placed = (name: string) =>
      `entry ${name}\nentry .plb-making-${name}\nsubvol ${name}/rootfs ro=false\nsubvol ${name}/snaps/.plb-received/rootfs ro=true\n`;
    /** The clone complete (finished: no marker). */
    const finished = (name: string) =>
      `entry ${name}\nsubvol ${name}/rootfs ro=false\nsubvol ${name}/snaps/.plb-received/rootfs ro=true\n`;

    /** A command on the target that the lost connection ended. */
    const lost = (n: string, argv: string) =>
      new RegExp(
        `^failed: LxcSnapshotClone ${n} \\(from ${SRC}\\): on root@${re(h2.address)}:22: \`plb-clone ${argv}\` was killed or timed out\nhint: the SSH connection was lost while the command ran`,
      );
    /** What each host holds after a fault, and what the next create does: copy again, or adopt the copy. */
    type Left = { target: string; source: string; next: "copies again" | "adopts" };
    const BOUNDARIES: {
      point: string;
      on: FleetHost;
      what: string;
      /** Once the failpoint is reached, what must also hold before the strike. */
      ready?: (name: string) => Promise<boolean>;
      left: Record<Fault, (name: string) => Left>;
      /** What the faulted run ended with when sshd was killed (a SIGKILLed provider says nothing). */
      says: (name: string) => RegExp;
    }[] = [
      {
        point: "send",
        on: h1,
        what: "the sent snapshot taken and the receive waiting, before the first byte",
        ready: async (name) =>
          (await hostSh(
            h2,
            'pgrep -f "btrfs receiv[e] .*receiving-$1" >/dev/null && echo y || true',
            name,
          )) === "y\n",
        left: {
          // Nothing ran the failed run's cleanup: the marker, the receiving directory the receive (ended by
          // the closed connection, no byte received) left empty, and the kept snapshot.
          "provider SIGKILL": (n) => ({
            target: receiving(n, false),
            source: withSent(n),
            next: "copies again",
          }),
          // The failed run cleaned the target; the source's snapshot could not be removed (sshd down).
          "sshd killed": (n) => ({ target: clean, source: withSent(n), next: "copies again" }),
        },
        says: (n) =>
          new RegExp(
            `^failed: LxcSnapshotClone ${n} \\(from ${SRC}\\) on root@${re(h2.address)}:22: ${SEND_CUT} Chroot to ${L}/\\.plb-receiving-${n} \\| ERROR: empty stream is not considered valid\\. ${AFTER}$`,
          ),
      },
      {
        point: "place",
        on: h2,
        what: "the receive complete, before it is placed",
        left: {
          // xplace, held, had its input already: it runs on after the provider is gone and places the
          // clone; its marker stays (the provider never ran finish).
          "provider SIGKILL": (n) => ({ target: placed(n), source: withSent(n), next: "copies again" }),
          // xplace killed with the session: the complete receive (read-only) beside the containers, not
          // in place; the source's snapshot removed by the failed run.
          "sshd killed": (n) => ({ target: receiving(n, true), source: pristine(SRC), next: "copies again" }),
        },
        says: (n) => lost(n, `xplace ${L} - ${n} [-0-9a-f]{36} \\d+`),
      },
      {
        point: "finish",
        on: h2,
        what: "the clone placed, before its config and identity are finished",
        left: {
          // finish, held, had its input already: it runs on after the provider is gone and completes the
          // clone (marker removed); the next create finds the copy of the kept snapshot and adopts it.
          "provider SIGKILL": (n) => ({ target: finished(n), source: withSent(n), next: "adopts" }),
          "sshd killed": (n) => ({ target: placed(n), source: pristine(SRC), next: "copies again" }),
        },
        says: (n) => lost(n, `finish ${L} - ${n} \\d+ \\d+ - -`),
      },
    ];
    for (const b of BOUNDARIES) {
      for (const f of ["provider SIGKILL", "sshd killed"] as const) {
        it(`${b.point} (${b.what}) × ${f === "sshd killed" ? `sshd killed on ${b.on.name}` : f}: no half-made clone in place, the next create completes`, async () => {
          const name = `it-xfb-${b.point}-${f === "sshd killed" ? "sshd" : "kill"}`;
          names.push(name);
          const fp = failpoint(b.on, name, b.point);
          await fp.set();
          let how: string;
          try {
            const run =
              f === "provider SIGKILL"
                ? providerChild(faultArgs(SRC, name))
                : {
                    kill: () => {},
                    done: clone.create(faultArgs(SRC, name)).then(
                      () => "succeeded",
                      (e: Error) => `failed: ${e.message}`,
                    ),
                  };
            await fp.reached();
            if (b.ready)
              await waitFor(`${name} ready at ${b.point}`, () =>
                (b.ready as (n: string) => Promise<boolean>)(name),
              );
            if (f === "provider SIGKILL") run.kill();
            else await fault(b.on, "sshd-stop");
            how = await run.done;
          } finally {
            await fp.release();
            if (f === "sshd killed") await fault(b.on, "sshd-start");
            await closeAllConnections();
          }
          console.log(`      faulted run: ${how.split("\n")[0]}`);
          expect(how).to.match(f === "provider SIGKILL" ? /^failed \(SIGKILL\)$/ : b.says(name));
          await scriptsEnded(h1, name);
          await scriptsEnded(h2, name);
          const left = b.left[f](name);
          expect(await targetState(h2, name)).to.equal(left.target);
          expect(await sourceState(h1, SRC)).to.equal(left.source);
          expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
          // A kept sent snapshot is replaced by the next create's, or (adopting) is the one its copy is of.
          const kept =
            left.source === pristine(SRC)
              ? undefined
              : (await subvol(h1, `${sentDir(SRC, name)}/rootfs`)).UUID;
          let sentUuid: string | null | undefined;
          const lines = await nextCreateCompletes(
            SRC,
            name,
            srcManifest,
            h2,
            h1,
            left.next === "adopts",
            (o) => {
              sentUuid = o.sentUuid;
            },
          );
          if (kept && left.next === "adopts") expect(sentUuid).to.equal(kept);
          else if (kept) expect(sentUuid).to.not.equal(kept);
          const take = `taking the read-only snapshot ${sentDir(SRC, name)}/rootfs to send`;
          const removing =
            "removing what an interrupted create left (a partial receive, an unfinished clone)";
          expect(recovery(lines)).to.deep.equal(
            left.next === "adopts"
              ? ["adopting the existing copy of the source"]
              : left.target === clean
                ? [take]
                : [removing, take],
          );
          matrix.push(
            `${b.point.padEnd(6)} × ${(f === "sshd killed" ? `sshd killed on ${b.on.name}` : f).padEnd(16)} -> target: ${left.target === clean ? "nothing" : left.target.trim().split("\n").join(", ")}; source: ${kept ? "the sent snapshot" : "nothing"}; next create ${left.next}`,
          );
        });
      }
    }
  });

  describe("during a refresh (a copy of a 20 MiB source, then 300 MiB changed on h1)", () => {
    const SRC = "it-xfr";
    const names: string[] = [];
    let srcManifest: string;
    before(async () => {
      srcManifest = await makeSource(h1, SRC, 20);
    });
    after(async () => {
      for (const h of [h1, h2]) {
        await fault(h, "sshd-start");
        await fault(h, "restore");
        await hostSh(h, "rm -f /run/plb-hold/it-xfr-*");
      }
      await fault(h2, "unfill");
      await destroyContainers(h2, ...names);
      await hostSh(
        h2,
        'cd "$1" && shift && for n; do rm -f ".plb-refreshing-$n"; if [ -d ".plb-receiving-$n" ]; then btrfs subvolume delete ".plb-receiving-$n"/* >/dev/null 2>&1; rm -rf ".plb-receiving-$n"; fi; done',
        L,
        ...names,
      );
      await destroyContainers(h1, SRC);
      console.log(
        `\n      refresh × fault -> left on the hosts\n${matrix.map((l) => `      ${l}`).join("\n")}\n`,
      );
    });
    const matrix: string[] = [];
    const rootfsOf = (n: string) => `${L}/${n}/rootfs`;
    /** The finished clone and its kept parent, and what a cut refresh may have left beside them. */
    const finished = (n: string) =>
      `entry ${n}\nsubvol ${n}/rootfs ro=false\nsubvol ${n}/snaps/.plb-received/rootfs ro=true\n`;
    const partial = (n: string) =>
      `entry ${n}\nentry .plb-refreshing-${n}\nentry .plb-receiving-${n}\nsubvol .plb-receiving-${n}/rootfs ro=false\nsubvol ${n}/rootfs ro=false\nsubvol ${n}/snaps/.plb-received/rootfs ro=true\n`;
    const tail = (d: string) => d.split("/snaps/")[1];
    /** The source with the kept parent only, or also the refresh's new snapshot. */
    const kept = (n: string, next: boolean) => {
      const sp = tail(sentDir(SRC, n));
      const np = sp.replace(".plb-sent-", ".plb-next-");
      return next
        ? `snaps ${np}\nsnaps ${sp}\n${pristine(SRC)}subvol ${SRC}/snaps/${np}/rootfs ro=true\nsubvol ${SRC}/snaps/${sp}/rootfs ro=true\n`
        : `snaps ${sp}\n${pristine(SRC)}subvol ${SRC}/snaps/${sp}/rootfs ro=true\n`;
    };
    /** What the source holds: its rootfs, and what it keeps for the clone `n` (sourceState's lines). */
    const sourceOf = async (n: string) =>
      (await sourceState(h1, SRC))
        .split("\n")
        .filter((l) => l === pristine(SRC).trim() || l.endsWith(`-${n}`) || l.includes(`-${n}/`))
        .map((l) => `${l}\n`)
        .join("");
    /** The clone's manifest but for what its identity rewrite wrote. */
    const own = (m: string) =>
      m
        .split("\n")
        .filter((l) => !rewritten(l))
        .join("\n");
    const refreshed = "the refresh's change on h1";

    type Outcome = {
      says: (n: string) => RegExp;
      target: (n: string) => string;
      /** Whether the source still holds the refresh's new snapshot beside the kept parent. */
      next: boolean;
      /** Whether the clone already holds the refreshed tree. */
      swapped: boolean;
    };
    type Cell = Outcome & {
      fault: string;
      /** Strikes (in the middle of the stream, or at the failpoint), and undoes the fault. */
      strike?: () => Promise<unknown>;
      heal?: () => Promise<unknown>;
      /** Held at this failpoint (host, point) rather than struck in the middle of the stream. */
      at?: { on: FleetHost; point: string; kill: "provider" | "fault" };
      /** A receive on h2 that a lost close may leave waiting (ended by the next run). */
      lingers?: boolean;
    };
    const REFRESH_AFTER =
      "This run had already changed the host \\(received into a temporary directory on the target, which this run or the next removes; the clone is as it was\\); run again: it starts from what it finds there\\.";
    /** The message of a refresh that failed before its swap (as a RegExp source: `what`). */
    const failedBefore = (n: string, what: string) =>
      new RegExp(
        `^failed: LxcSnapshotClone ${n} \\(from ${SRC}\\) on root@${re(h2.address)}:22: ${what} ${REFRESH_AFTER}$`,
      );
    /** The target's side lost mid-stream: the partial receive stays for the next run; the new snapshot went. */
    const targetLost: Outcome = {
      says: (n) => failedBefore(n, "the relay failed: btrfs receive ended before the stream did\\."),
      target: partial,
      next: false,
      swapped: false,
    };
    /** The source's side lost mid-stream: the target removed its receive; the new snapshot stays on h1. */
    const sourceLost: Outcome = {
      says: (n) =>
        failedBefore(
          n,
          `${SEND_CUT} Chroot to ${L}/\\.plb-receiving-${n} \\| ERROR: (short read from stream: expected \\d+ read \\d+|unexpected EOF in stream) \\| At snapshot rootfs\\.`,
        ),
      target: finished,
      next: true,
      swapped: false,
    };
    /** The source's side lost after the target's swap: the clone is refreshed, h1 holds both snapshots. */
    const afterSwap = { target: finished, next: true, swapped: true };
    /** A fault of fault.sh on a host, and the action that undoes it. */
    const hostFault = (h: FleetHost, on: FaultAction, off: FaultAction) => ({
      strike: () => fault(h, on),
      heal: () => fault(h, off),
    });
    const CELLS: Cell[] = [
      {
        fault: "link cut on h2 mid-stream",
        ...hostFault(h2, "cut", "restore"),
        lingers: true,
        ...targetLost,
      },
      { fault: "link cut on h1 mid-stream", ...hostFault(h1, "cut", "restore"), ...sourceLost },
      { fault: "sshd killed on h2 mid-stream", ...hostFault(h2, "sshd-stop", "sshd-start"), ...targetLost },
      { fault: "sshd killed on h1 mid-stream", ...hostFault(h1, "sshd-stop", "sshd-start"), ...sourceLost },
      {
        fault: "h2's disk filled mid-stream",
        ...hostFault(h2, "fill", "unfill"),
        says: (n) =>
          failedBefore(
            n,
            `btrfs receive on the target exited with code 1: Chroot to ${L}/\\.plb-receiving-${n} \\| ERROR: writing to delta failed: No space left on device \\| At snapshot rootfs; the target's filesystem is full: free space on the target and run again\\.`,
          ),
        target: finished,
        next: false,
        swapped: false,
      },
      {
        fault: "provider and h1's script SIGKILLed after h2 swapped, before h1 keeps the new parent",
        at: { on: h1, point: "rotate", kill: "provider" },
        says: () => /^failed \(SIGKILL\)$/,
        ...afterSwap,
      },
      {
        // The held script runs on once released (a cut link does not end it): it keeps the new parent.
        fault: "link cut on h1 after h2 swapped, before h1 keeps the new parent",
        ...hostFault(h1, "cut", "restore"),
        at: { on: h1, point: "rotate", kill: "fault" },
        says: (n) =>
          new RegExp(
            `^failed: LxcSnapshotClone ${n} \\(from ${SRC}\\): on root@${re(h1.address)}:22: \`plb-clone xrotate ${L} ${SRC} ${n} [0-9a-f]+ [-0-9a-f]{36}\` (was killed or timed out\nhint: the SSH connection was lost while the command ran|was killed or timed out\nhint: no result within 20s \\(connection\\.commandTimeout\\))`,
          ),
        ...afterSwap,
        next: false,
      },
      {
        // Keeping the new parent renames a directory and deletes a subvolume: a full disk does not stop it.
        fault: "h1's disk filled after h2 swapped, before h1 keeps the new parent",
        ...hostFault(h1, "fill", "unfill"),
        at: { on: h1, point: "rotate", kill: "fault" },
        says: () => /^succeeded$/,
        ...afterSwap,
        next: false,
      },
      {
        fault: "sshd killed on h1 after h2 swapped, before h1 keeps the new parent",
        ...hostFault(h1, "sshd-stop", "sshd-start"),
        at: { on: h1, point: "rotate", kill: "fault" },
        says: (n) =>
          new RegExp(
            `^failed: LxcSnapshotClone ${n} \\(from ${SRC}\\): on root@${re(h1.address)}:22: \`plb-clone xrotate ${L} ${SRC} ${n} [0-9a-f]+ [-0-9a-f]{36}\` was killed or timed out\nhint: the SSH connection was lost while the command ran`,
          ),
        ...afterSwap,
      },
    ];
    CELLS.forEach((c, i) => {
      it(`${c.fault}: the clone stays whole, nothing is left that the next refresh does not use or remove, and it completes`, async () => {
        const name = `it-xfr-${i}`;
        names.push(name);
        await hostSh(h1, 'rm -f "$1/delta" "$1/etc/motd"', rootfsOf(SRC));
        const first = (await clone.create(args(SRC, name))).outs;
        const before = await manifest(h2, rootfsOf(name));
        // The change to send: 300 MiB of new data (mid-stream cells) or a few bytes (cells at a failpoint).
        const mib = c.at ? 0 : 300;
        await hostSh(
          h1,
          'head -c "$2" /dev/urandom >"$1/delta" && echo "$3" >"$1/etc/motd"',
          rootfsOf(SRC),
          String(mib * 2 ** 20),
          refreshed,
        );
        const want = await manifest(h1, rootfsOf(SRC));
        const quick = faultArgs(SRC, name);
        const inputs = { ...quick, revision: "2" };
        const fp = c.at ? failpoint(c.at.on, name, c.at.point) : undefined;
        await fp?.set();
        let how: string;
        try {
          const run =
            c.at?.kill === "provider"
              ? providerCall("update", ["", first, inputs])
              : {
                  kill: () => {},
                  done: clone.update("", first, inputs).then(
                    () => "succeeded",
                    (e: Error) => `failed: ${e.message}`,
                  ),
                };
          if (fp) {
            await fp.reached();
            if (c.at?.kill === "provider") {
              // The source host's side dies there (as in a crash of h1), and the provider with it: the shell
              // waiting at the failpoint (the parent of its `sleep 0.05`) is killed.
              await hostSh(
                h1,
                `for _ in $(seq 1 200); do
  for s in $(pgrep -x sleep); do
    [ "$(tr '\\0' ' ' </proc/$s/cmdline 2>/dev/null)" = "sleep 0.05 " ] || continue
    p=$(cut -d' ' -f4 /proc/$s/stat)
    case $(tr '\\0' ' ' </proc/$p/cmdline) in *plb-*) kill -KILL "$p" && exit 0 ;; esac
  done
  sleep 0.02
done
exit 1`,
              );
              run.kill();
            } else {
              // Struck: the held script goes on (if the fault left it alive) and the run ends as it will.
              await c.strike?.();
              await fp.release();
            }
          } else {
            await receivedPast(h2, `${L}/.plb-receiving-${name}/rootfs/delta`, 60);
            await c.strike?.();
          }
          how = await run.done;
        } finally {
          await fp?.release();
          await c.heal?.();
          await closeAllConnections();
        }
        console.log(`      faulted run: ${how.split("\n")[0]}`);
        expect(how).to.match(c.says(name));
        await scriptsEnded(h1, name);
        if (!c.lingers) await scriptsEnded(h2, name);
        // Whole: the clone's rootfs is the old tree until the swap, the refreshed one after it.
        expect(await targetState(h2, name)).to.equal(c.target(name));
        expect(await sourceOf(name)).to.equal(kept(name, c.next));
        expect(await manifest(h1, rootfsOf(SRC))).to.equal(want);
        const motd = (await hostSh(h2, 'cat "$1/etc/motd" 2>/dev/null || true', rootfsOf(name))).trim();
        if (c.swapped) expect(own(await manifest(h2, rootfsOf(name)))).to.equal(own(want));
        else expect(await manifest(h2, rootfsOf(name))).to.equal(before);
        // The next run: incremental, from the parent both hosts have (the new snapshot, if h2 took it).
        const parent = (await subvol(h2, `${L}/${name}/snaps/.plb-received/rootfs`))["Received UUID"];
        // After the swap, h2's parent is the refresh's new snapshot: still .plb-next-… on h1, or already
        // kept as .plb-sent-… if h1's side finished the rotation after the provider lost it.
        const sentNow = `${L}/${SRC}/snaps/${tail(sentDir(SRC, name))}/rootfs`;
        expect(parent).to.equal(
          c.swapped
            ? (await subvol(h1, c.next ? sentNow.replace("/.plb-sent-", "/.plb-next-") : sentNow)).UUID
            : first.sentUuid,
        );
        const { outs } = await clone.update("", first, args(SRC, name, { revision: "2" }));
        expect(outs.sentParentUuid).to.equal(parent);
        if (c.swapped) expect(outs.transferredBytes).to.be.lessThan(100_000);
        else expect(outs.transferredBytes).to.be.within(mib * 2 ** 20, mib * 2 ** 20 + 1_000_000);
        expect(outs.revision).to.equal("2");
        expect(own(await manifest(h2, rootfsOf(name)))).to.equal(own(want));
        expect(await targetState(h2, name)).to.equal(finished(name));
        expect(await sourceOf(name)).to.equal(kept(name, false));
        expect((await subvol(h1, `${sentDir(SRC, name)}/rootfs`)).UUID).to.equal(outs.sentUuid);
        expect(
          await hostSh(h2, 'pgrep -f "btrfs receiv[e] .*receiving-$1" >/dev/null && echo busy || true', name),
        ).to.equal("");
        matrix.push(
          `${c.fault} -> target: ${c.target(name) === finished(name) ? "the clone, whole" : "the clone, whole, + marker and partial receive"} (${motd === refreshed ? "refreshed" : "old tree"}); source: the kept parent${c.next ? " + the new snapshot" : ""}; next refresh sent ${outs.transferredBytes} bytes against ${c.swapped ? "the new snapshot" : "the kept parent"}`,
        );
        await clone.del("", outs);
        expect(await targetState(h2, name)).to.equal("");
        expect(await sourceOf(name)).to.equal(pristine(SRC));
        await hostSh(h1, 'rm -f "$1/delta" "$1/etc/motd"', rootfsOf(SRC));
      });
    });
    it("the source is as it was made (its tree; the mtimes of / and /etc aside)", async () => {
      const strip = (m: string) =>
        m
          .split("\n")
          .filter((l) => !/^(etc|\.)\t/.test(l))
          .join("\n");
      expect(strip(await manifest(h1, rootfsOf(SRC)))).to.equal(strip(srcManifest));
    });
  });

  describe("between btrfs-progs 6.2 (h1) and 6.14 (h4, Debian trixie's: scripts/fleet/btrfs-progs.sh)", () => {
    const SRC = "it-xfv1";
    const SRC4 = "it-xfv4";
    let m1: string;
    let m4: string;
    before(async () => {
      await run("bash", [fleetScript("btrfs-progs.sh"), "h4", "trixie"], { check: true, timeoutMs: 600_000 });
      m1 = await makeSource(h1, SRC, 20);
      m4 = await makeSource(h4, SRC4, 20);
    });
    after(async () => {
      await destroyContainers(h4, "it-xfv14", SRC4);
      await destroyContainers(h1, "it-xfv41", SRC);
      await run("bash", [fleetScript("btrfs-progs.sh"), "h4", "system"], { check: true, timeoutMs: 60_000 });
    });

    /** The stream version `btrfs send` writes on a host (its header's), by default and with --proto 2. */
    const streamVersion = (h: FleetHost, src: string, ...opts: string[]) =>
      hostSh(
        h,
        'set -e; btrfs subvolume snapshot -r "$1/$2/rootfs" "$1/it-xfhdr" >/dev/null; shift 2; v=$(btrfs send -q "$@" /var/lib/lxc/it-xfhdr | head -c 17 | od -An -tu4 -j13 -N4 | tr -d " "); btrfs subvolume delete /var/lib/lxc/it-xfhdr >/dev/null; echo "$v"',
        L,
        src,
        ...opts,
      );

    it("the hosts' btrfs differ; each sends stream version 1 by default and can send 2", async () => {
      expect((await hostSh(h1, "btrfs --version")).split("\n")[0]).to.equal("btrfs-progs v6.2");
      expect((await hostSh(h4, "btrfs --version")).split("\n")[0]).to.equal("btrfs-progs v6.14");
      expect(await streamVersion(h1, SRC)).to.equal("1\n");
      expect(await streamVersion(h4, SRC4)).to.equal("1\n");
      expect(await streamVersion(h1, SRC, "--proto", "2")).to.equal("2\n");
      expect(await streamVersion(h4, SRC4, "--proto", "2")).to.equal("2\n");
    });

    it("copies from h1 (6.2) to h4 (6.14)", async () => {
      await nextCreateCompletes(SRC, "it-xfv14", m1, h4, h1);
    });

    it("copies from h4 (6.14) to h1 (6.2)", async () => {
      await nextCreateCompletes(SRC4, "it-xfv41", m4, h1, h4);
    });
  });
});
