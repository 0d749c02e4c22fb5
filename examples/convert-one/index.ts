// Converts one container's rootfs directory into a btrfs subvolume, in place. Everything comes from stack
// config (see README.md for every key):
//
//   pulumi config set host 10.0.0.5
//   pulumi config set container web1
//   pulumi config set privateKeyPath ~/.ssh/id_ed25519     # or: pulumi config set --secret privateKey "$(cat key)"
//   pulumi up
import * as pulumi from "@pulumi/pulumi";
import { LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";

const cfg = new pulumi.Config();

const rootfs = new LxcSubvolumeRootfs("rootfs", {
  connection: {
    host: cfg.require("host"),
    port: cfg.getNumber("port"),
    user: cfg.get("user"),
    sudo: cfg.getBoolean("sudo"),
    privateKey: cfg.getSecret("privateKey"),
    privateKeyPath: cfg.get("privateKeyPath"),
    knownHostsPath: cfg.get("knownHostsPath"),
  },
  container: cfg.require("container"),
  onDelete: "revert",
});

export const subvolumeUuid = rootfs.subvolumeUuid;
export const backingStore = rootfs.configBackingStore;
export const adopted = rootfs.adopted;
export const files = rootfs.files;
