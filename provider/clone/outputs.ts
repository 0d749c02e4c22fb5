/**
 * LxcSnapshotClone's outputs: the one type the provider returns and the class exposes (with the docs users
 * see on `clone.hwaddrs`), and the key lists the class registers, which the compiler keeps equal to the
 * types. README's output table lists the same keys (test/unit/readme.test.ts). No zod here: the class loads
 * this in the user's program.
 */
import type { CloneInputs } from "./inputs";

/** What the provider stores in state: the validated inputs and what it found on the host. */
export interface CloneOutputs extends CloneInputs {
  /** `user@host:port`, for display; never a secret. */
  target: string;
  /** The clone's rootfs: `<lxcPath>/<name>/rootfs`. */
  rootfsPath: string;
  /** The clone's subvolume ID, or null when its rootfs is not a subvolume. */
  subvolumeId: number | null;
  /** The clone's subvolume UUID, or null when its rootfs is not a subvolume. */
  subvolumeUuid: string | null;
  /** The UUID of the source's subvolume the clone was snapshotted from (kept from create on refresh). */
  parentUuid: string | null;
  /** The source subvolume's generation when the clone was made (kept from create on refresh). */
  sourceGeneration: number | null;
  /** The clone's state as lxc-info reports it: RUNNING, STOPPED... */
  state: "RUNNING" | "STOPPED" | string;
  /** The MAC addresses in the clone's config (lxc.net.N.hwaddr), unique on the host. */
  hwaddrs: string[];
  /** The hostname the clone's config sets (lxc.uts.name), as found on the host. */
  actualHostname: string | null;
  /** True when a snapshot clone of the source with this name already existed and was taken over. */
  adopted: boolean;
  /** What read found different from the declaration; the next update repairs it (or replaces the clone). */
  drift: string[];
  /**
   * A cross-host clone: the UUID of the read-only snapshot sent, kept on the source host in
   * `<lxcPath>/<source>/snaps/.plb-sent-<tag>-<name>/rootfs` (and the Received UUID of the subvolume kept on
   * the target). Null for a clone on the source's host.
   */
  sentUuid: string | null;
  /** A cross-host clone: the bytes relayed from the source's btrfs send to the target's receive (the last one). */
  transferredBytes: number | null;
  /**
   * A cross-host clone's last transfer: the UUID of the kept snapshot it was sent against (`btrfs send -p`,
   * an incremental refresh), or null for a full copy.
   */
  sentParentUuid: string | null;
}

/** Every input key, for the class (the schema's keys; the compiler checks this list against them). */
export const CLONE_INPUT_KEYS = {
  connection: true,
  sourceConnection: true,
  lxcPath: true,
  source: true,
  name: true,
  snapshot: true,
  ifSourceRunning: true,
  start: true,
  hostname: true,
  revision: true,
  ifRunning: true,
} as const satisfies Record<keyof CloneInputs, true>;

/** Every output that is not an input (the compiler checks this list against CloneOutputs). */
export const CLONE_OUTPUT_KEYS = {
  target: true,
  rootfsPath: true,
  subvolumeId: true,
  subvolumeUuid: true,
  parentUuid: true,
  sourceGeneration: true,
  state: true,
  hwaddrs: true,
  actualHostname: true,
  adopted: true,
  drift: true,
  sentUuid: true,
  transferredBytes: true,
  sentParentUuid: true,
} as const satisfies Record<Exclude<keyof CloneOutputs, keyof CloneInputs>, true>;
