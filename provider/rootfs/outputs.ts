/**
 * LxcSubvolumeRootfs's outputs: the one type the provider returns and the class exposes (with the docs
 * users see on `rootfs.entries`), and the key lists the class registers, which the compiler keeps equal to
 * the types. README's output table lists the same keys (test/unit/readme.test.ts). No zod here: the class
 * loads this in the user's program.
 */
import type { BackingStore } from "../host/lxc-config";
import type { RootfsInputs } from "./inputs";

/** What the provider stores in state: the validated inputs and what it found on the host. */
export interface RootfsOutputs extends RootfsInputs {
  /** `user@host:port`, for display; never a secret. */
  target: string;
  /** The container's rootfs: `<lxcPath>/<container>/rootfs`. */
  rootfsPath: string;
  /** Whether rootfs is a BTRFS subvolume (false after a refresh found it turned back into a directory). */
  rootfsIsSubvolume: boolean;
  /** The subvolume's ID, or null when rootfs is not a subvolume. */
  subvolumeId: number | null;
  /** The subvolume's UUID, or null when rootfs is not a subvolume. */
  subvolumeUuid: string | null;
  /**
   * The backing store of the config's `lxc.rootfs.path`: `btrfs`, `dir`, `overlay`, `bare` (a plain path),
   * `other`, or `missing` (no config, or not exactly one such line).
   */
  configBackingStore: BackingStore | "missing";
  /** True when rootfs was already a subvolume with a btrfs: config, so nothing was converted. */
  adopted: boolean;
  /** The entries (files, directories, links, devices...) the conversion copied; null when adopted. */
  entries: number | null;
  /** @deprecated The same number as `entries` (it always counted every entry, not only files). */
  files: number | null;
  /** The bytes of the tree the conversion copied; null when adopted. */
  bytes: number | null;
  /** The container's state as lxc-info reports it: RUNNING, STOPPED... */
  state: string;
  /** Set by read when a conversion was interrupted; the next update resumes or rolls it back. */
  interrupted: string | null;
  /** The snapshot the rootfs was last restored from by this resource (restoreFrom), or null. */
  restoredFrom: string | null;
  /** That snapshot's subvolume UUID (the restored rootfs's Parent UUID), or null. */
  restoredSnapshotUuid: string | null;
  /** When that restore completed (ISO 8601, UTC), or null. */
  restoredAt: string | null;
}

/** Every input key, for the class (the schema's keys; the compiler checks this list against them). */
export const ROOTFS_INPUT_KEYS = {
  connection: true,
  container: true,
  lxcPath: true,
  ifRunning: true,
  nestedSubvolumes: true,
  keepBackup: true,
  restoreFrom: true,
  onDelete: true,
} as const satisfies Record<keyof RootfsInputs, true>;

/** Every output that is not an input (the compiler checks this list against RootfsOutputs). */
export const ROOTFS_OUTPUT_KEYS = {
  target: true,
  rootfsPath: true,
  rootfsIsSubvolume: true,
  subvolumeId: true,
  subvolumeUuid: true,
  configBackingStore: true,
  adopted: true,
  entries: true,
  files: true,
  bytes: true,
  state: true,
  interrupted: true,
  restoredFrom: true,
  restoredSnapshotUuid: true,
  restoredAt: true,
} as const satisfies Record<Exclude<keyof RootfsOutputs, keyof RootfsInputs>, true>;
