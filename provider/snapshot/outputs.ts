/**
 * LxcSnapshot's outputs: the one type the provider returns and the class exposes (with the docs users see on
 * `snapshot.uuid`), and the key lists the class registers, which the compiler keeps equal to the types.
 * README's output table lists the same keys (test/unit/readme.test.ts). No zod here: the class loads this in
 * the user's program.
 */
import type { SnapshotInputs } from "./inputs";

/** What the provider stores in state: the validated inputs and what it found on the host. */
export interface SnapshotOutputs extends SnapshotInputs {
  /** `user@host:port`, for display; never a secret. */
  target: string;
  /** The snapshot's directory: `<lxcPath>/<container>/snaps/<name>` (holding `rootfs`, `config`, `ts`). */
  path: string;
  /** The read-only subvolume: `<path>/rootfs`. */
  rootfsPath: string;
  /** The snapshot subvolume's UUID: the identity read and delete check (kept from create). */
  uuid: string;
  /** The UUID of the container's rootfs subvolume it was taken from. */
  parentUuid: string | null;
  /** The snapshot subvolume's generation when it was made. */
  generation: number;
  /** When the snapshot subvolume was made, as btrfs records it (ISO 8601). */
  createdAt: string;
  /** Whether the snapshot subvolume is read-only, as found on the host (true unless someone changed it). */
  readOnly: boolean;
  /** How long the container was frozen for the snapshot, in ms; null when it was not frozen. */
  frozenMs: number | null;
  /** The container's state when the snapshot was taken (RUNNING, STOPPED, FROZEN...). */
  containerState: string;
  /** Nested subvolumes snapshotted into place (paths relative to the rootfs), with nestedSubvolumes "include". */
  nested: string[];
  /** True when a complete read-only snapshot of the container was already at `path` and was taken over. */
  adopted: boolean;
  /** What a refresh found different (no longer read-only, replaced by another subvolume); the next `pulumi up` replaces it. */
  drift: string[];
}

/** Every input key, for the class (the schema's keys; the compiler checks this list against them). */
export const SNAPSHOT_INPUT_KEYS = {
  connection: true,
  container: true,
  name: true,
  lxcPath: true,
  ifRunning: true,
  nestedSubvolumes: true,
} as const satisfies Record<keyof SnapshotInputs, true>;

/** Every output that is not an input (the compiler checks this list against SnapshotOutputs). */
export const SNAPSHOT_OUTPUT_KEYS = {
  target: true,
  path: true,
  rootfsPath: true,
  uuid: true,
  parentUuid: true,
  generation: true,
  createdAt: true,
  readOnly: true,
  frozenMs: true,
  containerState: true,
  nested: true,
  adopted: true,
  drift: true,
} as const satisfies Record<Exclude<keyof SnapshotOutputs, keyof SnapshotInputs>, true>;
