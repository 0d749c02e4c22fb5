/**
 * LxcSnapshotClone's inputs: the one definition its types, checks and docs derive from. The comment on
 * each key is what users see on `LxcSnapshotCloneArgs` in their editor; README's input table lists the
 * same keys (test/unit/readme.test.ts).
 */
import { z } from "zod";
import { connectionSchema } from "../core/connection";
import { absolutePath, containerName, hostname } from "../core/inputs";

export const cloneArgsSchema = z
  .object({
    /** How to reach the host: address, user, credentials, host key policy. */
    connection: connectionSchema,
    /**
     * How to reach the source's host, when it is another host than the clone's (`connection`, the default):
     * the clone is then a copy made with btrfs send on the source and btrfs receive on the target, relayed
     * through the provider (no keys or trust between the hosts). Hosts compare by user, host and port.
     */
    sourceConnection: connectionSchema.optional(),
    /** LXC's directory of containers (of the source and the clone, on each host). Default /var/lib/lxc. */
    lxcPath: absolutePath.default("/var/lib/lxc"),
    /** The container to clone; its rootfs must be a subvolume with a btrfs: config (see LxcSubvolumeRootfs). */
    source: containerName,
    /** The clone's name. */
    name: containerName,
    /**
     * Clone a snapshot of the source instead of the source itself: the name of a read-only snapshot in
     * `<lxcPath>/<source>/snaps/` (an LxcSnapshot's `name`). The source's state does not matter then.
     */
    snapshot: containerName.optional(),
    /** "fail" (default), "freeze" (freeze the source for the instant of the snapshot) or "restart". */
    ifSourceRunning: z.enum(["fail", "freeze", "restart"]).default("fail"),
    /** Start the clone after creating it. Default false. */
    start: z.boolean().default(false),
    /** The clone's hostname. Default: its name. */
    hostname: hostname.optional(),
    /**
     * Any string (a number is taken as its decimal string: `pulumi config set` stores `2` as a number); when it changes, the clone is re-made from the source's current state and its own changes
     * are replaced. Across hosts (`sourceConnection`), an update: only what changed since the last copy is
     * sent (btrfs send -p against the snapshot kept on both hosts), and the clone keeps its config and MACs.
     * On the source's host, a replacement (a new snapshot clone, with fresh MACs).
     */
    revision: z
      .union([z.string().max(256), z.number().finite()])
      .transform((v) => String(v))
      .optional(),
    /**
     * What a refresh (a changed `revision`) does with a running cross-host clone: "fail" (the default:
     * refused before anything is sent) or "restart" (stopped for the swap of its rootfs, started again).
     */
    ifRunning: z.enum(["fail", "restart"]).optional(),
  })
  .strict()
  .refine((a) => a.source !== a.name, { error: "must differ from source", path: ["name"] });

/** The inputs as the user may write them (defaults optional). */
export type CloneArgsInput = z.input<typeof cloneArgsSchema>;
/** The inputs after validation, with defaults filled in: what the provider works with and stores. */
export type CloneInputs = z.output<typeof cloneArgsSchema>;
