/** LxcSnapshot, the class users declare, and its provider as an object (for pulumi.dynamic.Resource). */
import * as pulumi from "@pulumi/pulumi";
import {
  type ConnectionInput,
  dynamicType,
  type Inputs,
  type Outputs,
  resourceProps,
  secretConnection,
} from "../core/resource";
import type { SnapshotArgsInput } from "./inputs";
import { SNAPSHOT_INPUT_KEYS, SNAPSHOT_OUTPUT_KEYS, type SnapshotOutputs } from "./outputs";

// Each method names the package and the method in full, capturing nothing (test/unit/serialization.test.ts).
// The class does not store this object serialized: it stores storedProvider("snapshot") (core/resource.ts),
// one line whose handler() returns the same methods.

/** The provider behind LxcSnapshot; usable directly with plain inputs. */
export const snapshotProvider: pulumi.dynamic.ResourceProvider = {
  configure: (req) => require("pulumi-lxc-btrfs/dynamic").snapshot.configure(req),
  check: (olds, news) => require("pulumi-lxc-btrfs/dynamic").snapshot.check(olds, news),
  diff: (id, olds, news) => require("pulumi-lxc-btrfs/dynamic").snapshot.diff(id, olds, news),
  create: (inputs) => require("pulumi-lxc-btrfs/dynamic").snapshot.create(inputs),
  read: (id, props) => require("pulumi-lxc-btrfs/dynamic").snapshot.read(id, props),
  update: (id, olds, news) => require("pulumi-lxc-btrfs/dynamic").snapshot.update(id, olds, news),
  delete: (id, props) => require("pulumi-lxc-btrfs/dynamic").snapshot.delete(id, props),
};

/** LxcSnapshot's inputs: the schema's (snapshot/inputs.ts), each one also as a promise or Output. */
export interface LxcSnapshotArgs extends Inputs<Omit<SnapshotArgsInput, "connection">>, ConnectionInput {}

// The class declares every input and output of SnapshotOutputs, with its docs, by merging this
// interface; the SDK creates each one (resourceProps passes every key).
export interface LxcSnapshot extends Outputs<SnapshotOutputs> {}

/**
 * A read-only BTRFS snapshot of a converted container's rootfs, with a copy of its config, where LXC keeps
 * its own snapshots (`<lxcPath>/<container>/snaps/<name>`): a restore point.
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the SDK creates each property (resourceProps)
export class LxcSnapshot extends pulumi.CustomResource {
  constructor(name: string, args: LxcSnapshotArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      dynamicType("LxcSnapshot"),
      name,
      resourceProps("snapshot", args, SNAPSHOT_INPUT_KEYS, SNAPSHOT_OUTPUT_KEYS),
      secretConnection(opts),
    );
  }
}
