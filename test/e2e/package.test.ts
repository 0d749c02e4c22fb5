/**
 * The package as users install it, with the real Pulumi CLI on fleet host h4:
 * - `npm pack` carries the compiled code, the types and the remote scripts, and nothing else;
 * - a program directory outside the repository installs only the tarball and @pulumi/pulumi, gives the SSH
 *   key once as provider configuration (`lxc-btrfs:privateKey`), and `pulumi up` converts and clones;
 * - the state names no path of this machine, and no resource holds the key; rotating it is a config change;
 * - the directory moves to another path (the state backend stays where it is, as a team's would): refresh, a
 *   program change that removes a resource, and destroy all work from there;
 * - a stack whose stored providers are 0.1.0's (bound to the absolute path of the install) still refreshes
 *   in place, and after a move the first `pulumi up` rewrites them without contacting a host, after which
 *   refresh and destroy work.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect } from "chai";
import { countAccepted, type FleetHost, loadInventory, run } from "../support/fleet";
import { destroyContainers, hostSh, makeBusybox, NO_NETWORK } from "../support/host";
import {
  previewChanges as changes,
  exportStack,
  type PulumiStackExport,
  pulumiEnv,
  pulumiSdkVersion,
  runPulumi,
} from "../support/pulumi";
import { repoRoot } from "../support/repo";

const inv = loadInventory();
const h4 = inv.hosts.find((h) => h.name === "h4") as FleetHost;
const KEY = fs.readFileSync(inv.users.root.privateKeyPath!, "utf8");
const KEY_BODY = KEY.split("\n")[1];
const CONTAINERS = ["i13a", "i13b", "i13a-c", "i13l", "i13l-c"];

/** A user's program, in plain JavaScript (no TypeScript toolchain installed): names come from config. */
const PROGRAM = `const pulumi = require("@pulumi/pulumi");
const { LxcSnapshotClone, LxcSubvolumeRootfs } = require("pulumi-lxc-btrfs");

const cfg = new pulumi.Config();
// The key is the stack's provider configuration (lxc-btrfs:privateKey), or, as 0.1.0 needed, the
// connection's own privateKey.
const connection = { host: cfg.require("host"), hostKey: cfg.require("hostKey"), privateKey: cfg.getSecret("sshKey") };
const a = new LxcSubvolumeRootfs("a", { connection, container: cfg.require("a"), onDelete: "revert" });
if (cfg.get("b")) new LxcSubvolumeRootfs("b", { connection, container: cfg.require("b"), onDelete: "revert" }); // RESOURCE B
const clone = new LxcSnapshotClone("clone", { connection, source: cfg.require("a"), name: cfg.require("clone") }, { dependsOn: [a] });
exports.aSubvolume = a.subvolumeUuid;
exports.cloneParent = clone.parentUuid;
exports.node = process.version;
`;

/** Types as a TypeScript user sees them (checked with the repository's tsc against the installed package). */
const TYPED = `import { type LxcConnectionArgs, LxcSnapshotClone, LxcSubvolumeRootfs, type RootfsOutputs } from "pulumi-lxc-btrfs";
const connection: LxcConnectionArgs = { host: "10.0.0.5", privateKeyPath: "/root/.ssh/id_ed25519" };
export const r: typeof LxcSubvolumeRootfs = LxcSubvolumeRootfs;
export const c: typeof LxcSnapshotClone = LxcSnapshotClone;
export const store: RootfsOutputs["configBackingStore"] = "btrfs";
export const conn = connection;
`;

/** Every string in the exported state that is, or that quotes, an absolute path. */
function absolutePaths(state: unknown): string[] {
  const found: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") {
      if (v.startsWith("/")) found.push(v);
      for (const m of v.matchAll(/["'`](\/[^"'`\s]*)/g)) found.push(m[1]);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(state);
  return found;
}

/** A secret of `pulumi stack export --show-secrets` (`{<sig>, plaintext: <JSON>}`) as its value. */
function revealed(v: unknown): unknown {
  return v && typeof v === "object" && "plaintext" in v ? JSON.parse(String(v.plaintext)) : v;
}

/** The stored providers (`__provider` in inputs and outputs) of our resources. */
function storedProviders(state: PulumiStackExport): string[] {
  return (state.deployment.resources ?? [])
    .filter((r) => r.type.startsWith("pulumi-nodejs:dynamic/lxc-btrfs:"))
    .flatMap((r) => [r.inputs?.__provider, r.outputs?.__provider])
    .map((p) => String(p));
}

async function makeContainers(...names: string[]): Promise<void> {
  await destroyContainers(h4, ...names);
  for (const n of names) await makeBusybox(h4, n, NO_NETWORK);
}

/** `inode` and the config's rootfs line of a container on h4. */
const rootfsOf = (c: string) =>
  hostSh(h4, 'stat -c %i "/var/lib/lxc/$1/rootfs"; grep "^lxc.rootfs.path" "/var/lib/lxc/$1/config"', c);
const converted = (c: string) => `256\nlxc.rootfs.path = btrfs:/var/lib/lxc/${c}/rootfs\n`;
const plainDir = (c: string) =>
  new RegExp(`^(?!256\\n)\\d+\\nlxc.rootfs.path = dir:/var/lib/lxc/${c}/rootfs\\n$`);

const reEscape = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("the package as users install it (npm pack, a program outside the repository)", function () {
  this.timeout(900_000);
  let work: string; // outside the repository: the program directories, the tarball and the state backend
  let env: NodeJS.ProcessEnv;
  let tarball: string;
  let installed: string; // a program directory with the package installed, copied for each stack

  const pulumi = (cwd: string, stack: string, args: string[], extra: { input?: string } = {}) =>
    runPulumi([...args, "--stack", stack], { cwd, env, secrets: [KEY], timeoutMs: 600_000, ...extra });
  const newProgram = async (
    dir: string,
    stack: string,
    names: Record<string, string>,
    keyIn: "config" | "program",
  ) => {
    fs.cpSync(installed, dir, { recursive: true, verbatimSymlinks: true });
    await runPulumi(["stack", "init", stack], { cwd: dir, env });
    for (const [k, v] of Object.entries({ host: h4.address, hostKey: h4.hostKeys[0], ...names })) {
      await pulumi(dir, stack, ["config", "set", k, v]);
    }
    const key = keyIn === "config" ? "lxc-btrfs:privateKey" : "sshKey";
    await pulumi(dir, stack, ["config", "set", "--secret", key], { input: KEY });
  };

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "plb-i13-"));
    env = pulumiEnv({ stateDir: path.join(work, "state"), home: path.join(work, "home") });
    expect(work.startsWith(`${repoRoot()}/`)).to.equal(false);
    console.log(`      node ${process.version} runs the tests, the Pulumi program and its providers (PATH)`);
  });

  after(async () => {
    await destroyContainers(h4, ...CONTAINERS);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("npm pack carries the compiled code, the types and the remote scripts, and nothing else", async () => {
    const res = await run("npm", ["pack", "--json", "--pack-destination", work], {
      cwd: repoRoot(),
      check: true,
    });
    const [info] = JSON.parse(res.stdout) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(work, info.filename);
    const files = info.files.map((f) => f.path);
    // Every source module (compiled, with its types) and every remote script, under the same folders.
    const sources = (
      fs.readdirSync(path.join(repoRoot(), "provider"), { recursive: true }) as string[]
    ).sort();
    const scripts = sources.filter((f) => f.endsWith(".sh")).map((f) => `dist/provider/${f}`);
    const modules = sources
      .filter((f) => f.endsWith(".ts"))
      .flatMap((f) => [
        `dist/provider/${f.replace(/\.ts$/, ".js")}`,
        `dist/provider/${f.replace(/\.ts$/, ".d.ts")}`,
      ]);
    expect(scripts).to.include("dist/provider/rootfs/step.sh");
    expect(files).to.include.members(["package.json", "README.md", ...modules, ...scripts]);
    expect(
      files.filter((f) => !f.startsWith("dist/provider/") && !["package.json", "README.md"].includes(f)),
    ).to.deep.equal([]);
  });

  it("a fresh directory installs only the tarball and @pulumi/pulumi, and the types check", async () => {
    installed = path.join(work, "installed");
    fs.mkdirSync(installed);
    fs.writeFileSync(
      path.join(installed, "package.json"),
      JSON.stringify({ name: "i13-program", private: true }),
    );
    const npm = await run(
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        tarball,
        `@pulumi/pulumi@${pulumiSdkVersion()}`,
      ],
      { cwd: installed },
    );
    expect(npm.code, npm.stderr).to.equal(0);
    expect(npm.stderr).to.not.include("EBADENGINE");
    const pkg = JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8"));
    expect(Object.keys(pkg.dependencies).sort()).to.deep.equal(["@pulumi/pulumi", "pulumi-lxc-btrfs"]);
    const where = path.join(installed, "node_modules", "pulumi-lxc-btrfs");
    expect(fs.lstatSync(where).isSymbolicLink()).to.equal(false);
    expect(fs.existsSync(path.join(where, "dist", "provider", "rootfs", "step.sh"))).to.equal(true);
    fs.writeFileSync(
      path.join(installed, "Pulumi.yaml"),
      "name: i13-program\nruntime: nodejs\nmain: index.js\n",
    );
    fs.writeFileSync(path.join(installed, "index.js"), PROGRAM);

    fs.writeFileSync(path.join(installed, "typed.ts"), TYPED);
    const tsc = path.join(repoRoot(), "node_modules", "typescript", "bin", "tsc");
    for (const resolution of [
      ["--module", "node16", "--moduleResolution", "node16"],
      ["--moduleResolution", "node"],
    ]) {
      const r = await run(
        process.execPath,
        [tsc, "--noEmit", "--strict", "--skipLibCheck", ...resolution, "typed.ts"],
        { cwd: installed },
      );
      expect(r.stdout + r.stderr, resolution.join(" ")).to.equal("");
      expect(r.code).to.equal(0);
    }
    fs.rmSync(path.join(installed, "typed.ts"));
  });

  describe("a stack run from one directory, then from another path", () => {
    const STACK = "i13";
    let first: string;
    let moved: string;
    before(() => {
      first = path.join(work, "team", "alice", "infra");
      moved = path.join(work, "ci", "checkout-2", "infra");
    });

    it("pulumi up converts and clones, with the key given once as provider configuration", async () => {
      await makeContainers("i13a", "i13b");
      await newProgram(first, STACK, { a: "i13a", b: "i13b", clone: "i13a-c" }, "config");
      await pulumi(first, STACK, ["up", "--yes", "--skip-preview"]);
      expect(await rootfsOf("i13a")).to.equal(converted("i13a"));
      expect(await rootfsOf("i13b")).to.equal(converted("i13b"));
      const parent = await hostSh(
        h4,
        'btrfs subvolume show "/var/lib/lxc/$1/rootfs" | sed -n "s/^\\s*Parent UUID:\\s*//p"',
        "i13a-c",
      );
      const outs = JSON.parse((await pulumi(first, STACK, ["stack", "output", "--json"])).stdout);
      expect(outs.cloneParent).to.equal(parent.trim());
      expect(outs.cloneParent).to.equal(outs.aSubvolume);
      expect(outs.node).to.equal(process.version);
    });

    it("the state names no path of this machine and no resource holds the key", async () => {
      const state = await exportStack({ cwd: first, env, stack: STACK });
      const text = JSON.stringify(state);
      for (const local of [work, repoRoot(), os.homedir(), fs.realpathSync(os.tmpdir()), inv.fleetDir]) {
        expect(text, local).to.not.include(`${local}/`);
      }
      expect(
        absolutePaths(state).filter((p) => !p.startsWith("/var/lib/lxc/") && p !== "/var/lib/lxc"),
      ).to.deep.equal([]);
      const providers = storedProviders(state);
      expect(providers).to.have.length(6);
      for (const p of providers) expect(p).to.include('require("pulumi-lxc-btrfs/dynamic")');
      console.log(
        `      __provider sizes in state: ${[...new Set(providers.map((p) => p.length))].join(", ")} bytes`,
      );

      // Decrypted: no resource holds the key. It is stack config, which the engine also records as the
      // inputs of the stack's default pulumi-nodejs provider, encrypted like every secret config value.
      const { stdout } = await pulumi(first, STACK, ["stack", "export", "--show-secrets"]);
      const plain = JSON.parse(stdout) as PulumiStackExport;
      const holding = (plain.deployment.resources ?? [])
        .filter((r) => JSON.stringify(r).includes(KEY_BODY))
        .map(
          (r) =>
            `${r.type} ${Object.keys(r.inputs ?? {}).filter((k) => JSON.stringify(r.inputs?.[k]).includes(KEY_BODY))}`,
        );
      expect(holding).to.deep.equal(["pulumi:providers:pulumi-nodejs lxc-btrfs:privateKey"]);
      for (const r of (plain.deployment.resources ?? []).filter((x) => x.type.startsWith("pulumi-nodejs:"))) {
        expect(Object.keys(revealed(r.outputs?.connection) as object).sort(), r.urn).to.deep.equal([
          "commandTimeout",
          "dialErrorLimit",
          "host",
          "hostKey",
          "insecureSkipHostKeyCheck",
          "perDialTimeout",
          "port",
          "sudo",
          "user",
        ]);
      }
      const provider = state.deployment.resources?.find((r) => r.type === "pulumi:providers:pulumi-nodejs");
      expect(Object.keys(provider?.inputs?.["lxc-btrfs:privateKey"] as object)).to.include("ciphertext");
      expect(text).to.not.include(KEY_BODY);
    });

    it("from another path: refresh, a program change removing a resource, and destroy all work", async () => {
      fs.mkdirSync(path.dirname(moved), { recursive: true });
      fs.renameSync(first, moved);
      expect(fs.existsSync(first)).to.equal(false);

      // Rotating the key is a config change: no resource shows a diff. refresh and destroy use the stack
      // config recorded by the last `pulumi up` unless given --run-program (then the current config).
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(work, "other-key")], {
        check: true,
      });
      const other = fs.readFileSync(path.join(work, "other-key"), "utf8");
      const setKey = (key: string) =>
        pulumi(moved, STACK, ["config", "set", "--secret", "lxc-btrfs:privateKey"], { input: key });
      await setKey(other);
      expect(changes((await pulumi(moved, STACK, ["preview"])).stdout)).to.deep.equal([]);
      expect((await pulumi(moved, STACK, ["refresh", "--yes", "--skip-preview"])).stdout).to.match(
        /\b4 unchanged\b/,
      );
      const refused = await runPulumi(
        ["refresh", "--run-program", "--yes", "--skip-preview", "--stack", STACK],
        {
          cwd: moved,
          env,
          allowFailure: true,
          secrets: [KEY, other],
        },
      );
      expect(refused.code).to.equal(1);
      // Each read names its resource (whichever fails first is printed).
      expect(refused.stdout).to.match(
        new RegExp(
          `error: (LxcSubvolumeRootfs i13[a-z]+|LxcSnapshotClone i13[a-z-]+ \\(from i13[a-z]+\\)): ${reEscape(
            `cannot log in to root@${h4.address}:22: the server rejected the credentials given (stack config lxc-btrfs:privateKey). Check the user, and that the key is in the user's authorized_keys.`,
          )}`,
        ),
      );
      expect(refused.stdout + refused.stderr).to.not.include(other.split("\n")[1]);
      await setKey(KEY);
      const refresh = await pulumi(moved, STACK, ["refresh", "--run-program", "--yes", "--skip-preview"]);
      expect(refresh.stdout).to.match(/\b4 unchanged\b/);

      // The program no longer declares b: its delete runs with the provider stored in state.
      const program = fs.readFileSync(path.join(moved, "index.js"), "utf8");
      fs.writeFileSync(
        path.join(moved, "index.js"),
        program
          .split("\n")
          .filter((l) => !l.includes("RESOURCE B"))
          .join("\n"),
      );
      expect(changes((await pulumi(moved, STACK, ["preview"])).stdout)).to.deep.equal(["b delete"]);
      await pulumi(moved, STACK, ["up", "--yes", "--skip-preview"]);
      expect(await rootfsOf("i13b")).to.match(plainDir("i13b"));
      expect(await rootfsOf("i13a")).to.equal(converted("i13a"));

      await pulumi(moved, STACK, ["destroy", "--yes", "--skip-preview"]);
      expect(await hostSh(h4, "cd /var/lib/lxc && ls -d i13a*")).to.equal("i13a\n");
      expect(await rootfsOf("i13a")).to.match(plainDir("i13a"));
      await runPulumi(["stack", "rm", "--yes", STACK], { cwd: moved, env });
    });
  });

  describe("a stack written by 0.1.0 (stored providers bound to the install's absolute path)", () => {
    const STACK = "i13legacy";
    let first: string;
    let moved: string;
    before(() => {
      first = path.join(work, "legacy", "infra");
      moved = path.join(work, "legacy-moved", "infra");
    });

    it("still refreshes where it was made, with this version installed there", async () => {
      await makeContainers("i13l");
      await newProgram(first, STACK, { a: "i13l", clone: "i13l-c" }, "program");
      await pulumi(first, STACK, ["up", "--yes", "--skip-preview"]);
      // The same state with each stored provider as 0.1.0 serialized it for this install.
      const dir = path.join(first, "node_modules", "pulumi-lxc-btrfs", "dist", "provider");
      const old = (kind: string) =>
        fs
          .readFileSync(path.join(repoRoot(), "test", "fixtures", `provider-0.1.0-${kind}.js.txt`), "utf8")
          .split("@@PROVIDER_DIR@@")
          .join(dir);
      const state = await exportStack({ cwd: first, env, stack: STACK });
      for (const r of state.deployment.resources ?? []) {
        const kind = r.type.endsWith(":LxcSubvolumeRootfs")
          ? "rootfs"
          : r.type.endsWith(":LxcSnapshotClone")
            ? "clone"
            : "";
        if (!kind) continue;
        (r.inputs as Record<string, unknown>).__provider = old(kind);
        (r.outputs as Record<string, unknown>).__provider = old(kind);
      }
      const file = path.join(work, "legacy-state.json");
      fs.writeFileSync(file, JSON.stringify(state));
      await pulumi(first, STACK, ["stack", "import", "--file", file]);
      expect(JSON.stringify(await exportStack({ cwd: first, env, stack: STACK }))).to.include(
        `${dir}/rootfs-provider.js`,
      );

      const refresh = await pulumi(first, STACK, ["refresh", "--yes", "--skip-preview"]);
      expect(refresh.stdout).to.match(/\b3 unchanged\b/);
    });

    it("after a move, the first pulumi up rewrites the stored providers without contacting a host", async () => {
      fs.mkdirSync(path.dirname(moved), { recursive: true });
      fs.renameSync(first, moved);
      expect(changes((await pulumi(moved, STACK, ["preview"])).stdout)).to.deep.equal([
        "a update",
        "clone update",
      ]);
      const logins = countAccepted(h4);
      await pulumi(moved, STACK, ["up", "--yes", "--skip-preview"]);
      expect(countAccepted(h4)).to.equal(logins);
      const state = await exportStack({ cwd: moved, env, stack: STACK });
      expect(JSON.stringify(state)).to.not.include(work);
      for (const p of storedProviders(state)) expect(p).to.include('require("pulumi-lxc-btrfs/dynamic")');
      expect(changes((await pulumi(moved, STACK, ["preview"])).stdout)).to.deep.equal([]);
    });

    it("then refresh and destroy work from there", async () => {
      expect((await pulumi(moved, STACK, ["refresh", "--yes", "--skip-preview"])).stdout).to.match(
        /\b3 unchanged\b/,
      );
      await pulumi(moved, STACK, ["destroy", "--yes", "--skip-preview"]);
      expect(await hostSh(h4, "cd /var/lib/lxc && ls -d i13l*")).to.equal("i13l\n");
      expect(await rootfsOf("i13l")).to.match(plainDir("i13l"));
      await runPulumi(["stack", "rm", "--yes", STACK], { cwd: moved, env });
    });
  });
});
