/**
 * Cross-host clones against real hosts: a container with a hostile tree, a NOCOW file, an immutable and an
 * append-only file on h1, copied to h2 with btrfs send and receive relayed through this process; the copy
 * is lossless (manifest with inode flags), boots on h2 as itself with fresh MACs, and is deleted with
 * everything kept for it on both hosts. Refusals before anything changes, a receive left by an interrupted
 * run, and the relay's memory and progress on a 1 GB source.
 */
import * as path from "node:path";
import { expect } from "chai";
import * as clone from "../../provider/clone/provider";
import { parseCrossHostFacts } from "../../provider/clone/xhost";
import { connectionSchema } from "../../provider/core/connection";
import { rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { snapshotArgsSchema } from "../../provider/snapshot/inputs";
import * as snapshot from "../../provider/snapshot/provider";
import { scriptArgv } from "../../provider/transport/remote-scripts";
import { closeAllConnections, openRemote } from "../../provider/transport/ssh";
import { type FleetHost, fault, hostExec, manifest } from "../support/fleet";
import { destroyContainers, failpoint, hostSh, makeBusybox, rejectionOf, waitFor } from "../support/host";
import {
  args,
  connTo,
  exists,
  host,
  inv,
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
const h3 = host("h3");

/** Runs `work`, collecting the provider's log lines (console.log) meanwhile. */
async function withLog<T>(work: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => {
    lines.push(a.map(String).join(" "));
  };
  try {
    return { value: await work(), lines };
  } finally {
    console.log = orig;
  }
}

/**
 * The hostile tree, the flags and the odd files of the source's rootfs (run in it), with a symlink to the
 * config the clone `clone` will have on the target.
 */
const hostile = (clone: string) => `set -e
ln -s /etc/shadow shadow-link
ln -s ../../../../../etc host-etc
ln -s /var/lib/lxc/${clone}/config clone-config-link
mkdir -p etc && ln -sf /etc/passwd etc/passwd.link
mkdir -p "odd dir" && echo x >"odd dir/$(printf 'new\\nline')" && echo y >"odd dir/-rf" && echo z >"odd dir/$(printf '\\351t\\351')"
mkdir -p var/log/journal && chattr +C var/log/journal && head -c 3000000 /dev/urandom >var/log/journal/system.journal
: >nocow.db && chattr +C nocow.db && head -c 200000 /dev/urandom >>nocow.db && ln nocow.db nocow.db.link
echo locked >etc/locked && chattr +i etc/locked
echo log >var/log/app.log && chattr +a var/log/app.log
mkdir -p srv/frozen && echo in >srv/frozen/file && touch -d '2001-02-03 04:05:06' srv/frozen && chattr +i srv/frozen
echo attr >xa && setfattr -n user.test -v hello xa && setfacl -m u:1234:rwx xa
echo c >compressed && btrfs property set compressed compression zstd
mknod blk b 7 200 && mknod chr c 1 7 && mkfifo fifo
echo a >noatime && chattr +A noatime
touch -h -d '2002-03-04 05:06:07' shadow-link
`;

describe("LxcSnapshotClone across hosts (h1 -> h2)", function () {
  this.timeout(900_000);
  after(() => closeAllConnections());

  describe("a hostile busybox container with NOCOW, immutable and append-only files", () => {
    const SRC = "it-xsrc";
    const CL = "it-xcl";
    const MAC = "00:16:3e:71:72:73";
    let outs: clone.CloneOutputs;
    let srcManifest: string;
    before(async () => {
      await destroyContainers(h2, CL);
      await destroyContainers(h1, SRC);
      await makeBusybox(
        h1,
        SRC,
        `lxc.net.1.type = macvlan\nlxc.net.1.link = eth0\nlxc.net.1.macvlan.mode = bridge\nlxc.net.1.hwaddr = ${MAC}\nlxc.uts.name = ${SRC}\n`,
      );
      await hostSh(h1, `cd "$1" && ${hostile(CL)}`, `${L}/${SRC}/rootfs`);
      await rootfs.create(
        rootfsArgsSchema.parse({ connection: connTo(h1), container: SRC, nestedSubvolumes: "fail" }),
      );
      srcManifest = await manifest(h1, `${L}/${SRC}/rootfs`);
    });
    after(async () => {
      await destroyContainers(h2, CL);
      await destroyContainers(h1, SRC);
    });

    it("copies it to h2 losslessly: the clone's tree equals the sent snapshot's, flags included", async () => {
      const { value, lines } = await withLog(() => clone.create(args(SRC, CL)));
      outs = value.outs;
      expect(value.id).to.equal(`${h2.address}:22:${L}/${CL}`);
      expect(outs).to.include({
        state: "STOPPED",
        actualHostname: CL,
        adopted: false,
        target: `root@${h2.address}:22`,
        rootfsPath: `${L}/${CL}/rootfs`,
      });
      expect(outs.transferredBytes).to.be.greaterThan(3_000_000);
      // The snapshot kept on h1, read-only: what was sent.
      const sent = await subvol(h1, `${sentDir(SRC, CL)}/rootfs`);
      expect(sent.ro).to.equal("ro=true");
      expect(outs.sentUuid).to.equal(sent.UUID);
      // The parent kept on h2: the receive of it, read-only; the clone's rootfs a writable snapshot of it.
      const received = await subvol(h2, `${L}/${CL}/snaps/.plb-received/rootfs`);
      expect(received["Received UUID"]).to.equal(sent.UUID);
      expect(received.ro).to.equal("ro=true");
      const root = await subvol(h2, `${L}/${CL}/rootfs`);
      expect(root["Parent UUID"]).to.equal(received.UUID);
      expect(root.ro).to.equal("ro=false");
      expect(outs.parentUuid).to.equal(received.UUID);
      // Lossless: the sent snapshot is the source's tree; the clone's equals it but for what the identity
      // rewrite wrote (/etc/hostname and /etc/hosts, by rename in /etc, whose mtime that changes).
      const sentManifest = await manifest(h1, `${sentDir(SRC, CL)}/rootfs`);
      expect(sentManifest).to.equal(srcManifest);
      const cloneManifest = await manifest(h2, `${L}/${CL}/rootfs`);
      expect(cloneManifest.split("\n").filter((l) => !rewritten(l))).to.deep.equal(
        sentManifest.split("\n").filter((l) => !rewritten(l)),
      );
      // The flags really are there (the manifest's last columns): NOCOW, immutable, append-only.
      expect(
        await hostSh(
          h2,
          'cd "$1" && lsattr -d nocow.db var/log/journal/system.journal etc/locked var/log/app.log srv/frozen',
          `${L}/${CL}/rootfs`,
        ),
      ).to.match(
        /^-+C-* nocow.db\n-+C-* var\/log\/journal\/system.journal\n-*i-* etc\/locked\n-*a-* var\/log\/app.log\n-*i-* srv\/frozen\n$/,
      );
      // Symlinks to host paths are symlinks in the clone, their targets on h2 untouched.
      expect(await hostSh(h2, 'readlink "$1/shadow-link" "$1/host-etc"', `${L}/${CL}/rootfs`)).to.equal(
        "/etc/shadow\n../../../../../etc\n",
      );
      // The config: the source's, with the clone's rootfs, name and fresh MACs.
      const cfg = await hostSh(h2, 'cat "$1"', `${L}/${CL}/config`);
      expect(cfg).to.include(`lxc.rootfs.path = btrfs:${L}/${CL}/rootfs\n`);
      expect(cfg).to.include(`lxc.uts.name = ${CL}\n`);
      expect(cfg).to.not.include(MAC);
      expect(outs.hwaddrs).to.have.length(1);
      expect(outs.hwaddrs[0]).to.match(/^00:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
      expect(await hostSh(h2, 'cat "$1"', `${L}/${CL}/rootfs/etc/hostname`)).to.equal(`${CL}\n`);
      // Progress in the log, and nothing left over on either host.
      expect(
        lines.some((l) =>
          /^\[lxc-btrfs\] clone it-xcl on root@10\.213\.0\.12:22: relayed \d+\.\d MiB in /.test(l),
        ),
      ).to.equal(true);
      expect(await exists(h2, `${L}/.plb-receiving-${CL}`)).to.equal(false);
      expect(await exists(h2, `${L}/.plb-making-${CL}`)).to.equal(false);
      expect(await exists(h2, `${L}/${CL}/rootfs.plb-new`)).to.equal(false);
      expect(await exists(h2, `${L}/${CL}/rootfs.plb-nocow`)).to.equal(false);
      // The source is untouched.
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
    });

    it("boots on h2 as itself, with MACs unique there and different from the source's", async () => {
      outs = (await clone.update("", outs, args(SRC, CL, { start: true }))).outs;
      expect(outs.state).to.equal("RUNNING");
      expect((await hostExec(h2, ["lxc-attach", "-n", CL, "--", "/bin/hostname"])).stdout).to.equal(
        `${CL}\n`,
      );
      const mac = await hostExec(h2, ["lxc-attach", "-n", CL, "--", "cat", "/sys/class/net/eth0/address"]);
      expect(mac.stdout).to.equal(`${outs.hwaddrs[0]}\n`);
      expect(mac.stdout).to.not.equal(`${MAC}\n`);
      expect(
        await hostSh(
          h2,
          'cat /var/lib/lxc/*/config | sed -n "s/^lxc.net.[0-9]*.hwaddr = //p" | sort | uniq -d',
        ),
      ).to.equal("");
    });

    it("reads without drift, and takes the existing copy over on a create again", async () => {
      const r = await clone.read("", outs);
      expect(r.props?.drift).to.deep.equal([]);
      expect(r.props?.sentUuid).to.equal(outs.sentUuid);
      const again = await clone.create(args(SRC, CL, { start: true }));
      expect(again.outs).to.include({
        adopted: true,
        subvolumeUuid: outs.subvolumeUuid,
        sentUuid: outs.sentUuid,
      });
    });

    /** Everything a refresh keeps or leaves beside the clone on each host, as names. */
    const kept = async () => ({
      h1: (await hostSh(h1, 'ls -A "$1/snaps" | sort', `${L}/${SRC}`)).trim().split("\n"),
      h2: (
        await hostSh(
          h2,
          'cd "$1" && { ls -A | grep -- "^\\.plb-.*-$2$" || true; ls -A "$2"; ls -A "$2/snaps"; } | sort',
          L,
          CL,
        )
      )
        .trim()
        .split("\n"),
    });
    const afterRefresh = (sentTag: string) => ({
      h1: [sentTag],
      h2: [".plb-received", "config", "rootfs", "snaps"].sort(),
    });

    /**
     * The lines of a running clone's manifest that differ from the source's, but for what the identity
     * rewrite wrote (/etc/hostname and /etc/hosts, by rename in /etc) and what booting busybox writes.
     */
    const differences = (clone: string, source: string) => {
      const ours = (l: string) =>
        /^(etc|etc\/hostname|etc\/hosts|\.|var\/log|var\/log\/messages|var\/run|var\/run\/syslogd\.pid)\t/.test(
          l,
        );
      const a = new Set(clone.split("\n").filter((l) => !ours(l)));
      const b = new Set(source.split("\n").filter((l) => !ours(l)));
      return [
        ...[...a].filter((l) => !b.has(l)).map((l) => `+${l}`),
        ...[...b].filter((l) => !a.has(l)).map((l) => `-${l}`),
      ];
    };

    it('refuses to refresh a running clone with ifRunning "fail", before anything is sent', async () => {
      const before = await kept();
      const err = await rejectionOf(clone.update("", outs, args(SRC, CL, { start: true, revision: "2" })));
      expect(err).to.equal(
        `LxcSnapshotClone ${CL} (from ${SRC}) on root@${h2.address}:22: the clone ${CL} is RUNNING; a refresh replaces its rootfs: stop it, or set ifRunning: "restart". Nothing was changed.`,
      );
      expect(await kept()).to.deep.equal(before);
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
    });

    it("refreshes it with an incremental stream: what changed on h1 arrives, the clone's own changes go, its MACs stay", async () => {
      // On h1, about 1% of the tree's bytes change: a new 1 MiB file, a new NOCOW file, one file
      // rewritten, one removed, an xattr changed. On h2, the clone writes a file of its own.
      await hostSh(
        h1,
        `cd "$1" && head -c 1048576 /dev/urandom >srv/new-data && : >new.nocow && chattr +C new.nocow &&
head -c 65536 /dev/urandom >>new.nocow && echo changed >etc/motd && rm -- "odd dir/-rf" && setfattr -n user.test -v bye xa`,
        `${L}/${SRC}/rootfs`,
      );
      const newSrc = await manifest(h1, `${L}/${SRC}/rootfs`);
      await hostSh(h2, 'echo mine >"$1/clone-only"', `${L}/${CL}/rootfs`);
      const prev = outs;
      const { value, lines } = await withLog(() =>
        clone.update("", prev, args(SRC, CL, { start: true, revision: "2", ifRunning: "restart" })),
      );
      outs = value.outs;
      // Incremental: sent against the snapshot kept from the first copy, and about the size of the change.
      expect(outs.sentParentUuid).to.equal(prev.sentUuid);
      expect(outs.sentUuid).to.not.equal(prev.sentUuid);
      expect(outs.transferredBytes).to.be.within(1_048_576 + 65_536, 1_048_576 + 65_536 + 200_000);
      expect(lines.join("\n")).to.include(`sent against the one both hosts kept (${prev.sentUuid})`);
      // The clone: the source's new tree (but for the identity files), restarted, same MACs and name.
      expect(outs).to.include({ state: "RUNNING", actualHostname: CL, revision: "2" });
      expect(outs.hwaddrs).to.deep.equal(prev.hwaddrs);
      expect(outs.subvolumeUuid).to.not.equal(prev.subvolumeUuid);
      expect(differences(await manifest(h2, `${L}/${CL}/rootfs`), newSrc)).to.deep.equal([]);
      expect(await exists(h2, `${L}/${CL}/rootfs/clone-only`)).to.equal(false);
      expect(
        await hostSh(h2, 'cd "$1" && lsattr -d new.nocow nocow.db etc/locked', `${L}/${CL}/rootfs`),
      ).to.match(/^-+C-* new.nocow\n-+C-* nocow.db\n-*i-* etc\/locked\n$/);
      expect((await hostExec(h2, ["lxc-attach", "-n", CL, "--", "/bin/hostname"])).stdout).to.equal(
        `${CL}\n`,
      );
      // Exactly one parent kept per pair, on each host: the new snapshot and its receive.
      const sent = await subvol(h1, `${sentDir(SRC, CL)}/rootfs`);
      expect(sent.UUID).to.equal(outs.sentUuid);
      const received = await subvol(h2, `${L}/${CL}/snaps/.plb-received/rootfs`);
      expect(received["Received UUID"]).to.equal(outs.sentUuid);
      expect(outs.parentUuid).to.equal(received.UUID);
      expect(await kept()).to.deep.equal(afterRefresh(path.basename(sentDir(SRC, CL))));
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(newSrc);
      srcManifest = newSrc;
      // A read after it finds no drift; the same revision again changes nothing.
      expect((await clone.read("", outs)).props?.drift).to.deep.equal([]);
      expect(
        clone.diffClone(outs, args(SRC, CL, { start: true, revision: "2", ifRunning: "restart" })),
      ).to.deep.equal({
        changes: false,
        replaces: [],
        deleteBeforeReplace: false,
      });
    });

    let lastMotd = "changed";
    for (const point of ["receive", "refresh", "swap", "keep"] as const) {
      it(`killed at "${point}" on h2 during a refresh: the clone stays whole, the next refresh completes incrementally`, async () => {
        await hostSh(h1, 'echo "$2" >"$1/etc/motd"', `${L}/${SRC}/rootfs`, point);
        const want = await manifest(h1, `${L}/${SRC}/rootfs`);
        const fp = failpoint(h2, CL, point);
        await fp.set();
        const next = args(SRC, CL, { start: true, revision: `cut-${point}`, ifRunning: "restart" });
        const run = providerCall("update", ["", outs, next]);
        try {
          await fp.reached();
          // The host's side dies there (as in a crash of h2), and the provider with it.
          await hostSh(h2, 'pkill -KILL -f "^sh -c .* plb-clone x[a-z]* $1 - $2( |$)"', L, CL);
          run.kill();
          expect(await run.done).to.match(/^failed/);
        } finally {
          await fp.release();
          await closeAllConnections();
        }
        // Whole: a rootfs subvolume in place, the old tree until the swap, the new one after it.
        expect(await hostSh(h2, 'cat "$1/etc/motd"', `${L}/${CL}/rootfs`)).to.equal(
          `${point === "keep" ? point : lastMotd}\n`,
        );
        lastMotd = point;
        expect((await subvol(h2, `${L}/${CL}/rootfs`)).ro).to.equal("ro=false");
        const prev = outs;
        outs = (await clone.update("", prev, next)).outs;
        expect(outs.sentParentUuid).to.be.a("string");
        expect(outs.transferredBytes).to.be.lessThan(100_000);
        expect(outs.state).to.equal("RUNNING");
        expect(await hostSh(h2, 'cat "$1/etc/motd"', `${L}/${CL}/rootfs`)).to.equal(`${point}\n`);
        expect(differences(await manifest(h2, `${L}/${CL}/rootfs`), want)).to.deep.equal([]);
        expect(await kept()).to.deep.equal(afterRefresh(path.basename(sentDir(SRC, CL))));
        expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(want);
        srcManifest = want;
      });
    }

    it("deletes the clone on h2 with its received parent, and the kept sent snapshot on h1", async () => {
      await clone.del("", outs);
      expect(await exists(h2, `${L}/${CL}`)).to.equal(false);
      // Nothing of this clone's is left beside the containers (a marker, a receive).
      expect(await hostSh(h2, 'ls -a "$1" | grep -c -- "^\\.plb-.*-it-xcl$" || true', L)).to.equal("0\n");
      expect(await exists(h1, sentDir(SRC, CL))).to.equal(false);
      expect(await hostSh(h1, 'ls -a "$1/snaps"', `${L}/${SRC}`)).to.equal(".\n..\n");
      expect(await manifest(h1, `${L}/${SRC}/rootfs`)).to.equal(srcManifest);
      // Deleting again is a no-op.
      await clone.del("", outs);
    });
  });

  describe("a booted Debian container with systemd (NOCOW journal, immutable and append-only files)", () => {
    const SRC = "it-xdeb";
    const CL = "it-xdebc";
    const image = `${inv.cacheDir}/debian-bookworm-systemd.lxc`;
    let outs: clone.CloneOutputs;
    let srcManifest: string;
    /** What systemd in the running container says once its bus is up: "running", "degraded", ... */
    const systemdState = async (h: FleetHost, name: string) => {
      let st = "";
      // Until systemd has its bus up, systemctl says "Failed to connect to bus" and nothing on stdout.
      await waitFor(
        `systemd in ${name} on ${h.name}`,
        async () => {
          st = (
            await hostSh(
              h,
              'timeout 60 lxc-attach -n "$1" -- systemctl is-system-running --wait 2>/dev/null || true',
              name,
            )
          ).trim();
          return st !== "";
        },
        120_000,
      );
      return st;
    };
    /** Starts the container and waits for systemd (systemdState). */
    const boot = async (h: FleetHost, name: string) => {
      await hostExec(h, ["lxc-start", "-n", name], { check: true });
      return systemdState(h, name);
    };
    before(async () => {
      await destroyContainers(h2, CL);
      await destroyContainers(h1, SRC);
      await hostExec(
        h1,
        [
          "lxc-create",
          "-n",
          SRC,
          "-t",
          "local",
          "--",
          "--metadata",
          `${image}/meta.tar.xz`,
          "--fstree",
          `${image}/rootfs.tar.xz`,
        ],
        { check: true },
      );
      // Booted once, as users' containers are: journald writes its NOCOW journal, rotated, then stopped.
      expect(await boot(h1, SRC)).to.match(/^(running|degraded)$/);
      await hostExec(
        h1,
        ["lxc-attach", "-n", SRC, "--", "sh", "-c", "journalctl --flush && journalctl --rotate"],
        {
          check: true,
        },
      );
      await hostExec(h1, ["lxc-stop", "-n", SRC, "-t", "60"], { check: true });
      // The hostile tree (symlinks to host paths, odd names, devices, xattrs and an ACL, the compression
      // property), an immutable and an append-only file, planted in the booted Debian tree.
      await hostSh(h1, `cd "$1" && ${hostile(CL)}`, `${L}/${SRC}/rootfs`);
      await rootfs.create(rootfsArgsSchema.parse({ connection: connTo(h1), container: SRC }));
      srcManifest = await manifest(h1, `${L}/${SRC}/rootfs`);
      // The active journal is NOCOW (journald makes archived ones COW again when it rotates).
      expect(srcManifest).to.match(
        /\nvar\/log\/journal\/[0-9a-f]{32}\/system\.journal\tf\t[^\n]*flags=[^\t]*C/,
      );
    });
    after(async () => {
      await destroyContainers(h2, CL);
      await destroyContainers(h1, SRC);
    });

    it("copies it to h2 with its flags and its hostile tree, and it boots there with systemd as itself", async () => {
      const hostFiles = "sha256sum /etc/shadow /etc/passwd && ls -la --time-style=+%s /etc | sha256sum";
      const h2Before = await hostSh(h2, hostFiles);
      ({ outs } = await clone.create(args(SRC, CL, { start: false })));
      const got = await manifest(h2, `${L}/${CL}/rootfs`);
      expect(got.split("\n").filter((l) => !rewritten(l))).to.deep.equal(
        srcManifest.split("\n").filter((l) => !rewritten(l)),
      );
      // The hostile entries arrived as they are (the manifest above holds their types, modes, xattrs, ACL
      // and flags); what their symlinks name on h2, and the clone's own config, were not followed.
      expect(
        await hostSh(
          h2,
          'cd "$1" && readlink shadow-link host-etc clone-config-link etc/passwd.link && stat -c "%F %t:%T" blk chr fifo && lsattr -d etc/locked var/log/app.log srv/frozen nocow.db var/log/journal/system.journal && btrfs property get compressed compression && getfattr --only-values -n user.test xa && echo && getfacl -cp xa | grep "^user:1234"',
          `${L}/${CL}/rootfs`,
        ),
      ).to.match(
        new RegExp(
          `^/etc/shadow\n\\.\\./\\.\\./\\.\\./\\.\\./\\.\\./etc\n/var/lib/lxc/${CL}/config\n/etc/passwd\nblock special file 7:c8\ncharacter special file 1:7\nfifo 0:0\n-*i-* etc/locked\n-*a-* var/log/app\\.log\n-*i-* srv/frozen\n-*C-* nocow\\.db\n-*C-* var/log/journal/system\\.journal\ncompression=zstd\nhello\nuser:1234:rwx\n$`,
        ),
      );
      expect(await hostSh(h2, hostFiles)).to.equal(h2Before);
      expect(await hostSh(h2, 'grep -c "^lxc.uts.name = $2$" "$1"', `${L}/${CL}/config`, CL)).to.equal("1\n");
      expect(await boot(h2, CL)).to.match(/^(running|degraded)$/);
      expect((await hostExec(h2, ["lxc-attach", "-n", CL, "--", "hostname"])).stdout).to.equal(`${CL}\n`);
      const journals = await hostSh(
        h2,
        'find "$1/var/log/journal" -name "*.journal" -exec lsattr {} + | grep -c "^[^ ]*C" || true',
        `${L}/${CL}/rootfs`,
      );
      expect(Number(journals)).to.be.greaterThan(0);
      outs = (await clone.read("", outs)).props as clone.CloneOutputs;
      expect(outs.state).to.equal("RUNNING");
    });

    it("refreshes it while it runs (ifRunning: restart): only the change is sent, and it boots again", async () => {
      await hostSh(h1, 'echo v2 >"$1/etc/refresh-marker"', `${L}/${SRC}/rootfs`);
      const prev = outs;
      outs = (await clone.update("", prev, args(SRC, CL, { revision: "2", ifRunning: "restart" }))).outs;
      expect(outs.sentParentUuid).to.equal(prev.sentUuid);
      expect(outs.transferredBytes).to.be.lessThan(100_000);
      console.log(
        `      Debian copy: ${prev.transferredBytes} bytes sent in full, ${outs.transferredBytes} to refresh`,
      );
      expect(outs.state).to.equal("RUNNING");
      expect(await hostSh(h2, 'cat "$1/etc/refresh-marker"', `${L}/${CL}/rootfs`)).to.equal("v2\n");
      expect(await systemdState(h2, CL)).to.match(/^(running|degraded)$/);
      expect((await hostExec(h2, ["lxc-attach", "-n", CL, "--", "hostname"])).stdout).to.equal(`${CL}\n`);
      await clone.del("", outs);
      expect(await exists(h2, `${L}/${CL}`)).to.equal(false);
      expect(await hostSh(h1, 'ls -A "$1/snaps"', `${L}/${SRC}`)).to.equal("");
    });
  });

  describe("refusals with nothing changed, and what an interrupted run left", () => {
    const SRC = "it-xsrc2";
    before(async () => {
      await destroyContainers(h1, SRC);
      await makeBusybox(h1, SRC, "lxc.net.0.type = empty\n");
      await rootfs.create(rootfsArgsSchema.parse({ connection: connTo(h1), container: SRC }));
    });
    after(async () => {
      await destroyContainers(h2, "it-xtaken", "it-xcl2");
      await destroyContainers(h3, "it-xcl3");
      await destroyContainers(h1, SRC);
    });

    const snapshotOf = async (h: FleetHost) =>
      (await hostSh(h, 'ls -a "$1"; ls -a "$2/snaps" 2>/dev/null || true', L, `${L}/${SRC}`)).trim();

    it("reads the target's filesystem and free space (btrfs filesystem usage's estimate)", async () => {
      const out = await openRemote(connectionSchema.parse(connTo(h2))).check(
        scriptArgv("clone", ["xtarget", L, "-", "it-none"]),
      );
      const facts = parseCrossHostFacts(out.stdout);
      const df = Number((await hostSh(h2, 'df -B1 --output=avail "$1" | tail -n 1', L)).trim());
      expect(facts).to.include({ lxcFstype: "btrfs", receiving: "missing" });
      expect(facts.received).to.equal(undefined);
      // The estimate is of the same free space df sees (within a few hundred MiB of metadata reserve).
      expect(Math.abs((facts.freeBytes ?? 0) - df)).to.be.lessThan(1024 * 2 ** 20);
      expect(facts.freeBytes).to.be.greaterThan(2 ** 30);
    });

    it("refuses a target whose lxcPath is not btrfs", async () => {
      const before1 = await snapshotOf(h1);
      const before3 = await snapshotOf(h3);
      const msg = await rejectionOf(clone.create(args(SRC, "it-xcl3", {}, h3)));
      expect(msg).to.equal(
        `LxcSnapshotClone it-xcl3 (from ${SRC}) on root@${h3.address}:22: the target's ${L} is on ext2/ext3, not btrfs; a cross-host clone needs btrfs on both hosts. Nothing was changed.`,
      );
      expect(await snapshotOf(h1)).to.equal(before1);
      expect(await snapshotOf(h3)).to.equal(before3);
    });

    it("refuses a target that has another container by that name", async () => {
      await makeBusybox(h2, "it-xtaken");
      const before = await manifest(h2, `${L}/it-xtaken`);
      const before1 = await snapshotOf(h1);
      const msg = await rejectionOf(clone.create(args(SRC, "it-xtaken")));
      expect(msg).to.equal(
        `LxcSnapshotClone it-xtaken (from ${SRC}) on root@${h2.address}:22: the target already has a container named it-xtaken that is not this clone; choose another name or remove it. Nothing was changed.`,
      );
      expect(await manifest(h2, `${L}/it-xtaken`)).to.equal(before);
      expect(await snapshotOf(h1)).to.equal(before1);
    });

    it('refuses a running source with ifSourceRunning "fail", and copies it frozen with "freeze"', async () => {
      await hostSh(h1, 'lxc-start -n "$1" && lxc-wait -n "$1" -s RUNNING -t 30', SRC);
      try {
        const before1 = await snapshotOf(h1);
        const before2 = await snapshotOf(h2);
        const msg = await rejectionOf(clone.create(args(SRC, "it-xcl2")));
        expect(msg).to.equal(
          `LxcSnapshotClone it-xcl2 (from ${SRC}) on root@${h1.address}:22: source ${SRC} is RUNNING; stop it, or set ifSourceRunning: "freeze" or "restart". Nothing was changed.`,
        );
        expect(await snapshotOf(h1)).to.equal(before1);
        expect(await snapshotOf(h2)).to.equal(before2);
        const { outs } = await clone.create(args(SRC, "it-xcl2", { ifSourceRunning: "freeze" }));
        expect(outs.state).to.equal("STOPPED");
        expect((await hostSh(h1, 'lxc-info -n "$1" -s -H', SRC)).trim()).to.equal("RUNNING");
        await clone.del("", outs);
      } finally {
        await hostSh(h1, 'lxc-stop -k -n "$1"', SRC);
      }
    });

    it("copies a read-only snapshot of the source (snapshot), keeping a snapshot of it as the sent one", async () => {
      const snap = await snapshot.create(
        snapshotArgsSchema.parse({ connection: connTo(h1), container: SRC, name: "it-pre" }),
      );
      await hostSh(h1, 'echo after-the-snapshot >"$1/rootfs/after"', `${L}/${SRC}`);
      const { outs } = await clone.create(args(SRC, "it-xcl2", { snapshot: "it-pre" }));
      const sent = await subvol(h1, `${sentDir(SRC, "it-xcl2")}/rootfs`);
      expect(sent["Parent UUID"]).to.equal(snap.outs.uuid);
      expect(outs.sentUuid).to.equal(sent.UUID);
      expect(await exists(h2, `${L}/it-xcl2/rootfs/after`)).to.equal(false);
      expect(await manifest(h2, `${L}/it-xcl2/snaps/.plb-received/rootfs`)).to.equal(
        await manifest(h1, `${L}/${SRC}/snaps/it-pre/rootfs`),
      );
      await clone.del("", outs);
      await snapshot.del("", snap.outs);
      expect(await hostSh(h1, 'ls -a "$1/snaps"', `${L}/${SRC}`)).to.equal(".\n..\n");
    });

    it("a container by that name made on the target during the copy is refused and left alone", async () => {
      const fp = failpoint(h2, "it-xrace", "place");
      await fp.set();
      try {
        const create = rejectionOf(clone.create(args(SRC, "it-xrace")));
        await fp.reached();
        await makeBusybox(h2, "it-xrace");
        const theirs = await manifest(h2, `${L}/it-xrace`);
        await fp.release();
        expect(await create).to.match(
          new RegExp(
            `^LxcSnapshotClone it-xrace \\(from ${SRC}\\): on root@${h2.address.replace(/\./g, "\\.")}:22: .* exited with code 4: ${L}/it-xrace already exists`,
          ),
        );
        expect(await manifest(h2, `${L}/it-xrace`)).to.equal(theirs);
        expect(await exists(h2, `${L}/.plb-receiving-it-xrace`)).to.equal(false);
        expect(await exists(h2, `${L}/.plb-making-it-xrace`)).to.equal(false);
        expect(await exists(h1, sentDir(SRC, "it-xrace"))).to.equal(false);
      } finally {
        await fp.release();
        await destroyContainers(h2, "it-xrace");
      }
    });

    it("removes a receive and a half-placed clone left by an interrupted run, and copies again", async () => {
      // What a provider killed during the receive leaves: the marker, a partial subvolume in the
      // receiving directory, and (killed while placing) the clone's directory with a received parent.
      await hostSh(
        h2,
        `cd "$1" && : >.plb-making-it-xcl2 && mkdir .plb-receiving-it-xcl2 && btrfs subvolume create .plb-receiving-it-xcl2/rootfs >/dev/null &&
         echo partial >.plb-receiving-it-xcl2/rootfs/file && mkdir -p it-xcl2/snaps/.plb-received &&
         btrfs subvolume create it-xcl2/snaps/.plb-received/rootfs >/dev/null && btrfs property set -ts it-xcl2/snaps/.plb-received/rootfs ro true`,
        L,
      );
      const { outs } = await clone.create(args(SRC, "it-xcl2"));
      expect(outs.adopted).to.equal(false);
      expect(await exists(h2, `${L}/.plb-receiving-it-xcl2`)).to.equal(false);
      expect(await exists(h2, `${L}/.plb-making-it-xcl2`)).to.equal(false);
      const received = await subvol(h2, `${L}/it-xcl2/snaps/.plb-received/rootfs`);
      expect(received["Received UUID"]).to.equal(outs.sentUuid);
      await clone.del("", outs);
      expect(await exists(h2, `${L}/it-xcl2`)).to.equal(false);
    });

    it("refuses a receiving directory that is a symlink, and leaves what it points at alone", async () => {
      await hostSh(
        h2,
        'mkdir -p /root/it-xtarget && echo keep >/root/it-xtarget/f && ln -s /root/it-xtarget "$1/.plb-receiving-it-xcl2"',
        L,
      );
      try {
        const msg = await rejectionOf(clone.create(args(SRC, "it-xcl2")));
        expect(msg).to.equal(
          `LxcSnapshotClone it-xcl2 (from ${SRC}) on root@${h2.address}:22: ${L}/.plb-receiving-it-xcl2 on the target is a symlink; remove it (what it points at is left alone). Nothing was changed.`,
        );
        expect(await hostSh(h2, "cat /root/it-xtarget/f")).to.equal("keep\n");
        expect(await exists(h2, `${L}/it-xcl2`)).to.equal(false);
      } finally {
        await hostSh(h2, 'rm -f "$1/.plb-receiving-it-xcl2"; rm -rf /root/it-xtarget', L);
      }
    });
  });

  describe("the relay", () => {
    const SRC = "it-xbig";
    const CL = "it-xbigc";
    before(async () => {
      await destroyContainers(h2, CL);
      await destroyContainers(h1, SRC);
      await makeBusybox(h1, SRC, "lxc.net.0.type = empty\n");
      await rootfs.create(rootfsArgsSchema.parse({ connection: connTo(h1), container: SRC }));
      // 1 GiB of incompressible data in the converted rootfs.
      await hostSh(h1, 'head -c 1073741824 /dev/urandom >"$1/big"', `${L}/${SRC}/rootfs`);
    });
    after(async () => {
      await destroyContainers(h2, CL, "it-xkill", "it-xcut");
      await hostSh(
        h2,
        'cd "$1" && rm -f .plb-making-it-xkill .plb-making-it-xcut && for d in .plb-receiving-it-xkill .plb-receiving-it-xcut; do if [ -d "$d" ]; then btrfs subvolume delete "$d"/* >/dev/null; rm -rf "$d"; fi; done',
        L,
      );
      await destroyContainers(h1, SRC);
    });

    it("relays 1 GiB with the provider's memory bounded, reporting progress every few seconds", async () => {
      global.gc?.();
      const base = process.memoryUsage().rss;
      let peak = base;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 50);
      let res: Awaited<ReturnType<typeof clone.create>>;
      let lines: string[];
      try {
        ({ value: res, lines } = await withLog(() => clone.create(args(SRC, CL))));
      } finally {
        clearInterval(sampler);
      }
      const growth = peak - base;
      const progress = lines.filter((l) => / relayed \d+\.\d MiB in \d+\.\d s \(/.test(l));
      console.log(
        `      relayed ${res.outs.transferredBytes} bytes; provider RSS ${Math.round(base / 2 ** 20)} MiB -> peak ${Math.round(peak / 2 ** 20)} MiB; ${progress.length} progress lines, last: ${progress.at(-1)}`,
      );
      expect(res.outs.transferredBytes).to.be.greaterThan(2 ** 30);
      expect(growth).to.be.lessThan(200 * 2 ** 20);
      expect(progress.length).to.be.greaterThan(1);
      expect(await sum(h2, `${L}/${CL}/rootfs/big`)).to.equal(await sum(h1, `${L}/${SRC}/rootfs/big`));
      await clone.del("", res.outs);
    });

    it("a receive an earlier create left waiting (its close lost with a cut link) is ended by the next create", async () => {
      const name = "it-xstale";
      const rd = `${L}/.plb-receiving-${name}`;
      // A receive as xreceive starts one, waiting on a pipe nobody writes to, its PID in the marker.
      const pid = (
        await hostSh(
          h2,
          `set -e; mkdir -p "$1"; f=$(mktemp -u /tmp/plb-stale.XXXXXX); mkfifo "$f"
(sleep 600 >"$f" 2>/dev/null </dev/null &)
setsid sh -c 'echo $$; exec btrfs receive -C -E 1 -e -- "$1"' sh "$1" <"$f" >"$f.pid" 2>/dev/null &
sleep 1; cat "$f.pid" | tee "$2"; rm -f "$f" "$f.pid"`,
          rd,
          `${L}/.plb-making-${name}`,
        )
      ).trim();
      expect(await hostSh(h2, `tr '\\0' ' ' </proc/$1/cmdline`, pid)).to.equal(
        `btrfs receive -C -E 1 -e -- ${rd} `,
      );
      const { outs } = await clone.create(args(SRC, name));
      expect(await hostSh(h2, `kill -0 $1 2>/dev/null && echo alive || echo gone`, pid)).to.equal("gone\n");
      expect(outs.sentUuid).to.be.a("string");
      expect(await exists(h2, rd)).to.equal(false);
      expect(await exists(h2, `${L}/.plb-making-${name}`)).to.equal(false);
      await clone.del("", outs);
      await hostSh(h2, 'pkill -f "^sleep 600$" || true');
    });

    for (const f of ["provider SIGKILL", "link cut on the target"] as const) {
      it(`${f} in the middle of the stream: no half-received subvolume in place; the next create copies again`, async () => {
        const name = f === "provider SIGKILL" ? "it-xkill" : "it-xcut";
        const inputs = args(SRC, name, { connection: { ...connTo(h2), commandTimeout: 20 } as never });
        const partial = `${L}/.plb-receiving-${name}/rootfs/big`;
        let run: { kill: () => void; done: Promise<string> };
        if (f === "provider SIGKILL") run = providerChild(inputs);
        else {
          const p = clone.create(inputs).then(
            () => "succeeded",
            (e: Error) => `failed: ${e.message.split("\n")[0]}`,
          );
          run = { kill: () => {}, done: p };
        }
        try {
          // Strike once the target has received part of the file (of 1 GiB).
          await receivedPast(h2, partial, 100);
          if (f === "provider SIGKILL") run.kill();
          else await fault(h2, "cut");
          const how = await run.done;
          expect(how).to.match(/^failed/);
        } finally {
          if (f !== "provider SIGKILL") await fault(h2, "restore");
          await closeAllConnections();
        }
        // The send stops (the provider's close reaches h1, whose link is up). The receive on h2 may not:
        // a close sent while h2's link was cut can be lost, and sshd then never learns that its client
        // is gone. The next create ends such a receive itself.
        await waitFor(
          "the interrupted send to end",
          async () =>
            (await hostSh(
              h1,
              `pgrep -f "btrfs sen[d] -q -- .*-${name}/rootfs" >/dev/null && echo busy || true`,
            )) === "",
          180_000,
        );
        // Nothing half-received is in place: no clone, at most the marker and the receiving directory.
        expect(await exists(h2, `${L}/${name}`)).to.equal(false);
        const { outs } = await clone.create(args(SRC, name));
        expect(
          await hostSh(h2, `pgrep -f "btrfs receiv[e] .*receiving-${name}" >/dev/null && echo busy || true`),
        ).to.equal("");
        expect(outs.adopted).to.equal(false);
        expect(await sum(h2, `${L}/${name}/rootfs/big`)).to.equal(await sum(h1, `${L}/${SRC}/rootfs/big`));
        expect(await exists(h2, `${L}/.plb-receiving-${name}`)).to.equal(false);
        expect(await exists(h2, `${L}/.plb-making-${name}`)).to.equal(false);
        expect((await subvol(h2, `${L}/${name}/snaps/.plb-received/rootfs`))["Received UUID"]).to.equal(
          outs.sentUuid,
        );
        await clone.del("", outs);
        expect(await exists(h2, `${L}/${name}`)).to.equal(false);
        expect(await exists(h1, sentDir(SRC, name))).to.equal(false);
      });
    }
  });
});
