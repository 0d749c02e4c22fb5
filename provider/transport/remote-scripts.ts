/**
 * The shell scripts we run on hosts. Each is a fixed text (never built from input) that takes its
 * arguments as positional parameters: `sh -c SCRIPT NAME ARG...`, every argument quoted by the transport.
 * Every script is sent with prelude.sh in front of it: the helpers, exit codes and failpoint they share.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const cache = new Map<string, string>();

/** Each script, by the folder it lives in beside the TypeScript that runs it. */
const SCRIPT_DIRS = {
  "inspect-rootfs": "rootfs",
  "inspect-many": "rootfs",
  step: "rootfs",
  clone: "clone",
  snapshot: "snapshot",
  discover: "fleet",
  batch: "transport",
} as const;

export type ScriptName = keyof typeof SCRIPT_DIRS;

/**
 * Shell libraries (provider/transport/NAME.sh) sent between the prelude and the scripts that use them, so
 * that those scripts share one copy of the code without every other command carrying it.
 */
export const SCRIPT_LIBS: Partial<Record<ScriptName, readonly string[]>> = {
  step: ["flags"],
  clone: ["flags"],
};

/**
 * Scripts sent inside others as a shell function of that name, run in a subshell (its `exit` ends only the
 * function): step.sh ends a batch with the inspection of the next round (its `inspect` op).
 */
export const SCRIPT_FUNCTIONS: Partial<Record<ScriptName, readonly [string, ScriptName][]>> = {
  step: [["inspect_rootfs", "inspect-rootfs"]],
};

export const SCRIPT_NAMES = Object.keys(SCRIPT_DIRS) as ScriptName[];

/** Where a script's file is (in the source tree, or in dist/ after the build copies it). */
export function scriptPath(name: ScriptName): string {
  return join(__dirname, "..", SCRIPT_DIRS[name], `${name}.sh`);
}

/** Where the prelude is: provider/transport/prelude.sh, beside this file. */
export function preludePath(): string {
  return join(__dirname, "prelude.sh");
}

/** Pure: the prelude as sent, without its comment lines (they are for readers, and every command carries it). */
export function preludeAsSent(text: string): string {
  return text
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n");
}

/**
 * The text sent for a script: the prelude, its libraries (SCRIPT_LIBS), the scripts it runs as functions
 * (SCRIPT_FUNCTIONS), then the script's file. Read once.
 */
export function script(name: ScriptName): string {
  let text = cache.get(name);
  if (text === undefined) {
    const libs = (SCRIPT_LIBS[name] ?? []).map((lib) =>
      preludeAsSent(readFileSync(join(__dirname, `${lib}.sh`), "utf8")),
    );
    const functions = (SCRIPT_FUNCTIONS[name] ?? []).map(
      ([fn, of]) => `${fn}() (\n${preludeAsSent(readFileSync(scriptPath(of), "utf8"))}\n)\n`,
    );
    text =
      preludeAsSent(readFileSync(preludePath(), "utf8")) +
      libs.join("") +
      functions.join("") +
      readFileSync(scriptPath(name), "utf8");
    cache.set(name, text);
  }
  return text;
}

/** argv for running a named script with arguments. */
export function scriptArgv(name: ScriptName, args: readonly string[]): string[] {
  return ["sh", "-c", script(name), `plb-${name}`, ...args];
}
