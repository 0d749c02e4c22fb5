/**
 * LxcSnapshot's inputs: the one definition its types, checks and docs derive from. The comment on each key
 * is what users see on `LxcSnapshotArgs` in their editor; README's input table lists the same keys
 * (test/unit/readme.test.ts).
 */
import { z } from "zod";
import { connectionSchema } from "../core/connection";
import { absolutePath, containerName } from "../core/inputs";

export const snapshotArgsSchema = z
  .object({
    /** How to reach the host: address, user, credentials, host key policy. */
    connection: connectionSchema,
    /** The container to snapshot; its rootfs must be a subvolume with a btrfs: config (see LxcSubvolumeRootfs). */
    container: containerName,
    /** The snapshot's name: it lives in `<lxcPath>/<container>/snaps/<name>`, where lxc-snapshot keeps its own. */
    name: containerName,
    /** LXC's directory of containers. Default /var/lib/lxc. */
    lxcPath: absolutePath.default("/var/lib/lxc"),
    /**
     * A running container: "freeze" (default) freezes it for the instant of the snapshot and thaws it (the
     * snapshot is consistent; `frozenMs` says for how long); "live" snapshots it running (crash-consistent);
     * "fail" refuses.
     */
    ifRunning: z.enum(["freeze", "live", "fail"]).default("freeze"),
    /**
     * Subvolumes nested inside the rootfs (a btrfs snapshot holds an empty directory in their place): "fail"
     * (default) refuses; "include" snapshots each one read-only into its place in the snapshot.
     */
    nestedSubvolumes: z.enum(["fail", "include"]).default("fail"),
  })
  .strict();

/** The inputs as the user may write them (defaults optional). */
export type SnapshotArgsInput = z.input<typeof snapshotArgsSchema>;
/** The inputs after validation, with defaults filled in: what the provider works with and stores. */
export type SnapshotInputs = z.output<typeof snapshotArgsSchema>;
