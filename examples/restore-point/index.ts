// A restore point before an upgrade: converts a container (if needed), then takes a read-only btrfs snapshot
// of it with its config, where LXC keeps its own snapshots (<lxcPath>/<container>/snaps/<name>), freezing a
// running container only for the instant of the snapshot. With `tryClone` set, also starts a writable clone
// of the snapshot to rehearse the upgrade on. Set `restorePoint` to false once the upgrade is good: the next
// `pulumi up` removes the snapshot (and the clone). If the upgrade went wrong, set `rollback` to true: the
// next `pulumi up` restores the container's rootfs from the snapshot. Everything comes from stack config
// (see README.md):
//
//   pulumi config set host 10.0.0.5
//   pulumi config set container web1
//   pulumi config set privateKeyPath ~/.ssh/id_ed25519
//   pulumi up
import * as pulumi from "@pulumi/pulumi";
import { LxcSnapshot, LxcSnapshotClone, LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";

const cfg = new pulumi.Config();
const connection = {
  host: cfg.require("host"),
  port: cfg.getNumber("port"),
  user: cfg.get("user"),
  sudo: cfg.getBoolean("sudo"),
  privateKey: cfg.getSecret("privateKey"),
  privateKeyPath: cfg.get("privateKeyPath"),
  knownHostsPath: cfg.get("knownHostsPath"),
};
const container = cfg.require("container");
const name = cfg.get("name") ?? "pre-upgrade";

// The snapshot needs the container converted first: declare it and depend on it. `restoreFrom` rolls the
// rootfs back to the snapshot when it is set (or changed): once, not at every `up`.
const rollback = cfg.getBoolean("rollback") ?? false;
const rootfs = new LxcSubvolumeRootfs("rootfs", {
  connection,
  container,
  restoreFrom: rollback ? name : undefined,
});

const snap =
  (cfg.getBoolean("restorePoint") ?? true)
    ? new LxcSnapshot("restore-point", { connection, container, name }, { dependsOn: [rootfs] })
    : undefined;
const rehearsal =
  snap && (cfg.getBoolean("tryClone") ?? false)
    ? new LxcSnapshotClone(
        "rehearsal",
        {
          connection,
          source: container,
          snapshot: name,
          name: `${container}-clone`,
          start: cfg.getBoolean("start"),
        },
        { dependsOn: [snap] },
      )
    : undefined;

export const containerUuid = rootfs.subvolumeUuid;
export const restoredFrom = rootfs.restoredFrom;
export const snapshotPath = snap?.path;
export const snapshotUuid = snap?.uuid;
export const snapshotParentUuid = snap?.parentUuid;
export const frozenMs = snap?.frozenMs;
export const rehearsalState = rehearsal?.state;
export const rehearsalParentUuid = rehearsal?.parentUuid;
