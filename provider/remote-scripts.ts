/**
 * The shell scripts we run on hosts. Each is a fixed text (never built from input) that takes its
 * arguments as positional parameters: `sh -c SCRIPT NAME ARG...`, every argument quoted by the transport.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const cache = new Map<string, string>();

export type ScriptName = "inspect-rootfs" | "inspect-many" | "step" | "clone" | "discover" | "batch";

export function script(name: ScriptName): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(join(__dirname, "scripts", `${name}.sh`), "utf8");
    cache.set(name, text);
  }
  return text;
}

/** argv for running a named script with arguments. */
export function scriptArgv(name: ScriptName, args: readonly string[]): string[] {
  return ["sh", "-c", script(name), `plb-${name}`, ...args];
}
