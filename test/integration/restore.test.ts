/**
 * restoreFrom (roll back in place) against a real host: a converted busybox container on h1, snapshotted
 * by hand the way lxc-snapshot lays snapshots out (snaps/<name>/{rootfs,config,ts}, rootfs a read-only
 * subvolume snapshot), then changed (files added, modified, deleted, xattrs and inode flags changed) and
 * restored. Every test asserts host state: the restored tree's manifest (flags and xattrs included)
 * equals the snapshot's, the snapshot is untouched (same UUID, still read-only), what is left beside the
 * rootfs, and the exact refusal text with the host left as it was.
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FleetHost, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, hostSh, makeBusybox, NO_NETWORK, rejectionOf } from "../support/host";
import { logged } from "../support/log";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;
const rootKey = readFileSync(inv.users.root.privateKeyPath as string, "utf8");
const LXC = "/var/lib/lxc";
const name = "it-restore";
const D = `${LXC}/${name}`;
const sh = (script: string, ...args: string[]) => hostSh(h1, script, ...args);

function inputs(extra: Partial<RootfsInputs> = {}): RootfsInputs {
  return rootfsArgsSchema.parse({
    connection: { host: h1.address, privateKey: rootKey, knownHostsPath: inv.knownHostsPath },
    container: name,
    ...extra,
  });
}

/** Content with what a restore must bring back exactly: xattrs, NOCOW, immutable, append-only, hardlinks. */
const CONTENT =
  "mkdir -p data/nocow && chattr +C data/nocow && head -c 300000 /dev/urandom >data/nocow/db && " +
  "echo keep >data/keep && setfattr -n user.tag -v one data/keep && echo locked >data/locked && chattr +i data/locked && " +
  "echo log >data/app.log && chattr +a data/app.log && echo gone >data/gone && ln data/keep data/keep.link";

/** Changes of every kind: added, modified, deleted, an xattr and flags changed, a mode changed. */
const CHANGES =
  "echo new >data/added && echo changed >>data/keep && rm data/gone && setfattr -n user.tag -v two data/keep && " +
  "setfattr -n user.more -v x bin/busybox && chattr -i data/locked && echo more >>data/locked && chattr +i data/added && " +
  "chmod 0700 data && rm -rf data/nocow && mkdir -p etc && echo 99 >etc/changed";

/** A converted container with CONTENT, and a read-only snapshot NAME of it made by hand. */
async function convertedWithSnapshot(snap: string): Promise<void> {
  await destroyContainers(h1, name);
  await makeBusybox(h1, name, NO_NETWORK);
  await sh(`cd "$1/rootfs" && ${CONTENT}`, D);
  await rootfs.create(inputs());
  await takeSnapshot(snap);
}

async function takeSnapshot(snap: string): Promise<void> {
  await sh(
    'mkdir -p "$1/snaps/$2" && btrfs subvolume snapshot -r "$1/rootfs" "$1/snaps/$2/rootfs" >/dev/null && cp "$1/config" "$1/snaps/$2/config" && date "+%Y:%m:%d %H:%M:%S" >"$1/snaps/$2/ts"',
    D,
    snap,
  );
}

const field = async (path: string, key: string) =>
  (await sh(`btrfs subvolume show "$1" | sed -n "s/^[[:space:]]*${key}:[[:space:]]*//p"`, path)).trim();
const readOnly = async (path: string) => (await sh('btrfs property get -ts "$1" ro', path)).trim();
/** Every subvolume in the container's directory. */
const subvolumes = () => sh('find "$1" -type d -inum 256 | sort', D);
const state = async () => (await sh('lxc-info -n "$1" -s -H', name)).trim();

describe("LxcSubvolumeRootfs restoreFrom: rollback in place (h1)", function () {
  this.timeout(600_000);
  after(async () => {
    await destroyContainers(h1, name, "it-restore-other");
    await sh("rm -rf /root/it-restore-target");
    await closeAllConnections();
  });

  it("restores a stopped container: the tree equals the snapshot exactly, the old rootfs is removed, the snapshot is untouched", async () => {
    await convertedWithSnapshot("s1");
    const snapManifest = await manifest(h1, `${D}/snaps/s1/rootfs`);
    expect(await manifest(h1, `${D}/rootfs`)).to.equal(snapManifest);
    const snapUuid = await field(`${D}/snaps/s1/rootfs`, "UUID");
    await sh(`cd "$1/rootfs" && ${CHANGES}`, D);
    const changed = await manifest(h1, `${D}/rootfs`);
    expect(changed).to.not.equal(snapManifest);
    const prior = (await rootfs.create(inputs())).outs;
    expect(prior.restoredFrom).to.equal(null);

    const t0 = new Date().toISOString();
    const { result, lines } = await logged(() => rootfs.update("", prior, inputs({ restoreFrom: "s1" })));
    const { outs } = result;
    expect(lines).to.include(
      `[lxc-btrfs] ${name} on root@${h1.address}:22: update: restore rootfs from snapshot s1`,
    );
    expect(await manifest(h1, `${D}/rootfs`)).to.equal(snapManifest);
    expect(await manifest(h1, `${D}/snaps/s1/rootfs`)).to.equal(snapManifest);
    expect(await field(`${D}/snaps/s1/rootfs`, "UUID")).to.equal(snapUuid);
    expect(await readOnly(`${D}/snaps/s1/rootfs`)).to.equal("ro=true");
    expect(await readOnly(`${D}/rootfs`)).to.equal("ro=false");
    expect(await field(`${D}/rootfs`, "Parent UUID")).to.equal(snapUuid);
    expect(await sh('ls -A "$1"', D)).to.equal("config\nconfig.pre-btrfs\nrootfs\nsnaps\n");
    expect(await subvolumes()).to.equal(`${D}/rootfs\n${D}/snaps/s1/rootfs\n`);
    expect(outs).to.include({
      restoreFrom: "s1",
      restoredFrom: "s1",
      restoredSnapshotUuid: snapUuid,
      rootfsIsSubvolume: true,
      configBackingStore: "btrfs",
      state: "STOPPED",
      interrupted: null,
      subvolumeUuid: await field(`${D}/rootfs`, "UUID"),
    });
    expect(outs.restoredAt).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect((outs.restoredAt as string) >= t0).to.equal(true);

    // Unchanged restoreFrom: a later up never restores again; the container's new changes stay.
    await sh('echo later >"$1/rootfs/data/later"', D);
    const later = await manifest(h1, `${D}/rootfs`);
    const again = await logged(() => rootfs.update("", outs, inputs({ restoreFrom: "s1" })));
    expect(again.lines.filter((l) => l.includes("restore"))).to.deep.equal([]);
    expect(await manifest(h1, `${D}/rootfs`)).to.equal(later);
    expect(again.result.outs).to.include({ restoredFrom: "s1", restoredAt: outs.restoredAt });
    // Removed: nothing happens on the host; the record of the last restore stays.
    const removed = await rootfs.update("", again.result.outs, inputs());
    expect(await manifest(h1, `${D}/rootfs`)).to.equal(later);
    expect(removed.outs).to.include({ restoredFrom: "s1", restoredSnapshotUuid: snapUuid });
    // read keeps the record too.
    const r = await rootfs.read(`${h1.address}:22:${D}`, removed.outs);
    expect(r.props).to.include({ restoredFrom: "s1", restoredAt: outs.restoredAt });
  });

  it('a running container with ifRunning "restart" ends RUNNING on the restored tree; keepBackup keeps the replaced rootfs', async () => {
    await convertedWithSnapshot("s2");
    // The container's own boot writes to its tree (busybox's init): data/ is what it never touches.
    const snapData = await manifest(h1, `${D}/snaps/s2/rootfs/data`);
    const snapUuid = await field(`${D}/snaps/s2/rootfs`, "UUID");
    await sh(`cd "$1/rootfs" && ${CHANGES}`, D);
    const changedData = await manifest(h1, `${D}/rootfs/data`);
    const oldUuid = await field(`${D}/rootfs`, "UUID");
    await sh('lxc-start -n "$1" && lxc-wait -n "$1" -s RUNNING -t 30', name);
    const { outs } = await rootfs.create(
      inputs({ restoreFrom: "s2", ifRunning: "restart", keepBackup: true }),
    );
    expect(outs).to.include({ state: "RUNNING", restoredFrom: "s2", restoredSnapshotUuid: snapUuid });
    expect(await state()).to.equal("RUNNING");
    expect(
      await sh('lxc-attach -n "$1" -- /bin/sh -c "cat /data/keep; ls /data/added 2>&1 || true"', name),
    ).to.equal("keep\nls: /data/added: No such file or directory\n");
    await sh('lxc-stop -k -n "$1"', name);
    expect(await field(`${D}/rootfs`, "Parent UUID")).to.equal(snapUuid);
    expect(await manifest(h1, `${D}/rootfs/data`)).to.equal(snapData);
    expect(await manifest(h1, `${D}/rootfs.pre-restore/data`)).to.equal(changedData);
    expect(await field(`${D}/rootfs.pre-restore`, "UUID")).to.equal(oldUuid);
    expect(await sh('ls -A "$1"', D)).to.equal(
      "config\nconfig.pre-btrfs\nrootfs\nrootfs.pre-restore\nsnaps\n",
    );

    // A second restore refuses while that backup is in the way, and changes nothing.
    const before = await manifest(h1, D);
    const msg = await rejectionOf(rootfs.update("", outs, inputs({ restoreFrom: "s1", keepBackup: true })));
    expect(msg).to.equal(
      `LxcSubvolumeRootfs ${name} on root@${h1.address}:22: ${D}/rootfs.pre-restore already exists (an earlier restore's backup?) and no journal explains it; move it away or delete it (btrfs subvolume delete) and run again. Nothing was changed.`,
    );
    expect(await manifest(h1, D)).to.equal(before);
  });

  it('ifRunning "fail" refuses a running container and changes nothing', async () => {
    await convertedWithSnapshot("s3");
    await sh('lxc-start -n "$1" && lxc-wait -n "$1" -s RUNNING -t 30', name);
    try {
      const rootfsUuid = await field(`${D}/rootfs`, "UUID");
      const msg = await rejectionOf(rootfs.create(inputs({ restoreFrom: "s3" })));
      expect(msg).to.equal(
        `LxcSubvolumeRootfs ${name} on root@${h1.address}:22: container ${name} is RUNNING; stop it first or set ifRunning: "restart" to restore it from snapshot s3. Nothing was changed.`,
      );
      expect(await field(`${D}/rootfs`, "UUID")).to.equal(rootfsUuid);
      expect(await state()).to.equal("RUNNING");
      expect(await sh('ls -A "$1"', D)).to.equal("config\nconfig.pre-btrfs\nrootfs\nsnaps\n");
    } finally {
      await sh('lxc-stop -k -n "$1"', name);
    }
  });

  describe("refusals before anything changes: the snapshot missing, writable, or reached through a symlink", () => {
    // On the same btrfs as the container (a snapshot cannot be taken elsewhere): a real, read-only one.
    const target = `${LXC}/it-restore-other`;
    const refusal = (why: string) =>
      `LxcSubvolumeRootfs ${name} on root@${h1.address}:22: ${why}. Nothing was changed.`;
    before(() => convertedWithSnapshot("s4"));

    async function refused(snap: string, why: string, extra: Partial<RootfsInputs> = {}): Promise<void> {
      const before = await manifest(h1, D);
      const msg = await rejectionOf(rootfs.create(inputs({ restoreFrom: snap, ...extra })));
      expect(msg).to.equal(refusal(why));
      expect(await manifest(h1, D)).to.equal(before);
    }

    it("a missing snapshot", () =>
      refused(
        "nope",
        `there is no snapshot nope of ${name}: ${D}/snaps/nope is missing; make the snapshot first (LxcSnapshot or lxc-snapshot) or correct restoreFrom`,
      ));

    it("a writable snapshot", async () => {
      await sh(
        'mkdir "$1/snaps/w" && btrfs subvolume snapshot "$1/rootfs" "$1/snaps/w/rootfs" >/dev/null',
        D,
      );
      await refused(
        "w",
        `${D}/snaps/w/rootfs is not read-only, so it may have changed since it was taken; restore only from a read-only snapshot (btrfs property set -ts ${D}/snaps/w/rootfs ro true, if you know it is intact)`,
      );
      await sh('btrfs subvolume delete "$1/snaps/w/rootfs" >/dev/null && rmdir "$1/snaps/w"', D);
    });

    it("a snapshot that is a plain directory", async () => {
      await sh('mkdir -p "$1/snaps/plain/rootfs"', D);
      await refused(
        "plain",
        `${D}/snaps/plain/rootfs is not a btrfs subvolume, so not a snapshot of ${name}; make the snapshot again`,
      );
      await sh('rm -r "$1/snaps/plain"', D);
    });

    it("snaps/<name> a symlink to a directory the test owns (holding a real read-only snapshot): refused, the target unchanged", async () => {
      await sh(
        'mkdir -p "$2" && btrfs subvolume snapshot -r "$1/rootfs" "$2/rootfs" >/dev/null && ln -s "$2" "$1/snaps/link"',
        D,
        target,
      );
      const t = await manifest(h1, target);
      await refused(
        "link",
        `${D}/snaps/link is a symlink, not a snapshot's own directory (restoreFrom never follows one); remove it and make the snapshot again`,
      );
      expect(await manifest(h1, target)).to.equal(t);
      await sh('rm "$1/snaps/link"', D);
      await destroyContainers(h1, "it-restore-other");
    });

    it("snaps a symlink to a directory the test owns: refused, the target unchanged", async () => {
      const other = target;
      await sh(
        'mkdir -p "$2/s4" && btrfs subvolume snapshot -r "$1/rootfs" "$2/s4/rootfs" >/dev/null && mv "$1/snaps" "$1/snaps.real" && ln -s "$2" "$1/snaps"',
        D,
        other,
      );
      try {
        const t = await manifest(h1, other);
        await refused(
          "s4",
          `${D}/snaps is a symlink, not a snapshot's own directory (restoreFrom never follows one); remove it and make the snapshot again`,
        );
        expect(await manifest(h1, other)).to.equal(t);
      } finally {
        await sh('rm "$1/snaps" && mv "$1/snaps.real" "$1/snaps"', D);
        await destroyContainers(h1, "it-restore-other");
      }
    });

    it("a nested subvolume in the rootfs, which removing it would lose (keepBackup keeps it)", async () => {
      await sh('btrfs subvolume create "$1/rootfs/nested" >/dev/null && echo n >"$1/rootfs/nested/f"', D);
      await refused(
        "s4",
        `${D}/rootfs holds nested subvolumes (${name}/rootfs/nested...), which removing the replaced rootfs would lose; set keepBackup: true (they stay in rootfs.pre-restore) or move them out first`,
      );
      const { outs } = await rootfs.create(inputs({ restoreFrom: "s4", keepBackup: true }));
      expect(outs.restoredFrom).to.equal("s4");
      expect(await sh('cat "$1/rootfs.pre-restore/nested/f"', D)).to.equal("n\n");
      expect(await manifest(h1, `${D}/rootfs`)).to.equal(await manifest(h1, `${D}/snaps/s4/rootfs`));
    });
  });

  it("symlinks in the snapshot to host files are restored as symlinks; nothing follows them", async () => {
    const target = "/root/it-restore-target";
    await sh(
      'mkdir -p "$1" && echo host >"$1/file" && mkdir -p "$1/dir" && echo d >"$1/dir/x" && touch -d 2001-01-01 "$1/file" "$1/dir/x" "$1/dir" "$1"',
      target,
    );
    await destroyContainers(h1, name);
    await makeBusybox(h1, name, NO_NETWORK);
    await sh(
      `cd "$1/rootfs" && ${CONTENT} && ln -s "$2/file" host-file && ln -s "$2/dir" host-dir && ln -s "$2" data/host-root`,
      D,
      target,
    );
    await rootfs.create(inputs());
    await takeSnapshot("s5");
    const t = await manifest(h1, target);
    const snapManifest = await manifest(h1, `${D}/snaps/s5/rootfs`);
    await sh(`cd "$1/rootfs" && ${CHANGES} && rm host-file && mkdir host-file`, D);
    const { outs } = await rootfs.create(inputs({ restoreFrom: "s5" }));
    expect(outs.restoredFrom).to.equal("s5");
    expect(await manifest(h1, `${D}/rootfs`)).to.equal(snapManifest);
    expect(await sh('readlink "$1/rootfs/host-file" "$1/rootfs/host-dir"', D)).to.equal(
      `${target}/file\n${target}/dir\n`,
    );
    expect(await manifest(h1, target)).to.equal(t);
  });
});
