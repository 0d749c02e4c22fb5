/**
 * LxcSnapshot against a real host (h4): a running Debian container with a writer inside, snapshotted
 * frozen (held at the freeze by the failpoint /run/plb-hold/NAME.frozen, so the tree at the freeze can be
 * read) and live; what LXC's own tools (lxc-snapshot -L and -r, lxc-copy, lxc-destroy -s) do with our
 * read-only snapshots; drift, deletion by UUID, refusals, nested subvolumes, hostile paths and builds cut
 * short (killed while the container was frozen).
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { type SnapshotInputs, snapshotArgsSchema } from "../../provider/snapshot/inputs";
import * as snapshot from "../../provider/snapshot/provider";
import { script } from "../../provider/transport/remote-scripts";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FleetHost, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, failpoint, hostSh, makeBusybox, rejectionOf, waitFor } from "../support/host";
import { logged } from "../support/log";

const inv = loadInventory();
const host = inv.hosts.find((h) => h.name === "h4") as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath as string, "utf8");
const connection = { host: host.address, privateKey: key, knownHostsPath: inv.knownHostsPath };
const TARGET = `root@${host.address}:22`;
const LXC = "/var/lib/lxc";
const LOCAL = "/var/cache/pulumi-lxc-btrfs/debian-bookworm-minbase.lxc";

const sh = (s: string, ...a: string[]) => hostSh(host, s, ...a);
const state = async (n: string) => (await sh('lxc-info -n "$1" -s -H', n)).trim();
const uuidOf = async (p: string) =>
  (await sh('btrfs subvolume show "$1" | sed -n "s/^\\s*UUID:\\s*//p"', p)).trim();
const roOf = async (p: string) => (await sh('btrfs property get -ts "$1" ro', p)).trim();

function args(container: string, name: string, extra: Partial<SnapshotInputs> = {}): SnapshotInputs {
  return snapshotArgsSchema.parse({ connection, container, name, ...extra });
}

/** A create, its log lines kept out of the report. */
async function create(a: SnapshotInputs) {
  return (await logged(() => snapshot.create(a))).result;
}

/**
 * A running Debian minbase container made with a btrfs rootfs (what LxcSubvolumeRootfs leaves), whose init
 * is a shell that exits on the halt signal, with a writer inside that appends to files without a pause,
 * and from the host an xattr, a NOCOW file and a no-atime directory.
 */
async function runningDebianWithWriter(name: string): Promise<void> {
  await destroyContainers(host, name);
  await sh(
    `set -e
lxc-create -n "$1" -B btrfs -t local -- --metadata "$2/meta.tar.xz" --fstree "$2/rootfs.tar.xz" >/dev/null 2>&1
r=/var/lib/lxc/$1/rootfs
printf '#!/bin/sh\\ntrap "exit 0" PWR TERM\\n/usr/local/sbin/plb-writer &\\nwhile :; do sleep 1 & wait $!; done\\n' >"$r/usr/local/sbin/plb-init"
printf '#!/bin/sh\\ni=0\\nwhile :; do i=$((i+1)); echo $i >/srv/counter.tmp; mv /srv/counter.tmp /srv/counter; echo $i >>/srv/log; [ $((i %% 50)) = 0 ] && echo $i >/srv/f$((i %% 500)); done\\n' >"$r/usr/local/sbin/plb-writer"
chmod 755 "$r/usr/local/sbin/plb-init" "$r/usr/local/sbin/plb-writer"
printf 'lxc.init.cmd = /usr/local/sbin/plb-init\\nlxc.net.0.type = empty\\n' >>"/var/lib/lxc/$1/config"
printf 'lxc.net.1.type = macvlan\\nlxc.net.1.link = eth0\\nlxc.net.1.macvlan.mode = bridge\\nlxc.net.1.hwaddr = 00:16:3e:5a:5a:01\\n' >>"/var/lib/lxc/$1/config"
echo x >"$r/srv/xattr" && setfattr -n user.plb -v 1 "$r/srv/xattr"
touch "$r/srv/nocow" && chattr +C "$r/srv/nocow" && echo nocow >"$r/srv/nocow"
mkdir "$r/srv/noatime" && chattr +A "$r/srv/noatime"
lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 10`,
    name,
    LOCAL,
  );
  // The writer is running: its log grows.
  const n = async () => Number((await sh('wc -l <"$1"', `${LXC}/${name}/rootfs/srv/log`)).trim());
  const first = await n();
  await waitFor("the writer", async () => (await n()) > first + 100);
}

/** A busybox container with a btrfs rootfs and config (converted), stopped. */
async function convertedBusybox(name: string): Promise<void> {
  await destroyContainers(host, name);
  await sh('lxc-create -n "$1" -t busybox -B btrfs >/dev/null 2>&1', name);
}

const held = (name: string, point: string) => failpoint(host, name, point).set();
const reached = (name: string, point: string) => failpoint(host, name, point).reached();
const release = (name: string, point: string) => failpoint(host, name, point).release();

/** Starts snapshot.sh make on the host in its own process group (as the provider would); its pgid. */
async function makeOnHost(container: string, name: string, ifRunning: string): Promise<string> {
  return (
    await sh(
      'setsid sh -c "$1" plb-snapshot make /var/lib/lxc "$2" "$3" "$4" 0 >/dev/null 2>&1 </dev/null & echo $!',
      script("snapshot"),
      container,
      name,
      ifRunning,
    )
  ).trim();
}

/** What is under the container's directory besides its rootfs and snaps/: config and the like. */
const leftovers = (ct: string) => sh('ls -A "$1/snaps" 2>/dev/null || true', `${LXC}/${ct}`);

describe("LxcSnapshot on the fleet", function () {
  this.timeout(900_000);
  after(() => closeAllConnections());

  describe("a running Debian container with a writer", () => {
    const CT = "it-snapdeb";
    let frozenOuts: snapshot.SnapshotOutputs;
    before(() => runningDebianWithWriter(CT));
    after(() => destroyContainers(host, CT));

    it('"freeze": the snapshot is read-only and its manifest equals the tree at the freeze; the container runs on', async () => {
      await held("pre", "frozen");
      const started = Date.now();
      const run = create(args(CT, "pre"));
      const failed = run.then(
        () => undefined,
        (e: Error) => e,
      );
      await reached("pre", "frozen");
      expect(await state(CT)).to.equal("FROZEN");
      const seenFrozen = Date.now();
      const atFreeze = await manifest(host, `${LXC}/${CT}/rootfs`);
      await new Promise((r) => setTimeout(r, 300));
      const heldFor = Date.now() - seenFrozen;
      await release("pre", "frozen");
      expect(await failed).to.equal(undefined);
      frozenOuts = (await run).outs;
      const took = Date.now() - started;
      expect(await state(CT)).to.equal("RUNNING");
      const path = `${LXC}/${CT}/snaps/pre`;
      expect(frozenOuts).to.include({
        path,
        rootfsPath: `${path}/rootfs`,
        readOnly: true,
        containerState: "RUNNING",
        adopted: false,
        uuid: await uuidOf(`${path}/rootfs`),
        parentUuid: await uuidOf(`${LXC}/${CT}/rootfs`),
      });
      expect(frozenOuts.frozenMs).to.be.a("number").within(heldFor, took);
      expect(frozenOuts.drift).to.deep.equal([]);
      expect(Date.now() - Date.parse(frozenOuts.createdAt)).to.be.within(0, 120_000);
      expect(await roOf(`${path}/rootfs`)).to.equal("ro=true");
      expect(await manifest(host, `${path}/rootfs`)).to.equal(atFreeze);
      // The manifest holds what the test planted: an xattr, a NOCOW file, a no-atime directory.
      expect(atFreeze).to.match(/\nsrv\/xattr\t.*xattrs=user\.plb=0x31\t/);
      expect(atFreeze).to.match(/\nsrv\/nocow\t.*flags=C\t/);
      expect(atFreeze).to.match(/\nsrv\/noatime\t.*flags=A\t/);
      // The writer went on after the thaw: the container's log is longer than the snapshot's.
      const lines = async (p: string) => Number((await sh('wc -l <"$1"', p)).trim());
      await waitFor("the writer after the thaw", async () => {
        return (await lines(`${LXC}/${CT}/rootfs/srv/log`)) > (await lines(`${path}/rootfs/srv/log`));
      });
      // The config: the container's, pointing at the snapshot; ts as LXC writes it.
      const cfg = await sh('cat "$1/config"', path);
      const orig = await sh('cat "$1/config"', `${LXC}/${CT}`);
      expect(cfg).to.equal(
        orig.replace(/^lxc\.rootfs\.path = .*$/m, `lxc.rootfs.path = btrfs:${path}/rootfs`),
      );
      expect(await sh('cat "$1/ts"', path)).to.match(/^\d{4}:\d\d:\d\d \d\d:\d\d:\d\d$/);
      expect(await leftovers(CT)).to.equal("pre\n");
    });

    it('"live": crash-consistent, never frozen, read-only', async () => {
      const { outs } = await create(args(CT, "live", { ifRunning: "live" }));
      expect(outs).to.include({ readOnly: true, frozenMs: null, containerState: "RUNNING" });
      expect(await state(CT)).to.equal("RUNNING");
      expect(await roOf(outs.rootfsPath)).to.equal("ro=true");
      // A whole counter: written to a temp file and renamed, never seen half-written.
      expect(await sh('cat "$1/srv/counter"', outs.rootfsPath)).to.match(/^\d+\n$/);
      await snapshot.del("", outs);
      expect(await leftovers(CT)).to.equal("pre\n");
    });

    it('"fail" refuses a running container and changes nothing', async () => {
      const msg = await rejectionOf(create(args(CT, "nope", { ifRunning: "fail" })));
      expect(msg).to.equal(
        `LxcSnapshot nope (of ${CT}) on ${TARGET}: ${CT} is RUNNING; stop it, or set ifRunning: "freeze" (consistent) or "live" (crash-consistent). Nothing was changed.`,
      );
      expect(await leftovers(CT)).to.equal("pre\n");
    });

    it("lxc-snapshot -L lists it with its ts", async () => {
      const ts = await sh('cat "$1/ts"', frozenOuts.path);
      expect(await sh('lxc-snapshot -n "$1" -L', CT)).to.equal(`pre (${LXC}/${CT}/snaps) ${ts}\n`);
    });

    it("read reports no drift, then a snapshot made writable, and update does no host work", async () => {
      expect((await snapshot.read("", frozenOuts)).props?.drift).to.deep.equal([]);
      const u = await snapshot.update("", frozenOuts, args(CT, "pre", { ifRunning: "live" }));
      expect(u.outs).to.deep.equal({ ...frozenOuts, ifRunning: "live" });
      await sh('btrfs property set -ts "$1" ro false', frozenOuts.rootfsPath);
      const r = await snapshot.read("", frozenOuts);
      expect(r.props).to.include({ readOnly: false, uuid: frozenOuts.uuid });
      expect(r.props?.drift).to.deep.equal(["rootfs is no longer read-only"]);
      expect(snapshot.diffSnapshot(r.props ?? {}, args(CT, "pre"))).to.deep.equal({
        changes: true,
        replaces: ["name"],
        deleteBeforeReplace: true,
      });
      await sh('btrfs property set -ts "$1" ro true', frozenOuts.rootfsPath);
    });

    it("a clone of the snapshot boots as itself, is writable and shares nothing with the snapshot", async () => {
      const CL = "it-snapclone";
      const before = await manifest(host, frozenOuts.path);
      const a = cloneArgsSchema.parse({ connection, source: CT, snapshot: "pre", name: CL, start: true });
      try {
        const { result } = await logged(() => clone.create(a));
        const outs = result.outs;
        expect(outs).to.include({
          state: "RUNNING",
          parentUuid: frozenOuts.uuid,
          actualHostname: CL,
          adopted: false,
        });
        expect(outs.drift).to.deep.equal([]);
        expect(outs.hwaddrs).to.have.length(1);
        expect(outs.hwaddrs[0]).to.not.equal("00:16:3e:5a:5a:01");
        expect(await roOf(outs.rootfsPath)).to.equal("ro=false");
        const attach = async (...cmd: string[]) =>
          (await sh('n=$1; shift; lxc-attach -n "$n" -- "$@"', CL, ...cmd)).trim();
        expect(await attach("cat", "/proc/sys/kernel/hostname")).to.equal(CL);
        expect(await attach("cat", "/sys/class/net/eth0/address")).to.equal(outs.hwaddrs[0]);
        expect(await attach("cat", "/etc/hostname")).to.equal(CL);
        // The clone's writer runs on its own tree; the snapshot does not change.
        await attach("sh", "-c", "echo clone-only >/root/clone-only");
        expect(await manifest(host, frozenOuts.path)).to.equal(before);
        expect(await sh('cat "$1/config" | grep -c "it-snapdeb/snaps" || true', `${LXC}/${CL}`)).to.equal(
          "0\n",
        );
        expect((await clone.read("", outs)).props?.drift).to.deep.equal([]);
        await logged(() => clone.del("", outs));
        expect(await manifest(host, frozenOuts.path)).to.equal(before);
      } finally {
        await destroyContainers(host, CL);
      }
    });

    it("a clone of a snapshot that does not exist is refused, naming it", async () => {
      const a = cloneArgsSchema.parse({ connection, source: CT, snapshot: "nosuch", name: "it-snapnone" });
      expect(await rejectionOf(logged(() => clone.create(a)))).to.equal(
        `LxcSnapshotClone it-snapnone (from ${CT} snapshot nosuch) on ${TARGET}: source ${CT} has no snapshot nosuch (${LXC}/${CT}/snaps/nosuch does not exist); declare the LxcSnapshot and pass it in this clone's dependsOn. Nothing was changed.`,
      );
    });

    it("delete removes exactly its own subvolume and files; the container and other snapshots stay", async () => {
      const other = (await create(args(CT, "other"))).outs;
      const otherBefore = await manifest(host, other.path);
      await snapshot.del("", frozenOuts);
      expect(await leftovers(CT)).to.equal("other\n");
      expect(await manifest(host, other.path)).to.equal(otherBefore);
      expect(await state(CT)).to.equal("RUNNING");
      expect(await sh('btrfs subvolume list /var/lib/lxc | grep -c "$1/snaps/pre" || true', CT)).to.equal(
        "0\n",
      );
      // Gone: read says so, and a second delete is a no-op.
      expect(await snapshot.read("", frozenOuts)).to.deep.equal({});
      await snapshot.del("", frozenOuts);
      await snapshot.del("", other);
      expect(await leftovers(CT)).to.equal("");
    });
  });

  describe("a build cut short", () => {
    const CT = "it-snapcut";
    before(async () => {
      await convertedBusybox(CT);
      await sh(
        'printf "lxc.net.0.type = empty\\n" >>"/var/lib/lxc/$1/config"; lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 10',
        CT,
      );
    });
    after(() => destroyContainers(host, CT));

    it("killed while the container was frozen: the next create thaws it, removes the build and makes the snapshot", async () => {
      await held("cut", "frozen");
      const pgid = await makeOnHost(CT, "cut", "freeze");
      await reached("cut", "frozen");
      await sh('/bin/kill -s KILL -- "-$1"', pgid);
      await release("cut", "frozen");
      expect(await state(CT)).to.equal("FROZEN");
      expect(await leftovers(CT)).to.equal(".plb-making-cut\n");
      const { result, lines } = await logged(() => snapshot.create(args(CT, "cut")));
      expect(lines.join("\n")).to.include("thawed the container, frozen by a snapshot cut short");
      expect(await state(CT)).to.equal("RUNNING");
      expect(await leftovers(CT)).to.equal("cut\n");
      const outs = result.outs;
      expect(outs).to.include({ readOnly: true, containerState: "RUNNING" });
      await snapshot.del("", outs);
    });

    it("a container frozen by someone else is snapshotted as it is and left frozen", async () => {
      await sh('lxc-freeze -n "$1"', CT);
      const { outs } = await create(args(CT, "byother"));
      expect(outs).to.include({ containerState: "FROZEN", frozenMs: null, readOnly: true });
      expect(await state(CT)).to.equal("FROZEN");
      await sh('lxc-unfreeze -n "$1"', CT);
      await snapshot.del("", outs);
    });

    it("terminated while frozen (connection lost): the script thaws the container and removes its build", async () => {
      await held("term", "frozen");
      const pgid = await makeOnHost(CT, "term", "freeze");
      await reached("term", "frozen");
      await sh('/bin/kill -s TERM -- "-$1"', pgid);
      await release("term", "frozen");
      await waitFor("the thaw", async () => (await state(CT)) === "RUNNING");
      await waitFor("the build's removal", async () => (await leftovers(CT)) === "");
    });

    it("killed after the build was complete, before its rename: the next create makes it again", async () => {
      await held("late", "rename");
      const pgid = await makeOnHost(CT, "late", "freeze");
      await reached("late", "rename");
      await sh('/bin/kill -s KILL -- "-$1"', pgid);
      await release("late", "rename");
      expect(await state(CT)).to.equal("RUNNING");
      expect(await leftovers(CT)).to.equal(".plb-making-late\n");
      const { outs } = await create(args(CT, "late"));
      expect(await leftovers(CT)).to.equal("late\n");
      expect(outs.readOnly).to.equal(true);
      // Killed after the rename (state lost): the next create adopts the complete snapshot.
      const again = await create(args(CT, "late"));
      expect(again.outs).to.include({ adopted: true, uuid: outs.uuid });
      await snapshot.del("", outs);
    });
  });

  describe("refusals, nested subvolumes and what LXC's tools do with our snapshots", () => {
    const CT = "it-snapbb";
    const PLAIN = "it-snapdir";
    before(() => convertedBusybox(CT));
    after(() => destroyContainers(host, CT, PLAIN, "it-snapcopy"));

    it("refuses a container that is not a subvolume yet, naming LxcSubvolumeRootfs and dependsOn", async () => {
      await makeBusybox(host, PLAIN);
      const before = await manifest(host, `${LXC}/${PLAIN}`);
      const msg = await rejectionOf(create(args(PLAIN, "s")));
      expect(msg).to.equal(
        `LxcSnapshot s (of ${PLAIN}) on ${TARGET}: ${PLAIN}'s rootfs is not a btrfs subvolume with a btrfs: config, so it cannot be snapshotted; declare an LxcSubvolumeRootfs for ${PLAIN} and pass it in this snapshot's dependsOn. Nothing was changed.`,
      );
      expect(await manifest(host, `${LXC}/${PLAIN}`)).to.equal(before);
    });

    it('refuses nested subvolumes by default; "include" snapshots each read-only into its place', async () => {
      const r = `${LXC}/${CT}/rootfs`;
      await sh(
        'mkdir -p "$1/srv" && btrfs subvolume create "$1/srv/nest" >/dev/null && echo data >"$1/srv/nest/f" && btrfs subvolume create "$1/srv/nest/inner" >/dev/null && echo d2 >"$1/srv/nest/inner/g"',
        r,
      );
      const msg = await rejectionOf(create(args(CT, "n")));
      expect(msg).to.equal(
        `LxcSnapshot n (of ${CT}) on ${TARGET}: ${CT}'s rootfs holds 2 nested subvolume(s) (srv/nest, srv/nest/inner); a btrfs snapshot is not recursive and would hold an empty directory in their place: set nestedSubvolumes: "include" to snapshot each one read-only into its place. Nothing was changed.`,
      );
      expect(await leftovers(CT)).to.equal("");
      const { outs } = await create(args(CT, "n", { nestedSubvolumes: "include" }));
      expect(outs.nested).to.deep.equal(["srv/nest", "srv/nest/inner"]);
      expect(await manifest(host, outs.rootfsPath)).to.equal(await manifest(host, r));
      for (const p of ["", "/srv/nest", "/srv/nest/inner"])
        expect(await roOf(`${outs.rootfsPath}${p}`)).to.equal("ro=true");
      expect(await uuidOf(`${outs.rootfsPath}/srv/nest`)).to.not.equal(await uuidOf(`${r}/srv/nest`));
      await snapshot.del("", outs);
      expect(await leftovers(CT)).to.equal("");
      expect(await sh('btrfs subvolume list /var/lib/lxc | grep -c "$1/snaps/" || true', CT)).to.equal("0\n");
      await sh('btrfs subvolume delete "$1/srv/nest/inner" "$1/srv/nest" >/dev/null', r);
    });

    it("LXC's tools: lxc-copy from snaps/ makes a writable clone; lxc-snapshot -r restores; lxc-destroy -s removes it", async () => {
      const { outs } = await create(args(CT, "tools"));
      const copy = await hostSh(
        host,
        'lxc-copy -n tools -P "$1/snaps" -N it-snapcopy -p /var/lib/lxc -s -B btrfs -K 2>&1; echo "rc=$?"; btrfs property get -ts /var/lib/lxc/it-snapcopy/rootfs ro; touch /var/lib/lxc/it-snapcopy/rootfs/w && echo writable; [ -e "$1/snaps/tools/rootfs/w" ] && echo shared || echo separate',
        `${LXC}/${CT}`,
      );
      expect(copy).to.equal("rc=0\nro=false\nwritable\nseparate\n");
      expect(
        await sh(
          "btrfs subvolume show /var/lib/lxc/it-snapcopy/rootfs | sed -n 's/^\\s*Parent UUID:\\s*//p'",
        ),
      ).to.equal(`${outs.uuid}\n`);
      await sh('echo after >"$1/rootfs/after"', `${LXC}/${CT}`);
      const restore = await sh(
        'lxc-snapshot -n "$1" -r tools 2>&1; echo "rc=$?"; [ -e "/var/lib/lxc/$1/rootfs/after" ] && echo after-kept || echo after-gone; grep "^lxc.rootfs.path" "/var/lib/lxc/$1/config"',
        CT,
      );
      expect(restore).to.equal(`rc=0\nafter-gone\nlxc.rootfs.path = btrfs:${LXC}/${CT}/rootfs\n`);
      expect(await roOf(`${LXC}/${CT}/rootfs`)).to.equal("ro=false");
      expect(await roOf(outs.rootfsPath)).to.equal("ro=true");
      const destroyed = await sh(
        'lxc-destroy -n "$1" -s 2>&1; echo "rc=$?"; ls -A /var/lib/lxc | grep -c "^$1$" || true',
        CT,
      );
      expect(destroyed).to.equal("rc=0\n0\n");
      // Gone with the container: read says so, and delete is a no-op.
      expect(await snapshot.read("", outs)).to.deep.equal({});
      await snapshot.del("", outs);
    });
  });

  describe("hostile paths", () => {
    const CT = "it-snaphost";
    const BAIT = "/root/it-snap-bait-h4";
    before(async () => {
      await convertedBusybox(CT);
      await sh('rm -rf "$1"; mkdir -p "$1/dir" && echo keep >"$1/dir/file" && echo keep >"$1/file"', BAIT);
    });
    after(async () => {
      await destroyContainers(host, CT);
      await sh('rm -rf "$1"', BAIT);
    });
    const bait = () => manifest(host, BAIT);

    it("a snaps/ that is a symlink (to a directory or a file) is refused; nothing it points at changes", async () => {
      const before = await bait();
      for (const target of [`${BAIT}/dir`, `${BAIT}/file`]) {
        await sh('ln -sfn "$2" "$1/snaps"', `${LXC}/${CT}`, target);
        const msg = await rejectionOf(create(args(CT, "s")));
        expect(msg).to.equal(
          `LxcSnapshot s (of ${CT}) on ${TARGET}: ${LXC}/${CT}/snaps is a symlink (left by a person or another tool?); snapshots are made only in a real directory there: remove it (what a symlink points at is left alone) and run again. Nothing was changed.`,
        );
        expect(await bait()).to.equal(before);
      }
      await sh('rm "$1/snaps"', `${LXC}/${CT}`);
    });

    it("a snaps/<name> that is a symlink is refused by create and by delete; nothing it points at changes", async () => {
      const { outs } = await create(args(CT, "real"));
      await sh(
        'rm -f "$1/config" "$1/ts" && btrfs subvolume delete "$1/rootfs" >/dev/null && rmdir "$1"',
        outs.path,
      );
      await sh('ln -s "$2" "$1"', outs.path, `${BAIT}/dir`);
      const before = await bait();
      const msg = await rejectionOf(create(args(CT, "real")));
      expect(msg).to.equal(
        `LxcSnapshot real (of ${CT}) on ${TARGET}: ${outs.path} is a symlink; choose another name or remove it. Nothing was changed.`,
      );
      const del = await rejectionOf(snapshot.del("", outs));
      expect(del).to.include(`${outs.path} is a symlink, not this snapshot; remove it yourself`);
      // A build's name as a symlink too.
      await sh('ln -s "$2" "$1/snaps/.plb-making-b"', `${LXC}/${CT}`, `${BAIT}/dir`);
      expect(await rejectionOf(create(args(CT, "b")))).to.equal(
        `LxcSnapshot b (of ${CT}) on ${TARGET}: ${LXC}/${CT}/snaps/.plb-making-b is a symlink, not a build of this provider; remove it and run again. Nothing was changed.`,
      );
      expect(await bait()).to.equal(before);
      await sh('rm "$1/snaps/real" "$1/snaps/.plb-making-b"', `${LXC}/${CT}`);
    });

    it("another subvolume in the snapshot's place: read reports it, delete refuses and leaves it", async () => {
      const { outs } = await create(args(CT, "swap"));
      await sh(
        'btrfs subvolume delete "$1/rootfs" >/dev/null && btrfs subvolume create "$1/rootfs" >/dev/null',
        outs.path,
      );
      const now = await uuidOf(outs.rootfsPath);
      const r = await snapshot.read("", outs);
      expect(r.props?.drift).to.deep.equal([
        `rootfs is another subvolume (UUID ${now}, made ${outs.uuid})`,
        "rootfs is no longer read-only",
      ]);
      const msg = await rejectionOf(snapshot.del("", outs));
      expect(msg).to.include(`${outs.rootfsPath} is not the snapshot this resource made (UUID ${outs.uuid})`);
      expect(await uuidOf(outs.rootfsPath)).to.equal(now);
    });

    it("names with path tricks are refused before anything runs", async () => {
      for (const name of ["../../x", "a/b", ".hidden", "-x", ""]) {
        const msg = await rejectionOf(snapshot.create({ ...args(CT, "ok"), name } as SnapshotInputs));
        expect(msg).to.match(/^LxcSnapshot: invalid inputs: name /);
      }
    });
  });
});
