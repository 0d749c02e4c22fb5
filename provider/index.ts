/**
 * pulumi-lxc-btrfs: LXC containers on BTRFS hosts, as code.
 *
 * - LxcSubvolumeRootfs: make a container's rootfs a BTRFS subvolume in place (adopt when already done).
 * - LxcSnapshotClone: clone a container as a BTRFS snapshot, with its own name, hostname and MACs.
 * - LxcSnapshot: a read-only BTRFS snapshot of a converted container, with its config (a restore point).
 */

export type { CloneOutputs } from "./clone/outputs";
export { cloneProvider, LxcSnapshotClone, type LxcSnapshotCloneArgs } from "./clone/resource";
export type { ConnectionArgs } from "./core/connection";
export type { LxcConnectionArgs } from "./core/resource";
export type { DiscoveredContainer } from "./fleet/plan";
export {
  type DiscoverHostArgs,
  type DiscoverOptions,
  discoverContainers,
  type FleetCloneArgs,
  type FleetCopyArgs,
  type FleetHostArgs,
  type FleetHostSummary,
  LxcFleetRollout,
  type LxcFleetRolloutArgs,
} from "./fleet/rollout";
export type { RootfsOutputs } from "./rootfs/outputs";
export { LxcSubvolumeRootfs, type LxcSubvolumeRootfsArgs, rootfsProvider } from "./rootfs/resource";
export type { SnapshotOutputs } from "./snapshot/outputs";
export { LxcSnapshot, type LxcSnapshotArgs, snapshotProvider } from "./snapshot/resource";
