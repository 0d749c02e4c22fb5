/**
 * The documentation holds to the code: README.md's input and output tables list exactly the keys the code
 * defines (the schemas' keys for inputs, the compiler-checked output key lists of rootfs/outputs.ts and
 * clone/outputs.ts for outputs); its list of what the provider leaves on a host names exactly the file names
 * the provider's code uses; docs/design.md's Architecture section names the folders and files that exist;
 * and every relative link of the repository's Markdown files leads to a file (and heading) that exists.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { expect } from "chai";
import { cloneArgsSchema } from "../../provider/clone/inputs";
import { CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS } from "../../provider/clone/outputs";
import { connectionSchema } from "../../provider/core/connection";
import { rootfsArgsSchema } from "../../provider/rootfs/inputs";
import { ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS } from "../../provider/rootfs/outputs";
import { snapshotArgsSchema } from "../../provider/snapshot/inputs";
import { SNAPSHOT_INPUT_KEYS, SNAPSHOT_OUTPUT_KEYS } from "../../provider/snapshot/outputs";
import { ROOT } from "./fixtures";

const README = readFileSync(join(ROOT, "README.md"), "utf8");
const DESIGN = readFileSync(join(ROOT, "docs", "design.md"), "utf8");

/** The text of the section of `doc` under `heading` (a whole line), up to the next heading of any level. */
function section(heading: string, doc = README): string {
  const lines = doc.split("\n");
  const at = lines.indexOf(heading);
  if (at < 0) throw new Error(`no heading ${JSON.stringify(heading)}`);
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
    const keys = tableKeys(section("### `connection` (every resource)"), "field");
    expect(sorted(keys)).to.deep.equal(sorted(Object.keys(connectionSchema.shape)));
  });

  for (const [name, schema, inputKeys, outputKeys] of [
    ["LxcSubvolumeRootfs", rootfsArgsSchema, ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS],
    ["LxcSnapshotClone", cloneArgsSchema, CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS],
    ["LxcSnapshot", snapshotArgsSchema, SNAPSHOT_INPUT_KEYS, SNAPSHOT_OUTPUT_KEYS],
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

describe("docs/design.md: the Architecture section matches the tree", () => {
  const text = section("## Architecture", DESIGN);
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
      expect(
        found,
        `${quoted} in docs/design.md's Architecture section is not a file under provider/`,
      ).to.equal(true);
    }
  });
});

/** Every file under `dir` (relative to ROOT, `/`-separated) whose name ends with one of `exts`. */
function filesUnder(dir: string, exts: string[]): string[] {
  return (readdirSync(join(ROOT, dir), { recursive: true }) as string[])
    .map((f) => `${dir}/${f.split(sep).join("/")}`)
    .filter((f) => exts.some((e) => f.endsWith(e)) && statSync(join(ROOT, f)).isFile());
}

/**
 * A shell script with each `$VAR` that the script sets once to a fixed name under a directory
 * (`j=$d/.plb-journal`) replaced by that name, so that `"$j.since"` reads `.plb-journal.since`. A variable
 * set to different names, or to anything else, is left alone.
 */
function expandShellNames(script: string): string {
  const values = new Map<string, Set<string>>();
  for (const m of script.matchAll(
    /(?<![\w$])([a-z_][a-z0-9_]*)=\$\{?[a-z_][a-z0-9_]*\}?\/([\w.-]+)(?=[\s;'")]|$)/gim,
  ))
    values.set(m[1], (values.get(m[1]) ?? new Set()).add(m[2]));
  let out = script;
  for (const [name, vals] of values) {
    if (vals.size !== 1) continue;
    out = out.replace(new RegExp(`\\$\\{?${name}\\}?(?![\\w])`, "g"), [...vals][0]);
  }
  return out;
}

/** The names of things on a host that a text names: `*.plb-*`, `*.pre-btrfs`, `*.pre-dir`, `/run/*`. */
function hostNames(text: string): string[] {
  // A name's leading word, unless it is a variable's (`$f.plb-tmp` names `.plb-tmp`).
  const word = "(?:(?<![$\\w.-])[\\w-]+)?";
  const re = new RegExp(`${word}\\.plb-[\\w.-]*|${word}\\.pre-(?:btrfs|dir)\\b|/run/[\\w.-]+`, "g");
  const found = text.match(re) ?? [];
  return [...new Set(found.map((n) => n.replace(/\.+$/, "")))].sort();
}

/**
 * A name as the README lists it, without its placeholders: `.plb-making-<clone>` is `.plb-making-`, and
 * `.plb-sent-<tag>-<clone>` (two placeholders joined by a dash) is `.plb-sent-`.
 */
const literalPart = (listed: string) => listed.replace(/<[^>]*>(-<[^>]*>)*/g, "");

describe("README: What the provider leaves on a host lists every name the provider's code uses", () => {
  const listed = tableKeys(section("## What the provider leaves on a host"), "name");
  const sources = filesUnder("provider", [".sh", ".ts"]).map((f) => {
    const text = readFileSync(join(ROOT, f), "utf8");
    return f.endsWith(".sh") ? `${text}\n${expandShellNames(text)}` : text;
  });

  it("expandShellNames and hostNames find the names a script builds from its variables", () => {
    const script =
      'j=$d/.plb-journal t=$(mktemp)\nf=$cd/config\nf=$cd/rootfs/etc/$1\nrm -f "$j.since" "$f.plb-tmp" "$jx"\n';
    expect(expandShellNames(script)).to.include('rm -f ".plb-journal.since" "config.plb-tmp" "$jx"');
    expect(expandShellNames("x=$d/a\nx=$d/b\n$x.plb-tmp\n")).to.include("$x.plb-tmp");
    expect(
      hostNames(
        'cp "$d/rootfs.pre-btrfs" "$f.plb-tmp" "$lxcpath/.plb-making-$name" /run/plb-hold/$1 plb-step; rootfs.plb-old.',
      ),
    ).to.deep.equal([".plb-making-", ".plb-tmp", "/run/plb-hold", "rootfs.plb-old", "rootfs.pre-btrfs"]);
  });

  it("literalPart drops placeholders, and a dash between two of them", () => {
    expect(literalPart("snaps/.plb-making-<name>")).to.equal("snaps/.plb-making-");
    expect(literalPart("snaps/.plb-sent-<tag>-<clone>")).to.equal("snaps/.plb-sent-");
    expect(literalPart("<file>.plb-tmp")).to.equal(".plb-tmp");
  });

  it("every name listed is one the provider's code uses", () => {
    expect(listed.length).to.be.greaterThan(10);
    for (const name of listed) {
      expect(
        sources.some((text) => text.includes(literalPart(name))),
        `${name} is not in provider/`,
      ).to.equal(true);
    }
  });

  it("every *.plb-*, *.pre-btrfs, *.pre-dir and /run name in provider/ is listed", () => {
    const inCode = hostNames(sources.join("\n"));
    expect(inCode).to.include.members([
      ".plb-journal",
      ".plb-journal.since",
      "rootfs.plb-new",
      "/run/plb-hold",
    ]);
    const names = new Set(listed.map(literalPart));
    expect(
      inCode.filter((n) => !names.has(n)),
      "names in provider/ missing from the README's list",
    ).to.deep.equal([]);
  });
});

/** The heading anchors of a Markdown text, as GitHub makes them (`### \`a\` (b)` is `#a-b`). */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of withoutCodeBlocks(markdown).split("\n")) {
    const m = /^#{1,6} +(.*?) *#* *$/.exec(line);
    if (!m) continue;
    const slug = m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** A Markdown text with its fenced code blocks emptied (their lines kept, so line numbers hold). */
function withoutCodeBlocks(markdown: string): string {
  let fenced = false;
  return markdown
    .split("\n")
    .map((l) => {
      if (/^ *```/.test(l)) {
        fenced = !fenced;
        return "";
      }
      return fenced ? "" : l;
    })
    .join("\n");
}

/** The relative link targets of a Markdown text (not in code), as `{ path, anchor, line }`. */
function relativeLinks(markdown: string): { path: string; anchor: string; line: number }[] {
  const out: { path: string; anchor: string; line: number }[] = [];
  withoutCodeBlocks(markdown)
    .split("\n")
    .forEach((l, i) => {
      for (const m of l.replace(/`[^`]*`/g, "``").matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(m[1])) continue; // https:, mailto:
        const [path, anchor = ""] = m[1].split("#");
        out.push({ path, anchor, line: i + 1 });
      }
    });
  return out;
}

describe("Markdown: every relative link leads to a file, and a heading, that exists", () => {
  const docs = [
    ...readdirSync(ROOT).filter((f) => f.endsWith(".md")),
    ...["docs", "examples", "scripts", "bench"].flatMap((d) => filesUnder(d, [".md"])),
  ];

  it("relativeLinks and anchors read links and headings as GitHub does", () => {
    const md =
      "# T\n## `a` (b), c\n```sh\n# not a heading [x](nope)\n```\n[y](x.md#a-b-c) `[z](no)` [w](https://e.x) [v](#t)\n## T\n";
    expect(relativeLinks(md)).to.deep.equal([
      { path: "x.md", anchor: "a-b-c", line: 6 },
      { path: "", anchor: "t", line: 6 },
    ]);
    expect([...anchors(md)]).to.deep.equal(["t", "a-b-c", "t-1"]);
  });

  it("covers README.md, CONTRIBUTING.md and docs/", () => {
    expect(docs).to.include.members(["README.md", "CONTRIBUTING.md", "docs/design.md"]);
  });

  for (const doc of docs) {
    it(doc, () => {
      const broken: string[] = [];
      for (const { path, anchor, line } of relativeLinks(readFileSync(join(ROOT, doc), "utf8"))) {
        const target = path === "" ? join(ROOT, doc) : join(ROOT, dirname(doc), path);
        const where = `${doc}:${line}: ${path}${anchor ? `#${anchor}` : ""}`;
        if (relative(ROOT, target).startsWith("..")) broken.push(`${where}: outside the repository`);
        else if (!existsSync(target)) broken.push(`${where}: no such file`);
        else if (anchor && target.endsWith(".md") && !anchors(readFileSync(target, "utf8")).has(anchor))
          broken.push(`${where}: no such heading`);
      }
      expect(broken).to.deep.equal([]);
    });
  }
});
