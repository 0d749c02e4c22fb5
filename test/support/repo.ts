/** Where this checkout is, for tests, benchmarks and programs run from `test/` or compiled into `dist/`. */
import * as fs from "node:fs";
import * as path from "node:path";

/** Root of this repository: the nearest directory above this file whose package.json is pulumi-lxc-btrfs's. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, "utf8")).name === "pulumi-lxc-btrfs") {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`cannot find the pulumi-lxc-btrfs repository above ${__dirname}`);
    }
    dir = parent;
  }
}

/**
 * Makes `node_modules/pulumi-lxc-btrfs` a link to the checkout itself, so that Pulumi programs run from
 * it (examples/, the demo, the e2e tests' programs) import the package by name, as users do.
 */
export function linkPackage(): void {
  const link = path.join(repoRoot(), "node_modules", "pulumi-lxc-btrfs");
  if (!fs.existsSync(link)) fs.symlinkSync("..", link, "dir");
}
