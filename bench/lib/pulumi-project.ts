/**
 * Temporary Pulumi projects for the benchmark, run with the real CLI: a project dir whose index.js loads
 * a compiled program from the bench build, a file backend of its own, and timed CLI runs.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pulumiEnv, runPulumi } from "../../test/support/pulumi";

export interface BenchProject {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Runs `pulumi ARGS --stack STACK` and returns its wall time in ms; rejects on failure. */
  run(
    args: string[],
    stack: string,
    extraEnv?: Record<string, string>,
  ): Promise<{ ms: number; stdout: string }>;
  init(stack: string): Promise<void>;
}

/**
 * A project NAME in workDir running `program` (an absolute path to a compiled .js module). The work dir
 * must be inside the repository, so that `@pulumi/pulumi` resolves from its node_modules.
 */
export function makeProject(workDir: string, name: string, program: string): BenchProject {
  const dir = path.join(workDir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), `name: ${name}\nruntime: nodejs\nmain: index.js\n`);
  fs.writeFileSync(path.join(dir, "index.js"), `module.exports = require(${JSON.stringify(program)});\n`);
  const env = pulumiEnv({ stateDir: path.join(dir, ".state"), home: path.join(workDir, ".pulumi-home") });
  return {
    dir,
    env,
    async run(args, stack, extraEnv = {}) {
      const t = performance.now();
      const r = await runPulumi([...args, "--stack", stack], {
        cwd: dir,
        env: { ...env, ...extraEnv },
        timeoutMs: 600_000,
      });
      return { ms: performance.now() - t, stdout: r.stdout };
    },
    async init(stack) {
      await runPulumi(["stack", "init", stack], { cwd: dir, env });
    },
  };
}

/** A no-op preview or update prints "N unchanged" and nothing to create, update, delete or replace. */
export function isNoop(out: string): boolean {
  return /\d+ unchanged/.test(out) && !/ to (create|update|delete|replace)/.test(out);
}
