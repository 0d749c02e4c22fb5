// Fails (exit 1) when provider/'s folders import each other in a cycle (part of `npm run lint`): core/ is
// shared by all, transport/ builds on it, each resource's folder on both, so a folder reached from another
// never imports it back (core -> transport -> core was one). Cycles between files are biome's
// noImportCycles. Reads every relative `import ... from`, `export ... from` and `require(...)` of
// provider/**/*.ts, type imports included.
//
//   node scripts/check-folder-cycles.js      (from the repository root)
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..", "provider");

/** Every .ts file under dir, as a path relative to provider/. */
function sources(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") ? [path.relative(ROOT, p)] : [];
  });
}

/** A file's folder under provider/ ("." for the files at its top). */
function folderOf(rel) {
  const parts = rel.split(path.sep);
  return parts.length > 1 ? parts[0] : ".";
}

const SPECIFIER = /(?:\bfrom\s*|\brequire\(\s*|\bimport\(\s*)["'](\.[^"']*)["']/g;

/** folder -> folder -> one import that makes the edge ("file imports spec"). */
const edges = new Map();
for (const rel of sources(ROOT)) {
  const from = folderOf(rel);
  const text = fs.readFileSync(path.join(ROOT, rel), "utf8");
  for (const m of text.matchAll(SPECIFIER)) {
    const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(rel), m[1]));
    if (target.startsWith("..")) continue; // outside provider/ (package.json)
    const to = folderOf(`${target}.ts`);
    if (to === from) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    if (!edges.get(from).has(to)) edges.get(from).set(to, `provider/${rel} imports ${m[1]}`);
  }
}

/** Each cycle once, as its folders in order, found by a depth-first walk from every folder. */
const cycles = new Map();
function walk(folder, trail) {
  const at = trail.indexOf(folder);
  if (at >= 0) {
    const cycle = trail.slice(at);
    const start = cycle.indexOf([...cycle].sort()[0]);
    const canonical = [...cycle.slice(start), ...cycle.slice(0, start)];
    cycles.set(canonical.join(" -> "), canonical);
    return;
  }
  for (const next of edges.get(folder)?.keys() ?? []) walk(next, [...trail, folder]);
}
for (const folder of edges.keys()) walk(folder, []);

if (cycles.size === 0) {
  console.log(`folder imports: no cycle among provider/'s folders (${edges.size} import others)`);
  process.exit(0);
}
for (const cycle of cycles.values()) {
  console.error(`folder imports: a cycle: ${[...cycle, cycle[0]].join(" -> ")}`);
  for (const [i, folder] of cycle.entries())
    console.error(`  ${edges.get(folder).get(cycle[(i + 1) % cycle.length])}`);
}
console.error("Make imports go one way: move what both folders need into the one the other builds on.");
process.exit(1);
