/** LxcSubvolumeRootfs, the class users declare, and its provider as an object (for pulumi.dynamic.Resource). */
import * as pulumi from "@pulumi/pulumi";
import {
  type ConnectionInput,
  dynamicType,
  type Inputs,
  type Outputs,
  resourceProps,
  secretConnection,
} from "../core/resource";
import type { RootfsArgsInput } from "./inputs";
import { ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS, type RootfsOutputs } from "./outputs";

// Each method names the package and the method in full, capturing nothing (test/unit/serialization.test.ts).
// The class does not store this object serialized: it stores storedProvider("rootfs") (core/resource.ts),
// one line whose handler() returns the same methods.

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

/** LxcSubvolumeRootfs's inputs: the schema's (rootfs/inputs.ts), each one also as a promise or Output. */
export interface LxcSubvolumeRootfsArgs
  extends Inputs<Omit<RootfsArgsInput, "connection">>,
    ConnectionInput {}

// The class declares every input and output of RootfsOutputs, with its docs, by merging this
// interface; the SDK creates each one (resourceProps passes every key).
export interface LxcSubvolumeRootfs extends Outputs<RootfsOutputs> {}

/** Makes an existing container's rootfs a BTRFS subvolume, in place, with a btrfs: config. */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the SDK creates each property (resourceProps)
export class LxcSubvolumeRootfs extends pulumi.CustomResource {
  constructor(name: string, args: LxcSubvolumeRootfsArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      dynamicType("LxcSubvolumeRootfs"),
      name,
      resourceProps("rootfs", args, ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS),
      secretConnection(opts),
    );
  }
}
