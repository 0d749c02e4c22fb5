/**
 * A team's shared state in the fleet's PostgreSQL server, with the real Pulumi CLI: a stack made in a local
 * directory moves there with `pulumi stack export` / `import` (as README.md says), keeps its outputs and its
 * secret, and the secret is stored only encrypted: in `pulumi stack export` and in every row of the table,
 * read with psql. And a lock left by a `pulumi up` killed mid-update refuses every update of the stack until the
 * `pulumi cancel` the sharded runner's message names clears it. Touches no fleet host (only the database).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect } from "chai";
import { parseStackLocks } from "../../examples/sharded/lock";
import { loadInventory } from "../support/fleet";
import { waitFor } from "../support/host";
import { type PostgresState, postgresState } from "../support/postgres";
import { exportStack, runPulumi, type TempProject, tempProject } from "../support/pulumi";

const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
const config = new pulumi.Config();
export const token = config.requireSecret("token");
export const greeting = pulumi.interpolate\`hello \${config.require("who")}\`;
`;
const SECRET = "s3cret-token-7f2c9e";
/** Resources with every ciphertext blanked: the CLI encrypts a secret afresh (new nonce) on export and import. */
const sealed = (resources: unknown) =>
  JSON.parse(JSON.stringify(resources).replace(/"ciphertext":"v1:[^"]*"/g, '"ciphertext":"v1:"'));

describe("shared state in PostgreSQL: moving a stack there, and its secrets", function () {
  this.timeout(300_000);
  const inv = loadInventory();
  let project: TempProject;
  let pg: PostgresState;
  let fileEnv: NodeJS.ProcessEnv;
  let pgEnv: NodeJS.ProcessEnv;
  const pulumi = (args: string[], env: NodeJS.ProcessEnv, input?: string) =>
    runPulumi(args, { cwd: project.dir, env, input, secrets: [SECRET, pg.password] });

  before(() => {
    project = tempProject("move", { "index.ts": PROGRAM }, { ownHome: true });
    pg = postgresState("move", inv);
    fileEnv = project.env;
    pgEnv = { ...project.env, ...pg.env };
  });

  after(async () => {
    await pg.drop();
    fs.rmSync(project.dir, { recursive: true, force: true });
  });

  it("runs a server that holds no descriptor of whoever started it (a lock held around up.sh is released)", () => {
    const pid = Number(
      fs.readFileSync(path.join(inv.postgres.dataDir, "postmaster.pid"), "utf8").split("\n")[0],
    );
    const fdDir = `/proc/${pid}/fd`;
    const targets = fs.readdirSync(fdDir).map((fd) => fs.readlinkSync(path.join(fdDir, fd)));
    const foreign = targets.filter(
      (t) => !/^(pipe|socket|anon_inode):/.test(t) && t !== "/dev/null" && t !== inv.postgres.log,
    );
    expect(foreign, `descriptors of postgres ${pid}`).to.deep.equal([]);
  });

  it("moves a stack from a directory to PostgreSQL with stack export / import, same outputs, secret encrypted", async () => {
    // 1. The stack in a local directory, with a secret.
    await pulumi(["stack", "init", "dev"], fileEnv);
    await pulumi(["config", "set", "who", "team"], fileEnv);
    await pulumi(["config", "set", "--secret", "token"], fileEnv, SECRET);
    await pulumi(["up", "--yes", "--skip-preview"], fileEnv);
    const before = await exportStack({ cwd: project.dir, env: fileEnv });

    // 2. The move: export (secrets stay encrypted: no --show-secrets), a stack of the same name in the
    //    database (Pulumi.dev.yaml keeps its encryption salt, the passphrase is the same), import.
    const exported = path.join(project.dir, "dev.json");
    fs.writeFileSync(exported, JSON.stringify(before));
    expect(fs.readFileSync(exported, "utf8")).to.not.include(SECRET);
    await pulumi(["stack", "init", "dev"], pgEnv);
    expect((await pulumi(["stack", "import", "--file", exported], pgEnv)).stdout).to.equal(
      "Import complete.\n",
    );

    // 3. Verify: the same resources, the same outputs (the secret decrypts), and nothing to change.
    const after = await exportStack({ cwd: project.dir, env: pgEnv });
    expect(sealed(after.deployment.resources)).to.deep.equal(sealed(before.deployment.resources));
    const outputs = JSON.parse((await pulumi(["stack", "output", "--json", "--show-secrets"], pgEnv)).stdout);
    expect(outputs).to.deep.equal({ greeting: "hello team", token: SECRET });
    const preview = await pulumi(["preview", "--expect-no-changes"], pgEnv);
    expect(preview.stdout).to.match(/\n {4}1 unchanged\n/);
    expect((await pulumi(["stack", "ls", "--json"], pgEnv)).stdout).to.include('"name": "dev"');

    // 4. No secret in plain text: not in the export, not in any row of the table (decoded), while the
    //    export with --show-secrets does hold it (so the assertions above could fail).
    const stack = after.deployment.resources?.find((r) => r.type === "pulumi:pulumi:Stack");
    const token = stack?.outputs?.token as Record<string, unknown>;
    expect(Object.keys(token).sort()).to.deep.equal(["4dabf18193072939515e22adb298388d", "ciphertext"]);
    expect(token.ciphertext).to.match(/^v1:/);
    expect(JSON.stringify(after)).to.not.include(SECRET);
    const rows = await pg.rows();
    const keys = rows.map((r) => r.key.slice(r.key.indexOf("/.pulumi/") + 1));
    expect(keys).to.include(".pulumi/stacks/plb-move/dev.json");
    for (const r of rows) expect(r.text, r.key).to.not.include(SECRET);
    const checkpoint = rows.find((r) => r.key.endsWith("/.pulumi/stacks/plb-move/dev.json"));
    expect(checkpoint?.text).to.include(token.ciphertext as string);
    const shown = await pulumi(["stack", "export", "--show-secrets"], pgEnv);
    expect(shown.stdout).to.include(SECRET);

    // 5. An update in the database writes its checkpoint there, still encrypted.
    await pulumi(["config", "set", "who", "ops"], pgEnv);
    await pulumi(["up", "--yes", "--skip-preview"], pgEnv);
    const updated = JSON.parse((await pulumi(["stack", "output", "--json", "--show-secrets"], pgEnv)).stdout);
    expect(updated).to.deep.equal({ greeting: "hello ops", token: SECRET });
    for (const r of await pg.rows()) expect(r.text, r.key).to.not.include(SECRET);
    // The directory's copy is untouched (the move copies; deleting the old stack is the user's call).
    const left = await exportStack({ cwd: project.dir, env: fileEnv });
    expect(sealed(left.deployment.resources)).to.deep.equal(sealed(before.deployment.resources));
  });

  it("a lock left by a pulumi killed mid-update refuses every update until `pulumi cancel` clears it", async () => {
    // A program that runs until the file `release` exists: the update holds its lock meanwhile.
    const stale = tempProject(
      "stale",
      {
        "index.ts":
          'import * as fs from "node:fs";\n' +
          "export const done = new Promise<boolean>((resolve) => {\n" +
          "  const t = setInterval(() => { if (fs.existsSync(process.env.PLB_RELEASE as string)) { clearInterval(t); resolve(true); } }, 100);\n" +
          "});\n",
      },
      { ownHome: true },
    );
    const release = path.join(stale.dir, "release");
    const env = { ...stale.env, ...pg.env, PLB_RELEASE: release };
    const cli = (args: string[], cwd = stale.dir) =>
      runPulumi(args, { cwd, env, allowFailure: true, secrets: [pg.password] });
    try {
      await cli(["stack", "init", "dev"]);
      const first = spawn("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive"], {
        cwd: stale.dir,
        env,
        stdio: "ignore",
      });
      const exited = new Promise((resolve) => first.on("exit", resolve));
      const lockRows = async () =>
        (await pg.rows()).filter((r) => r.key.includes("/.pulumi/locks/organization/plb-stale/dev/"));
      await waitFor("the update's lock", async () => (await lockRows()).length === 1, 120_000);
      const [row] = await lockRows();
      const holder = JSON.parse(row.text) as {
        pid: number;
        username: string;
        hostname: string;
        timestamp: string;
      };
      expect(holder.pid).to.equal(first.pid);
      first.kill("SIGKILL"); // the CLI dies without removing its lock
      await exited;
      fs.writeFileSync(release, ""); // the program it left behind ends too

      // Every update is refused now, naming the lock (the URL without its user and password) and its holder.
      const since = new Date(holder.timestamp).toISOString().replace(/\.\d+Z$/, "Z");
      const lockUrl =
        `postgres://****:****@${inv.postgres.host}:${inv.postgres.port}/${row.key}` +
        `?sslmode=verify-full&sslrootcert=${inv.postgres.rootCertPath}&table=${pg.table}`;
      const refused = await cli(["up", "--yes", "--skip-preview"]);
      expect(refused.code).to.not.equal(0);
      expect(refused.stderr).to.equal(
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or " +
          "delete the lock file with `pulumi cancel`.\n" +
          `  ${lockUrl}: created by ${holder.username}@${holder.hostname} (pid ${holder.pid}) at ${since}\n`,
      );
      expect(refused.stdout + refused.stderr).to.not.include(pg.password);
      // The runner's parser reads this real text.
      expect(parseStackLocks(refused.stderr)).to.deep.equal([
        { user: holder.username, host: holder.hostname, pid: holder.pid, since },
      ]);

      // The command the runner's message gives, from any directory, clears it; the next update runs.
      const cancel = await cli(["cancel", "--yes", "--stack", "organization/plb-stale/dev"], os.tmpdir());
      expect([cancel.code, cancel.stdout]).to.deep.equal([
        0,
        "The currently running update for 'dev' has been canceled!\n",
      ]);
      expect(await lockRows()).to.deep.equal([]);
      const again = await cli(["up", "--yes", "--skip-preview"]);
      expect(again.code, again.stderr).to.equal(0);
      expect(JSON.parse((await cli(["stack", "output", "--json"])).stdout)).to.deep.equal({ done: true });
    } finally {
      fs.writeFileSync(release, "");
      fs.rmSync(stale.dir, { recursive: true, force: true });
    }
  });
});
