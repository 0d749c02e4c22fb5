/**
 * End-to-end smoke test of the local Pulumi toolchain (scripts/pulumi-install.sh):
 * the real CLI, our Node.js language host and the dynamic-provider plugin run
 * a TypeScript program with one dynamic resource that writes a file, through
 * up, preview, refresh and destroy against a throwaway file backend.
 *
 * Fails (does not skip) when the toolchain is missing: run `npm run pulumi:install`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "chai";
import {
  exportStack,
  type PulumiStackExport,
  type PulumiStateResource,
  pulumiSdkVersion,
  runPulumi,
  tempProject,
} from "../support/pulumi";

const STACK = "smoke";
const DYNAMIC_TYPE = "pulumi-nodejs:dynamic:Resource";

/** The Pulumi program. Everything the provider uses is required inside its methods. */
const PROGRAM = `import * as pulumi from "@pulumi/pulumi";

interface FileInputs {
  dir: string;
  name: string;
  content: string;
}

function outputs(id: string, inputs: FileInputs) {
  return { ...inputs, path: id, size: inputs.content.length, providerCwd: process.cwd() };
}

const fileProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: FileInputs) {
    const fs = require("node:fs");
    const path = require("node:path");
    const file = path.join(inputs.dir, inputs.name);
    fs.writeFileSync(file, inputs.content);
    console.log("smoke-provider: created " + file);
    return { id: file, outs: outputs(file, inputs) };
  },
  async diff(_id: string, olds: FileInputs, news: FileInputs) {
    const replaces = (["dir", "name"] as const).filter((k) => olds[k] !== news[k]);
    return { changes: replaces.length > 0 || olds.content !== news.content, replaces, deleteBeforeReplace: true };
  },
  async update(id: string, _olds: FileInputs, news: FileInputs) {
    require("node:fs").writeFileSync(id, news.content);
    return { outs: outputs(id, news) };
  },
  async read(id: string, props: FileInputs) {
    const fs = require("node:fs");
    if (!fs.existsSync(id)) {
      return {};
    }
    const content: string = fs.readFileSync(id, "utf8");
    return { id, props: outputs(id, { ...props, content }) };
  },
  async delete(id: string) {
    require("node:fs").rmSync(id, { force: true });
  },
};

interface SmokeFileArgs {
  dir: pulumi.Input<string>;
  name: pulumi.Input<string>;
  content: pulumi.Input<string>;
}

class SmokeFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly content: pulumi.Output<string>;
  declare readonly size: pulumi.Output<number>;

  constructor(name: string, args: SmokeFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(fileProvider, name, { ...args, path: undefined, size: undefined, providerCwd: undefined }, opts);
  }
}

const config = new pulumi.Config();
const file = new SmokeFile("greeting", {
  dir: config.require("dir"),
  name: "greeting.txt",
  content: config.require("content"),
});

export const filePath = file.path;
export const fileSize = file.size;
`;

describe("pulumi smoke (real CLI, dynamic provider, file backend)", function () {
  this.timeout(120_000);

  let projectDir: string;
  let filesDir: string;
  let filePath: string;
  let env: NodeJS.ProcessEnv;

  const pulumi = (args: string[]) => runPulumi(args, { cwd: projectDir, env });
  const state = async (): Promise<PulumiStackExport> => exportStack({ cwd: projectDir, env, stack: STACK });
  const dynamicResources = (s: PulumiStackExport): PulumiStateResource[] =>
    (s.deployment.resources ?? []).filter((r) => r.type === DYNAMIC_TYPE);

  before(() => {
    // The program, the run script and the dynamic-provider plugin all resolve @pulumi/pulumi (and
    // typescript) from the project's node_modules. Throws when the toolchain is missing: the suite fails,
    // it does not skip.
    ({ dir: projectDir, env } = tempProject(
      "smoke",
      {
        "index.ts": PROGRAM,
        "package.json": `${JSON.stringify({ name: "plb-smoke", private: true, main: "index.ts" }, null, 2)}\n`,
      },
      { ownHome: true },
    ));
    filesDir = path.join(projectDir, "files");
    filePath = path.join(filesDir, "greeting.txt");
    fs.mkdirSync(filesDir);
  });

  after(() => {
    if (projectDir && !process.env["KEEP_PULUMI_SMOKE"]) {
      fs.rmSync(projectDir, { recursive: true, force: true });
    }
  });

  it("runs the CLI at the @pulumi/pulumi version of node_modules", async () => {
    const { stdout } = await pulumi(["version"]);
    expect(stdout.trim()).to.equal(`v${pulumiSdkVersion()}`);
  });

  it("creates the resource on `pulumi up`", async () => {
    await pulumi(["stack", "init", STACK]);
    await pulumi(["config", "set", "dir", filesDir]);
    await pulumi(["config", "set", "content", "hello"]);
    const up = await pulumi(["up", "--yes", "--skip-preview"]);
    expect(up.stdout).to.match(/\+ 2 created|2 created/);
    // console output of the dynamic provider reaches the CLI output
    expect(up.stdout).to.include(`smoke-provider: created ${filePath}`);

    expect(fs.readFileSync(filePath, "utf8")).to.equal("hello");
    const resources = dynamicResources(await state());
    expect(resources).to.have.lengthOf(1);
    expect(resources[0]!.id).to.equal(filePath);
    expect(resources[0]!.outputs).to.include({
      content: "hello",
      size: 5,
      path: filePath,
      name: "greeting.txt",
    });
    expect(resources[0]!.outputs).to.have.property("__provider").that.is.a("string");
    // the dynamic-provider process runs in the project directory; `require`
    // inside provider methods resolves from there (node_modules, then NODE_PATH)
    expect(resources[0]!.outputs).to.have.property("providerCwd", fs.realpathSync(projectDir));
  });

  it("previews and applies an update after a config change", async () => {
    await pulumi(["config", "set", "content", "hello, world"]);
    const preview = await pulumi(["preview", "--diff"]);
    expect(preview.stdout).to.match(/~ 1 to update/);
    expect(fs.readFileSync(filePath, "utf8"), "preview must not touch the file").to.equal("hello");

    const up = await pulumi(["up", "--yes", "--skip-preview"]);
    expect(up.stdout).to.match(/~ 1 updated/);
    expect(fs.readFileSync(filePath, "utf8")).to.equal("hello, world");
    const [resource] = dynamicResources(await state());
    expect(resource!.outputs).to.include({ content: "hello, world", size: 12 });
  });

  it("picks up drift on `pulumi refresh`", async () => {
    fs.writeFileSync(filePath, "edited by hand");
    const refresh = await pulumi(["refresh", "--yes", "--skip-preview"]);
    expect(refresh.stdout).to.match(/~ 1 updated/);
    const [resource] = dynamicResources(await state());
    expect(resource!.outputs).to.include({ content: "edited by hand", size: 14 });
  });

  it("removes the resource on `pulumi destroy`", async () => {
    const destroy = await pulumi(["destroy", "--yes", "--skip-preview"]);
    expect(destroy.stdout).to.match(/- 2 deleted/);
    expect(fs.existsSync(filePath)).to.equal(false);
    expect((await state()).deployment.resources ?? []).to.have.lengthOf(0);
  });
});
