/** LxcSubvolumeRootfs's inputs: the one definition its types, checks and docs derive from. */
import { z } from "zod";
import { absolutePath, containerName } from "../core/inputs";
import { connectionSchema } from "../transport/connection";

export const rootfsArgsSchema = z
  .object({
    connection: connectionSchema,
    container: containerName,
    lxcPath: absolutePath.default("/var/lib/lxc"),
    ifRunning: z.enum(["fail", "restart", "live"]).default("fail"),
    nestedSubvolumes: z.enum(["fail", "keep"]).default("fail"),
    keepBackup: z.boolean().default(false),
    onDelete: z.enum(["retain", "revert"]).default("retain"),
  })
  .strict();

export type RootfsInputs = z.output<typeof rootfsArgsSchema>;
