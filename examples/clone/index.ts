// Converts a container (if needed) and clones it as a btrfs snapshot, then starts the clone.
//
//   pulumi config set host 10.0.0.5
//   pulumi config set source web1
//   pulumi config set name web1-test
//   pulumi config set privateKeyPath ~/.ssh/id_ed25519
//   pulumi up
//
// Without config it clones web1 on host h1 of the local sandbox fleet (`npm run fleet:up`).
import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { LxcSnapshotClone, LxcSubvolumeRootfs } from "pulumi-lxc-btrfs";

const cfg = new pulumi.Config();
const fleet = cfg.get("host")
  ? undefined
  : JSON.parse(
      readFileSync(
        `${process.env.PLB_FLEET_DIR ?? "/var/tmp/pulumi-lxc-btrfs/fleet"}/inventory.json`,
        "utf8",
      ),
    );
const connection = {
  host: cfg.get("host") ?? fleet.hosts[0].address,
  user: cfg.get("user"),
  privateKey: cfg.getSecret("privateKey"),
  privateKeyPath: cfg.get("privateKeyPath") ?? fleet?.users.root.privateKeyPath,
  knownHostsPath: cfg.get("knownHostsPath") ?? fleet?.knownHostsPath,
};
const source = cfg.get("source") ?? "web1";

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
