/**
 * The Pulumi side: resource classes and the dynamic providers behind them.
 *
 * Pulumi serializes a dynamic provider into state as source text (`__provider`) for every resource, and runs
 * `read` and `delete` with the text in state. Ours is a few lines that name the implementation by package,
 * `require("pulumi-lxc-btrfs/dynamic")`, at call time: the provider process resolves it from the program's
 * directory like any dependency, so state works from any checkout or machine that has the package
 * installed, and nothing heavy (node-ssh, zod, a schema object) and no secret is ever captured
 * (pulumi/pulumi#5294, #13960). The implementation is in dynamic.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import type { CloneOutputs } from "./clone-provider";
import type { RootfsOutputs } from "./rootfs-provider";
import type { ConnectionArgs } from "./schema";

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

type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

/** How to reach a host: the fields of @pulumi/command's remote.Connection, plus sudo and host key policy. */
export type LxcConnectionArgs = Inputs<Omit<ConnectionArgs, "proxy">> & {
  proxy?: pulumi.Input<Inputs<Omit<ConnectionArgs, "proxy">>>;
};

export interface LxcSubvolumeRootfsArgs {
  connection: pulumi.Input<LxcConnectionArgs>;
  /** The container's name. */
  container: pulumi.Input<string>;
  /** LXC's directory of containers. Default /var/lib/lxc. */
  lxcPath?: pulumi.Input<string>;
  /** "fail" (default) refuses a running container; "restart" stops, converts and starts it again. */
  ifRunning?: pulumi.Input<"fail" | "restart">;
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

function nulls<K extends string>(keys: readonly K[]): Record<K, undefined> {
  return Object.fromEntries(keys.map((k) => [k, undefined])) as Record<K, undefined>;
}

/** The connection may hold a key or password: keep the whole output secret in state. */
function secretConnection(opts?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "connection"] };
}
