/**
 * Connection secrets given once as provider configuration (stack config in the `lxc-btrfs` namespace):
 *
 *   pulumi config set --secret lxc-btrfs:privateKey "$(cat ~/.ssh/id_ed25519)"
 *
 * The dynamic provider's `configure` hands them over in the provider process; a Pulumi program (discovery
 * runs there) reads the same keys from its own config. They fill in a connection (and its jump host) that
 * names no credential of its own: a resource's own `password`, `privateKey`, `privateKeyPath` or
 * `agentSocketPath` wins, and then the config is not used for that connection at all. Nothing here ever puts
 * a value into a message, an output or a resource's state. Pure except for the one module-level setting.
 */

import type { JumpConnection } from "../core/connection";
import { UserError } from "../core/errors";

/** The stack config namespace, and the keys read from it. */
export const CONFIG_NAMESPACE = "lxc-btrfs";
export const CONFIG_KEYS = ["privateKey", "privateKeyPassword", "password"] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];
export type ProviderCredentials = Partial<Record<ConfigKey, string>>;

/** Marks a connection whose credentials came from stack config, so that messages name the config key. */
export interface FromConfig {
  credentialsFrom?: "config";
}

let configured: ProviderCredentials | Error | undefined;

/**
 * Reads the credentials from the stack config (`get("lxc-btrfs:privateKey")`, ...) and keeps them for this
 * process. A value that is set but unusable is kept as an error, thrown (naming the key and what to do, never
 * the value) by each connection that needs the config, so that connections with credentials of their own
 * are not held up by it.
 */
export function configureCredentials(config: { get(key: string): string | undefined }): void {
  try {
    configured = readCredentials((k) => config.get(`${CONFIG_NAMESPACE}:${k}`));
  } catch (e) {
    configured = e as Error;
  }
}

/** Forgets what `configureCredentials` kept (tests). */
export function resetCredentials(): void {
  configured = undefined;
}

/**
 * The credentials in force: those given to `configure` in the provider process; in a program (where
 * `configure` never runs, e.g. discovery) the same keys of the program's own stack config.
 */
export function providerCredentials(): ProviderCredentials {
  if (configured instanceof Error) throw configured;
  if (configured) return configured;
  try {
    const { runtime } = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
    return readCredentials((k) => runtime.getConfig(`${CONFIG_NAMESPACE}:${k}`));
  } catch (e) {
    if (e instanceof CredentialConfigError) throw e;
    return {};
  }
}

class CredentialConfigError extends UserError {}

function readCredentials(get: (key: ConfigKey) => unknown): ProviderCredentials {
  const out: ProviderCredentials = {};
  for (const k of CONFIG_KEYS) {
    const v = get(k);
    if (v === undefined || v === null) continue;
    if (typeof v !== "string" || v.trim() === "") {
      throw new CredentialConfigError(
        `stack config ${CONFIG_NAMESPACE}:${k} is set but empty or not a string; ` +
          `set it with \`pulumi config set --secret ${CONFIG_NAMESPACE}:${k} ...\` or remove it with \`pulumi config rm ${CONFIG_NAMESPACE}:${k}\``,
      );
    }
    out[k] = v;
  }
  return out;
}

/** Whether the connection names a credential of its own (then the config is not used for it). */
export function hasOwnCredentials(
  c: Pick<JumpConnection, "password" | "privateKey" | "privateKeyPath" | "agentSocketPath">,
): boolean {
  return !!(c.password || c.privateKey || c.privateKeyPath || c.agentSocketPath);
}

/**
 * The connection to dial: as given when it names a credential of its own or the config has none; else
 * with the config's credentials filled in (a `privateKeyPassword` of its own still wins). The jump host
 * is decided the same way, on its own fields.
 */
export function withProviderCredentials<T extends JumpConnection & { proxy?: JumpConnection }>(
  conn: T,
  given?: ProviderCredentials,
): T & FromConfig {
  const fill = <C extends JumpConnection>(c: C): C & FromConfig => {
    if (hasOwnCredentials(c)) return c;
    const creds = given ?? providerCredentials();
    if (!(creds.privateKey || creds.password)) return c;
    const filled: C & FromConfig = { ...c, credentialsFrom: "config" };
    if (creds.privateKey) filled.privateKey = creds.privateKey;
    if (creds.password) filled.password = creds.password;
    if (!c.privateKeyPassword && creds.privateKeyPassword)
      filled.privateKeyPassword = creds.privateKeyPassword;
    return filled;
  };
  const out = fill(conn);
  return conn.proxy ? { ...out, proxy: fill(conn.proxy) } : out;
}
