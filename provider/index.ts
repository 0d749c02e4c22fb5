/**
 * pulumi-lxc-btrfs: LXC containers on BTRFS hosts, as code.
 *
 * - LxcSubvolumeRootfs: make a container's rootfs a BTRFS subvolume in place (adopt when already done).
 * - LxcSnapshotClone: clone a container as a BTRFS snapshot, with its own name, hostname and MACs.
 * - LxcSnapshot: a read-only BTRFS snapshot of a converted container, with its config (a restore point).
 */
export { cloneProvider, LxcSnapshotClone, type LxcSnapshotCloneArgs } from "./clone/resource";
export type { LxcConnectionArgs } from "./core/resource";
export { LxcSubvolumeRootfs, type LxcSubvolumeRootfsArgs, rootfsProvider } from "./rootfs/resource";
export type { CloneOutputs } from "./clone/outputs";
export type { RootfsOutputs } from "./rootfs/outputs";
export { LxcSnapshot, type LxcSnapshotArgs, snapshotProvider } from "./snapshot/resource";
export type { SnapshotOutputs } from "./snapshot/outputs";
export type { ConnectionArgs } from "./core/connection";
export {
  type DiscoverHostArgs,
  type DiscoverOptions,
  discoverContainers,
  type FleetCloneArgs,
  type FleetHostArgs,
  type FleetHostSummary,
  LxcFleetRollout,
  type LxcFleetRolloutArgs,
} from "./fleet/rollout";
export type { DiscoveredContainer } from "./fleet/plan";
