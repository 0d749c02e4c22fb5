/**
 * README.md's input and output tables list exactly the keys the code defines: the schemas' keys for
 * inputs, and the compiler-checked output key lists (rootfs/outputs.ts, clone/outputs.ts) for outputs.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, sep } from "node:path";
import { expect } from "chai";
import { cloneArgsSchema } from "../../provider/clone/inputs";
import { CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS } from "../../provider/clone/outputs";
import { rootfsArgsSchema } from "../../provider/rootfs/inputs";
import { ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS } from "../../provider/rootfs/outputs";
import { connectionSchema } from "../../provider/core/connection";
import { ROOT } from "./fixtures";

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The text of the section under `heading` (a whole line), up to the next heading of any level. */
function section(heading: string): string {
  const lines = README.split("\n");
  const at = lines.indexOf(heading);
  if (at < 0) throw new Error(`README has no heading ${JSON.stringify(heading)}`);
  const end = lines.findIndex((l, k) => k > at && /^#{1,6} /.test(l));
  return lines.slice(at + 1, end < 0 ? undefined : end).join("\n");
}

/**
 * The keys a table whose first column is headed `first` names: every `code` span in that column, in
 * order (a row may name several keys: `` `subvolumeId`, `subvolumeUuid` ``).
 */
function tableKeys(text: string, first: string): string[] {
  const lines = text.split("\n");
  const head = lines.findIndex((l) => new RegExp(`^\\| ${first} \\|`).test(l));
  if (head < 0) throw new Error(`no table headed "${first}"`);
  const keys: string[] = [];
  for (const row of lines.slice(head + 2)) {
    if (!row.startsWith("|")) break;
    const cell = row.split("|")[1];
    keys.push(...[...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]));
  }
  return keys;
}

const sorted = (keys: Iterable<string>) => [...keys].sort();

describe("README: the input and output tables list exactly the keys the code defines", () => {
  it("tableKeys reads every code span of the first column and stops at the table's end", () => {
    const text = "x\n| input | b |\n|---|---|\n| `a` | `no` |\n| `b`, `c` | |\n\n| `d` | |\n";
    expect(tableKeys(text, "input")).to.deep.equal(["a", "b", "c"]);
  });

  it("connection: the fields of the connection schema", () => {
    const keys = tableKeys(section("### `connection` (both resources)"), "field");
    expect(sorted(keys)).to.deep.equal(sorted(Object.keys(connectionSchema.shape)));
  });

  for (const [name, schema, inputKeys, outputKeys] of [
    ["LxcSubvolumeRootfs", rootfsArgsSchema, ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS],
    ["LxcSnapshotClone", cloneArgsSchema, CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS],
  ] as const) {
    const text = section(`### \`${name}\``);

    it(`${name}: inputs are the schema's keys, each listed once`, () => {
      const keys = tableKeys(text, "input");
      expect(keys).to.have.length(new Set(keys).size);
      expect(sorted(keys)).to.deep.equal(sorted(Object.keys(schema.shape)));
      // The class registers the same keys (a zod-free list the compiler checks against the schema's type).
      expect(sorted(Object.keys(inputKeys))).to.deep.equal(sorted(Object.keys(schema.shape)));
    });

    it(`${name}: outputs are the output keys, each listed once, none of them an input`, () => {
      const keys = tableKeys(text, "output");
      expect(keys).to.have.length(new Set(keys).size);
      expect(sorted(keys)).to.deep.equal(sorted(Object.keys(outputKeys)));
      expect(keys.filter((k) => k in schema.shape)).to.deep.equal([]);
    });
  }
});

describe("README: the Architecture section matches the tree", () => {
  const text = section("## Architecture");
  const providerDir = join(ROOT, "provider");
  const tree = (readdirSync(providerDir, { recursive: true }) as string[]).map((f) => f.split(sep).join("/"));
  const folders = tree.filter((f) => statSync(join(providerDir, f)).isDirectory());
  const files = tree.filter((f) => !folders.includes(f));

  it("names every folder of provider/, and no folder that is not there", () => {
    const named = [...text.matchAll(/`provider\/([a-z-]+)\/`/g)].map((m) => m[1]);
    expect([...new Set(named)].sort()).to.deep.equal([...folders].sort());
  });

  it("names only files that exist", () => {
    const named = [...text.matchAll(/`(?:provider\/)?(?:[a-z-]+\/)?([a-z-]+\.(?:ts|sh))`/g)].map((m) => m[0]);
    expect(named.length).to.be.greaterThan(20);
    for (const quoted of named) {
      const path = quoted.slice(1, -1).replace(/^provider\//, "");
      const found = path.includes("/")
        ? files.includes(path)
        : files.some((f) => f.split("/").pop() === path);
      expect(found, `${quoted} in README's Architecture section is not a file under provider/`).to.equal(
        true,
      );
    }
  });
});
