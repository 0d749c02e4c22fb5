/**
 * Run the real Pulumi CLI from end-to-end tests, with no account and no
 * internet.
 *
 * The CLI, the Node.js language host and the dynamic-provider plugin live in
 * the bin dir built by `scripts/pulumi-install.sh` (`npm run pulumi:install`):
 * `${PULUMI_LXC_BTRFS_CACHE:-/var/cache/pulumi-lxc-btrfs}/pulumi-<version>/bin`,
 * where `<version>` is the installed `@pulumi/pulumi` version. This module
 * computes the same environment as `scripts/pulumi-env.sh` but never builds
 * anything: if the CLI is missing, {@link pulumiEnv} throws, so tests fail
 * instead of skipping.
 *
 * Secrets: nothing here prints the environment. Error messages carry the
 * command's arguments and output with the passphrase and any value listed in
 * {@link RunPulumiOptions.secrets} replaced by `[redacted]`.
 *
 * @example
 * const env = pulumiEnv({ stateDir: path.join(tmp, "state") });
 * await runPulumi(["stack", "init", "dev"], { cwd: projectDir, env });
 * const { stdout } = await runPulumi(["up", "--yes", "--skip-preview"], { cwd: projectDir, env });
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { repoRoot } from "./repo";

/** Passphrase used for stack secrets when none is given: a test value, not a secret. */
export const DEFAULT_TEST_PASSPHRASE = "local-test-passphrase";

/** Version of `@pulumi/pulumi` installed in the repo's node_modules, e.g. "3.276.0". */
export function pulumiSdkVersion(): string {
  const pkg = path.join(repoRoot(), "node_modules", "@pulumi", "pulumi", "package.json");
  return JSON.parse(fs.readFileSync(pkg, "utf8")).version;
}

/** The bin dir that `scripts/pulumi-install.sh` fills (it may not exist yet). */
export function pulumiBinDir(): string {
  const cache = process.env["PULUMI_LXC_BTRFS_CACHE"] || "/var/cache/pulumi-lxc-btrfs";
  return path.join(cache, `pulumi-${pulumiSdkVersion()}`, "bin");
}

/** Executables a Node.js Pulumi program with dynamic resources needs on PATH. */
export const PULUMI_EXECUTABLES = [
  "pulumi",
  "pulumi-language-nodejs",
  "pulumi-resource-pulumi-nodejs",
] as const;

export interface PulumiEnvOptions {
  /** Directory for the file backend (`PULUMI_BACKEND_URL=file://...`); created if missing.
   * Default: `$PULUMI_BACKEND_URL` if set, else `${PULUMI_LXC_BTRFS_STATE:-/var/tmp/pulumi-lxc-btrfs/state}`. */
  stateDir?: string;
  /** `PULUMI_HOME`; created if missing. Default: `$PULUMI_HOME`, else `/var/tmp/pulumi-lxc-btrfs/home`. */
  home?: string;
  /** `PULUMI_CONFIG_PASSPHRASE`. Default: `$PULUMI_CONFIG_PASSPHRASE`, else {@link DEFAULT_TEST_PASSPHRASE}. */
  passphrase?: string;
  /** Extra variables, applied last. */
  extra?: Record<string, string>;
}

/**
 * The environment for running Pulumi locally: `process.env` plus the bin dir
 * first on PATH, a file backend, a passphrase, and no update checks or plugin
 * downloads. Throws if the bin dir lacks any of {@link PULUMI_EXECUTABLES}.
 */
export function pulumiEnv(options: PulumiEnvOptions = {}): NodeJS.ProcessEnv {
  const bin = pulumiBinDir();
  const missing = PULUMI_EXECUTABLES.filter((exe) => !isExecutable(path.join(bin, exe)));
  if (missing.length > 0) {
    throw new Error(
      `Pulumi toolchain missing in ${bin} (${missing.join(", ")}). ` +
        "Build it once with `npm run pulumi:install` (bash scripts/pulumi-install.sh).",
    );
  }

  const env: NodeJS.ProcessEnv = { ...process.env };
  env["PATH"] = [
    bin,
    ...(process.env["PATH"] ?? "").split(path.delimiter).filter((p) => p && p !== bin),
  ].join(path.delimiter);
  env["PULUMI_LXC_BTRFS_BIN"] = bin;

  if (options.stateDir !== undefined || !process.env["PULUMI_BACKEND_URL"]) {
    const stateDir =
      options.stateDir ?? process.env["PULUMI_LXC_BTRFS_STATE"] ?? "/var/tmp/pulumi-lxc-btrfs/state";
    fs.mkdirSync(stateDir, { recursive: true });
    env["PULUMI_BACKEND_URL"] = `file://${path.resolve(stateDir)}`;
  }
  const home = options.home ?? process.env["PULUMI_HOME"] ?? "/var/tmp/pulumi-lxc-btrfs/home";
  fs.mkdirSync(home, { recursive: true });
  env["PULUMI_HOME"] = home;

  if (options.passphrase !== undefined) {
    env["PULUMI_CONFIG_PASSPHRASE"] = options.passphrase;
    delete env["PULUMI_CONFIG_PASSPHRASE_FILE"];
  } else if (env["PULUMI_CONFIG_PASSPHRASE"] === undefined && !env["PULUMI_CONFIG_PASSPHRASE_FILE"]) {
    env["PULUMI_CONFIG_PASSPHRASE"] = DEFAULT_TEST_PASSPHRASE;
  }
  env["PULUMI_SKIP_UPDATE_CHECK"] = "true";
  env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true";
  // Plain, stable output for assertions.
  env["NO_COLOR"] = "1";
  env["PULUMI_SKIP_CONFIRMATIONS"] = "true";
  Object.assign(env, options.extra ?? {});
  return env;
}

export interface RunPulumiOptions {
  /** Working directory: the project directory (holding Pulumi.yaml) for most commands. */
  cwd: string;
  /** Environment, normally from {@link pulumiEnv}. Default: `pulumiEnv()`. */
  env?: NodeJS.ProcessEnv;
  /** Text written to the command's stdin (e.g. `config set --secret` values). */
  input?: string;
  /** Kill the command after this many milliseconds. Default 120000. */
  timeoutMs?: number;
  /** Resolve instead of rejecting when the exit code is not 0. Default false. */
  allowFailure?: boolean;
  /** Values to redact from output placed in error messages (the passphrase always is). */
  secrets?: string[];
}

export interface RunPulumiResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `pulumi <args>` and collect its output. Rejects (unless `allowFailure`)
 * when the exit code is not 0, with an error that shows the arguments, the
 * exit code and the tail of the output, with secrets redacted. Adds
 * `--non-interactive` unless the arguments already have it.
 */
export function runPulumi(args: string[], options: RunPulumiOptions): Promise<RunPulumiResult> {
  const env = options.env ?? pulumiEnv();
  const fullArgs = args.includes("--non-interactive") ? args : [...args, "--non-interactive"];
  const secrets = [env["PULUMI_CONFIG_PASSPHRASE"] ?? "", ...(options.secrets ?? [])].filter(
    (s) => s.length > 0,
  );
  const redact = (text: string) => secrets.reduce((t, s) => t.split(s).join("[redacted]"), text);

  return new Promise((resolve, reject) => {
    const child = spawn("pulumi", fullArgs, {
      cwd: options.cwd,
      env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), options.timeoutMs ?? 120_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run pulumi ${redact(fullArgs.join(" "))}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr };
      if (code === 0 || options.allowFailure) {
        resolve(result);
        return;
      }
      const tail = (s: string) => redact(s.split("\n").slice(-40).join("\n"));
      reject(
        new Error(
          `pulumi ${redact(fullArgs.join(" "))} failed (${code === null ? `signal ${signal}` : `exit ${code}`})\n` +
            `--- stdout (tail) ---\n${tail(stdout)}\n--- stderr (tail) ---\n${tail(stderr)}`,
        ),
      );
    });
    child.stdin.end(options.input ?? "");
  });
}

/** `pulumi stack export` parsed as JSON (the checkpoint's `deployment` holds `resources`). */
export async function exportStack(
  options: RunPulumiOptions & { stack?: string },
): Promise<PulumiStackExport> {
  const args = ["stack", "export", ...(options.stack ? ["--stack", options.stack] : [])];
  const { stdout } = await runPulumi(args, options);
  return JSON.parse(stdout) as PulumiStackExport;
}

/** The parts of `pulumi stack export` output that tests look at. */
export interface PulumiStackExport {
  version: number;
  deployment: {
    resources?: PulumiStateResource[];
    [key: string]: unknown;
  };
}

/** One resource in exported stack state. */
export interface PulumiStateResource {
  urn: string;
  type: string;
  id?: string;
  custom?: boolean;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  [key: string]: unknown;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The operations a preview plans for this package's resources, sorted: `name create`, `name update`,
 * `name replace`, `name delete`.
 */
export function previewChanges(out: string): string[] {
  return out
    .split("\n")
    .map((l) =>
      /^\s*(?:[+~-]|\+-|-\+)\s+pulumi-nodejs:dynamic\/lxc-btrfs:\w+\s+(\S+)\s+(create|update|replace|delete)\b/.exec(
        l,
      ),
    )
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]} ${m[2]}`)
    .sort();
}

/** A Pulumi project made by {@link tempProject}. */
export interface TempProject {
  /** The project directory (Pulumi.yaml, the program, node_modules); its `state/` is the file backend. */
  dir: string;
  env: NodeJS.ProcessEnv;
}

/**
 * A Pulumi project in a new temporary directory `plb-TAG-*`: `Pulumi.yaml` (project `plb-TAG`, nodejs),
 * `files` written into it (the program, by default `index.ts`), `node_modules` linked to the
 * repository's (so the program, the TypeScript transpiler and the dynamic provider resolve
 * `@pulumi/pulumi` and `pulumi-lxc-btrfs` from there), and the environment of {@link pulumiEnv} with
 * the state in `DIR/state` (and `PULUMI_HOME` in `DIR/home` with `ownHome`, else the shared one), plus
 * `extraEnv`. `main` defaults to `index.ts`.
 */
export function tempProject(
  tag: string,
  files: Record<string, string>,
  opts: { main?: string; ownHome?: boolean; extraEnv?: Record<string, string> } = {},
): TempProject {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `plb-${tag}-`));
  fs.writeFileSync(
    path.join(dir, "Pulumi.yaml"),
    `name: plb-${tag}\nruntime: nodejs\nmain: ${opts.main ?? "index.ts"}\n`,
  );
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  fs.symlinkSync(path.join(repoRoot(), "node_modules"), path.join(dir, "node_modules"), "dir");
  const env = pulumiEnv({
    stateDir: path.join(dir, "state"),
    home: opts.ownHome ? path.join(dir, "home") : undefined,
    extra: opts.extraEnv,
  });
  return { dir, env };
}

/**
 * The arguments of `pulumi config set-all --path` that set `values` in plain text, lists and objects written
 * as paths (`hosts[0].name=h1`). Pulumi stores top-level values as strings and values inside lists and
 * objects as booleans and numbers where they look like one; `Config.getNumber`/`getBoolean` read either.
 */
export function configSetAllArgs(values: Record<string, unknown>): string[] {
  const args = ["config", "set-all", "--path"];
  const add = (key: string, v: unknown): void => {
    if (v === undefined) return;
    if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) add(`${key}[${i}]`, x);
    } else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) add(`${key}.${k}`, x);
    } else args.push("--plaintext", `${key}=${v}`);
  };
  for (const [k, v] of Object.entries(values)) add(k, v);
  return args;
}

/**
 * Sets a stack's config as a user would with `pulumi config set`: each key of `values` (see
 * {@link configSetAllArgs}), a list or object replacing whatever the key held before.
 */
export async function setStackConfig(
  stack: string,
  values: Record<string, unknown>,
  options: RunPulumiOptions,
): Promise<void> {
  for (const [k, v] of Object.entries(values)) {
    if (v !== null && typeof v === "object") await runPulumi(["config", "rm", k, "--stack", stack], options);
  }
  await runPulumi([...configSetAllArgs(values), "--stack", stack], options);
}
