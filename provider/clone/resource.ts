/** LxcSnapshotClone, the class users declare, and the serialized provider behind it. */
import * as pulumi from "@pulumi/pulumi";
import { type LxcConnectionArgs, nulls, secretConnection } from "../core/resource";
import type { CloneOutputs } from "./provider";

// Each method names the package and the method in full, capturing nothing: the serialized text is these
// lines and nothing else (test/unit/serialization.test.ts).

/** The provider behind LxcSnapshotClone; usable directly with plain inputs. */
export const cloneProvider: pulumi.dynamic.ResourceProvider = {
  configure: (req) => require("pulumi-lxc-btrfs/dynamic").clone.configure(req),
  check: (olds, news) => require("pulumi-lxc-btrfs/dynamic").clone.check(olds, news),
  diff: (id, olds, news) => require("pulumi-lxc-btrfs/dynamic").clone.diff(id, olds, news),
  create: (inputs) => require("pulumi-lxc-btrfs/dynamic").clone.create(inputs),
  read: (id, props) => require("pulumi-lxc-btrfs/dynamic").clone.read(id, props),
  update: (id, olds, news) => require("pulumi-lxc-btrfs/dynamic").clone.update(id, olds, news),
  delete: (id, props) => require("pulumi-lxc-btrfs/dynamic").clone.delete(id, props),
};

export interface LxcSnapshotCloneArgs {
  connection: pulumi.Input<LxcConnectionArgs>;
  lxcPath?: pulumi.Input<string>;
  /** The container to clone; its rootfs must be a subvolume with a btrfs: config (see LxcSubvolumeRootfs). */
  source: pulumi.Input<string>;
  /** The clone's name. */
  name: pulumi.Input<string>;
  /** "fail" (default), "freeze" (freeze the source for the instant of the snapshot) or "restart". */
  ifSourceRunning?: pulumi.Input<"fail" | "freeze" | "restart">;
  /** Start the clone after creating it. Default false. */
  start?: pulumi.Input<boolean>;
  /** The clone's hostname. Default: its name. */
  hostname?: pulumi.Input<string>;
}

const CLONE_OUTPUTS = [
  "target",
  "rootfsPath",
  "subvolumeId",
  "subvolumeUuid",
  "parentUuid",
  "sourceGeneration",
  "state",
  "hwaddrs",
  "actualHostname",
] as const;

/** A container cloned as a BTRFS snapshot of another: O(1) in time and space, with its own identity. */
export class LxcSnapshotClone extends pulumi.dynamic.Resource {
  declare readonly target: pulumi.Output<string>;
  declare readonly rootfsPath: pulumi.Output<string>;
  declare readonly subvolumeId: pulumi.Output<number>;
  declare readonly subvolumeUuid: pulumi.Output<string>;
  declare readonly parentUuid: pulumi.Output<string>;
  declare readonly sourceGeneration: pulumi.Output<number>;
  declare readonly state: pulumi.Output<CloneOutputs["state"]>;
  declare readonly hwaddrs: pulumi.Output<string[]>;
  declare readonly name: pulumi.Output<string>;

  constructor(name: string, args: LxcSnapshotCloneArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      cloneProvider,
      name,
      { ...args, ...nulls(CLONE_OUTPUTS) },
      secretConnection(opts),
      "lxc-btrfs",
      "LxcSnapshotClone",
    );
  }
}
