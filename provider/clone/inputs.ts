/** LxcSnapshotClone's inputs: the one definition its types, checks and docs derive from. */
import { z } from "zod";
import { absolutePath, containerName, hostname } from "../core/inputs";
import { connectionSchema } from "../transport/connection";

export const cloneArgsSchema = z
  .object({
    connection: connectionSchema,
    lxcPath: absolutePath.default("/var/lib/lxc"),
    source: containerName,
    name: containerName,
    ifSourceRunning: z.enum(["fail", "freeze", "restart"]).default("fail"),
    start: z.boolean().default(false),
    hostname: hostname.optional(),
  })
  .strict()
  .refine((a) => a.source !== a.name, { error: "must differ from source", path: ["name"] });

export type CloneInputs = z.output<typeof cloneArgsSchema>;
