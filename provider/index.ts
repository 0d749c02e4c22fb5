/**
 * pulumi-lxc-btrfs: LXC containers on BTRFS hosts, as code.
 *
 * - LxcSubvolumeRootfs: make a container's rootfs a BTRFS subvolume in place (adopt when already done).
 * - LxcSnapshotClone: clone a container as a BTRFS snapshot, with its own name, hostname and MACs.
 */
export {
  cloneProvider,
  type LxcConnectionArgs,
  LxcSnapshotClone,
  type LxcSnapshotCloneArgs,
  LxcSubvolumeRootfs,
  type LxcSubvolumeRootfsArgs,
  rootfsProvider,
} from "./resources";
export type { CloneOutputs } from "./clone-provider";
export type { RootfsOutputs } from "./rootfs-provider";
export type { ConnectionArgs } from "./schema";
export {
  type DiscoverHostArgs,
  type DiscoverOptions,
  discoverContainers,
  type FleetCloneArgs,
  type FleetHostArgs,
  type FleetHostSummary,
  LxcFleetRollout,
  type LxcFleetRolloutArgs,
} from "./fleet";
export type { DiscoveredContainer } from "./fleet-plan";
