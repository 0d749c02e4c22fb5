/**
 * LxcSubvolumeRootfs's inputs: the one definition its types, checks and docs derive from. The comment on
 * each key is what users see on `LxcSubvolumeRootfsArgs` in their editor; README's input table lists the
 * same keys (test/unit/readme.test.ts).
 */
import { z } from "zod";
import { connectionSchema } from "../core/connection";
import { absolutePath, containerName } from "../core/inputs";

export const rootfsArgsSchema = z
  .object({
    /** How to reach the host: address, user, credentials, host key policy. */
    connection: connectionSchema,
    /** The container's name. */
    container: containerName,
    /** LXC's directory of containers. Default /var/lib/lxc. */
    lxcPath: absolutePath.default("/var/lib/lxc"),
    /**
     * "fail" (default) refuses a running container; "restart" stops, converts and starts it again; "live"
     * copies it while it runs and stops it only to copy what changed meanwhile (downtime bounded by change).
     */
    ifRunning: z.enum(["fail", "restart", "live"]).default("fail"),
    /** "fail" (default) refuses subvolumes nested inside rootfs; "keep" moves them into the new subvolume. */
    nestedSubvolumes: z.enum(["fail", "keep"]).default("fail"),
    /** Keep the original directory as rootfs.pre-btrfs instead of deleting it. Default false. */
    keepBackup: z.boolean().default(false),
    /**
     * The name of a read-only snapshot of the container (`<lxcPath>/<container>/snaps/<name>/rootfs`, as
     * LxcSnapshot and lxc-snapshot make them): when set on create, or changed, the rootfs becomes a writable
     * snapshot of it (the container's changes since are replaced). Left unchanged, it never restores again;
     * removed, it changes nothing. The replaced rootfs is kept as rootfs.pre-restore when keepBackup is set.
     * A running container follows ifRunning; "live" restores as "restart" does (a snapshot needs no pre-copy).
     */
    restoreFrom: containerName.optional(),
    /** "retain" (default) leaves the subvolume on delete; "revert" turns it back into a plain directory. */
    onDelete: z.enum(["retain", "revert"]).default("retain"),
  })
  .strict();

/** The inputs as the user may write them (defaults optional). */
export type RootfsArgsInput = z.input<typeof rootfsArgsSchema>;
/** The inputs after validation, with defaults filled in: what the provider works with and stores. */
export type RootfsInputs = z.output<typeof rootfsArgsSchema>;
