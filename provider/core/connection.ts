/**
 * How to reach a host, as users write it: the fields of @pulumi/command's remote.Connection, plus sudo, host
 * key policy and limits. Ports and timeouts are restricted to sane ranges. Pure: no SSH, no Pulumi.
 */
import { z } from "zod";
import { absolutePath } from "./inputs";

const HOST =
  /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?)$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

const secretString = z.string().min(1, { error: "must not be empty when given" });

const baseConnection = z
  .object({
    host: z
      .string()
      .min(1, { error: "must not be empty: give the address or DNS name of the host" })
      .refine((s) => s === "" || HOST.test(s), { error: "must be a DNS name or an IP address" }),
    port: z
      .number({ error: "must be a number" })
      .int({ error: "must be a whole number" })
      .min(1, { error: "must be between 1 and 65535" })
      .max(65535, { error: "must be between 1 and 65535" })
      .default(22),
    user: z
      .string()
      .refine((s) => USER.test(s), { error: "must be a user name" })
      .default("root"),
    password: secretString.optional(),
    privateKey: secretString.optional(),
    privateKeyPath: absolutePath.optional(),
    privateKeyPassword: secretString.optional(),
    agentSocketPath: absolutePath.optional(),
    hostKey: z
      .string()
      .refine(
        (s) =>
          /^SHA256:[A-Za-z0-9+/]{43}=?$/.test(s) ||
          /^(ssh|ecdsa|sk)-[a-z0-9@.-]+ [A-Za-z0-9+/]+=*( .*)?$/.test(s),
        {
          error: "must be an OpenSSH public key line ('ssh-ed25519 AAAA...') or a 'SHA256:...' fingerprint",
        },
      )
      .optional(),
    knownHostsPath: absolutePath.optional(),
    insecureSkipHostKeyCheck: z.boolean().default(false),
    dialErrorLimit: z
      .number({ error: "must be a number" })
      .int({ error: "must be a whole number" })
      .min(1, { error: "must be between 1 and 100" })
      .max(100, { error: "must be between 1 and 100" })
      .default(10),
    perDialTimeout: z
      .number()
      .positive({ error: "must be a positive number of seconds" })
      .max(3600, { error: "must be at most 3600 seconds" })
      .default(15),
    commandTimeout: z
      .number()
      .positive({ error: "must be a positive number of seconds" })
      .max(86400, { error: "must be at most 86400 seconds" })
      .default(3600),
    sudo: z.boolean().default(false),
  })
  .strict();

/** A jump host takes the same fields as the target, except another jump host. */
export const connectionSchema = baseConnection.extend({ proxy: baseConnection.optional() }).strict();

export type ConnectionArgs = z.input<typeof connectionSchema>;
export type Connection = z.output<typeof connectionSchema>;
export type JumpConnection = z.output<typeof baseConnection>;

/** `user@host:port` (and the jump host), for messages: never a secret. */
export function describeTarget(
  conn: Pick<Connection, "user" | "host" | "port"> & { proxy?: JumpConnection },
): string {
  const t = `${conn.user}@${conn.host}:${conn.port}`;
  return conn.proxy ? `${t} (via ${conn.proxy.user}@${conn.proxy.host}:${conn.proxy.port})` : t;
}
