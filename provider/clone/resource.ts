/** LxcSnapshotClone, the class users declare, and its provider as an object (for pulumi.dynamic.Resource). */
import * as pulumi from "@pulumi/pulumi";
import {
  type ConnectionInput,
  dynamicType,
  type Inputs,
  type LxcConnectionArgs,
  type Outputs,
  resourceProps,
  secretConnection,
} from "../core/resource";
import type { CloneArgsInput } from "./inputs";
import { CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS, type CloneOutputs } from "./outputs";

// Each method names the package and the method in full, capturing nothing (test/unit/serialization.test.ts).
// The class does not store this object serialized: it stores storedProvider("clone") (core/resource.ts),
// one line whose handler() returns the same methods.

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

/** LxcSnapshotClone's inputs: the schema's (clone/inputs.ts), each one also as a promise or Output. */
export interface LxcSnapshotCloneArgs
  extends Inputs<Omit<CloneArgsInput, "connection" | "sourceConnection">>,
    ConnectionInput {
  /**
   * How to reach the source's host, when it is another host than the clone's (`connection`, the default):
   * the clone is then copied with btrfs send and receive, relayed through the provider.
   */
  sourceConnection?: pulumi.Input<LxcConnectionArgs>;
}

// The class declares every input and output of CloneOutputs, with its docs, by merging this
// interface; the SDK creates each one (resourceProps passes every key).
export interface LxcSnapshotClone extends Outputs<CloneOutputs> {}

/** A container cloned as a BTRFS snapshot of another: O(1) in time and space, with its own identity. */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the SDK creates each property (resourceProps)
export class LxcSnapshotClone extends pulumi.CustomResource {
  constructor(name: string, args: LxcSnapshotCloneArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      dynamicType("LxcSnapshotClone"),
      name,
      resourceProps("clone", args, CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS),
      // sourceConnection's output is secret too, when there is one: a clone on its source's host has none.
      secretConnection(opts, ...(args.sourceConnection === undefined ? [] : ["sourceConnection"])),
    );
  }
}
