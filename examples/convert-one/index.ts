// Converts one container's rootfs directory into a btrfs subvolume, in place.
//
//   pulumi config set host 10.0.0.5
//   pulumi config set container web1
//   pulumi config set privateKeyPath ~/.ssh/id_ed25519     # or: pulumi config set --secret privateKey "$(cat key)"
//   pulumi up
//
// Without config it targets container web1 on host h1 of the local sandbox fleet (`npm run fleet:up`).
import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";

const cfg = new pulumi.Config();
const fleet = cfg.get("host")
  ? undefined
  : JSON.parse(
      readFileSync(
        `${process.env.PLB_FLEET_DIR ?? "/var/tmp/pulumi-lxc-btrfs/fleet"}/inventory.json`,
        "utf8",
      ),
    );

const rootfs = new LxcSubvolumeRootfs("rootfs", {
  connection: {
    host: cfg.get("host") ?? fleet.hosts[0].address,
    user: cfg.get("user"),
    privateKey: cfg.getSecret("privateKey"),
    privateKeyPath: cfg.get("privateKeyPath") ?? fleet?.users.root.privateKeyPath,
    knownHostsPath: cfg.get("knownHostsPath") ?? fleet?.knownHostsPath,
    sudo: cfg.getBoolean("sudo"),
  },
  container: cfg.get("container") ?? "web1",
  onDelete: "revert",
});

export const subvolumeUuid = rootfs.subvolumeUuid;
export const backingStore = rootfs.configBackingStore;
export const adopted = rootfs.adopted;
export const files = rootfs.files;
