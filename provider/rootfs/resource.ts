/** LxcSubvolumeRootfs, the class users declare, and the serialized provider behind it. */
import * as pulumi from "@pulumi/pulumi";
import { type LxcConnectionArgs, nulls, secretConnection } from "../core/resource";
import type { RootfsOutputs } from "./provider";

// Each method names the package and the method in full, capturing nothing: the serialized text is these
// lines and nothing else (test/unit/serialization.test.ts).

/** The provider behind LxcSubvolumeRootfs; usable directly with plain inputs. */
export const rootfsProvider: pulumi.dynamic.ResourceProvider = {
  configure: (req) => require("pulumi-lxc-btrfs/dynamic").rootfs.configure(req),
  check: (olds, news) => require("pulumi-lxc-btrfs/dynamic").rootfs.check(olds, news),
  diff: (id, olds, news) => require("pulumi-lxc-btrfs/dynamic").rootfs.diff(id, olds, news),
  create: (inputs) => require("pulumi-lxc-btrfs/dynamic").rootfs.create(inputs),
  read: (id, props) => require("pulumi-lxc-btrfs/dynamic").rootfs.read(id, props),
  update: (id, olds, news) => require("pulumi-lxc-btrfs/dynamic").rootfs.update(id, olds, news),
  delete: (id, props) => require("pulumi-lxc-btrfs/dynamic").rootfs.delete(id, props),
};

export interface LxcSubvolumeRootfsArgs {
  connection: pulumi.Input<LxcConnectionArgs>;
  /** The container's name. */
  container: pulumi.Input<string>;
  /** LXC's directory of containers. Default /var/lib/lxc. */
  lxcPath?: pulumi.Input<string>;
  /**
   * "fail" (default) refuses a running container; "restart" stops, converts and starts it again; "live"
   * copies it while it runs and stops it only to copy what changed meanwhile (downtime bounded by change).
   */
  ifRunning?: pulumi.Input<"fail" | "restart" | "live">;
  /** "fail" (default) refuses subvolumes nested inside rootfs; "keep" moves them into the new subvolume. */
  nestedSubvolumes?: pulumi.Input<"fail" | "keep">;
  /** Keep the original directory as rootfs.pre-btrfs instead of deleting it. Default false. */
  keepBackup?: pulumi.Input<boolean>;
  /** "retain" (default) leaves the subvolume on delete; "revert" turns it back into a plain directory. */
  onDelete?: pulumi.Input<"retain" | "revert">;
}

const ROOTFS_OUTPUTS = [
  "target",
  "rootfsPath",
  "rootfsIsSubvolume",
  "subvolumeId",
  "subvolumeUuid",
  "configBackingStore",
  "adopted",
  "files",
  "bytes",
  "state",
  "interrupted",
] as const;

/** Makes an existing container's rootfs a BTRFS subvolume, in place, with a btrfs: config. */
export class LxcSubvolumeRootfs extends pulumi.dynamic.Resource {
  declare readonly target: pulumi.Output<string>;
  declare readonly rootfsPath: pulumi.Output<string>;
  declare readonly rootfsIsSubvolume: pulumi.Output<boolean>;
  declare readonly subvolumeId: pulumi.Output<number>;
  declare readonly subvolumeUuid: pulumi.Output<string>;
  declare readonly configBackingStore: pulumi.Output<RootfsOutputs["configBackingStore"]>;
  declare readonly adopted: pulumi.Output<boolean>;
  declare readonly files: pulumi.Output<number>;
  declare readonly bytes: pulumi.Output<number>;
  declare readonly state: pulumi.Output<string>;
  declare readonly container: pulumi.Output<string>;
  declare readonly lxcPath: pulumi.Output<string>;

  constructor(name: string, args: LxcSubvolumeRootfsArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      rootfsProvider,
      name,
      { ...args, ...nulls(ROOTFS_OUTPUTS) },
      secretConnection(opts),
      "lxc-btrfs",
      "LxcSubvolumeRootfs",
    );
  }
}
