/**
 * Stacks of the programs in examples/ for the e2e tests. The examples read only stack config, as a user's
 * program would; the tests set it here from the fleet's inventory.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Inventory } from "./fleet";
import { pulumiEnv, runPulumi, setStackConfig } from "./pulumi";
import { linkPackage, repoRoot } from "./repo";

/**
 * A new stack `STACK` of the program in examples/NAME, on a file backend of its own, with `config` set
 * (the stack's config file in the example's directory is written anew).
 */
export async function exampleStack(name: string, stack: string, config: Record<string, unknown>) {
  const cwd = path.join(repoRoot(), "examples", name);
  const state = fs.mkdtempSync(path.join(os.tmpdir(), `plb-ex-${name}-`));
  const env = pulumiEnv({ stateDir: state, extra: { PULUMI_NODEJS_TRANSPILE_ONLY: "true" } });
  const run = (args: string[]) => runPulumi([...args, "--stack", stack], { cwd, env, timeoutMs: 900_000 });
  linkPackage();
  fs.rmSync(path.join(cwd, `Pulumi.${stack}.yaml`), { force: true });
  await runPulumi(["stack", "init", stack], { cwd, env });
  await setStackConfig(stack, config, { cwd, env });
  return { cwd, state, run };
}

/** How the examples reach the fleet: its root key and known_hosts. */
export const fleetAccess = (fleet: Inventory) => ({
  privateKeyPath: fleet.users.root.privateKeyPath,
  knownHostsPath: fleet.knownHostsPath,
});
