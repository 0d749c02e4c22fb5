/**
 * A team's shared state in the fleet's PostgreSQL server, with the real Pulumi CLI: a stack made in a local
 * directory moves there with `pulumi stack export` / `import` (as README.md says), keeps its outputs and its
 * secret, and the secret is stored only encrypted: in `pulumi stack export` and in every row of the table,
 * read with psql. Touches no fleet host (only the database).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "chai";
import { loadInventory } from "../support/fleet";
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
});
