// Converts a container (if needed) and clones it as a btrfs snapshot, then starts the clone. Everything
// comes from stack config (see README.md for every key):
//
//   pulumi config set host 10.0.0.5
//   pulumi config set source web1
//   pulumi config set name web1-test
//   pulumi config set privateKeyPath ~/.ssh/id_ed25519
//   pulumi up
import * as pulumi from "@pulumi/pulumi";
import { LxcSnapshotClone, LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";

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
const source = cfg.require("source");

// The clone needs the source converted first: declare it and depend on it.
const rootfs = new LxcSubvolumeRootfs("source-rootfs", { connection, container: source });
const clone = new LxcSnapshotClone(
  "clone",
  { connection, source, name: cfg.get("name") ?? `${source}-clone`, start: cfg.getBoolean("start") ?? true },
  { dependsOn: [rootfs] },
);

export const cloneState = clone.state;
export const cloneMacs = clone.hwaddrs;
export const parentUuid = clone.parentUuid;
export const sourceUuid = rootfs.subvolumeUuid;
