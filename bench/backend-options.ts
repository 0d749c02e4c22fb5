/**
 * What the self-managed backend's options cost and save at fleet size: `up` (from an empty stack) and
 * `refresh` of N resources (default 200), with the state in a directory and in the fleet's PostgreSQL server,
 * for each option set: the defaults; PULUMI_SKIP_CHECKPOINTS (only the final state is written, not one
 * checkpoint per step); PULUMI_DIY_BACKEND_GZIP (state written gzipped); PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS
 * (no copy of the previous checkpoint under .pulumi/backups per update); and all three. Programs: N trivial
 * dynamic resources (create only: the engine's own cost), and with `--ours` N LxcSubvolumeRootfs adopting
 * converted containers on h4 (needs the fleet, under its lock). Runs are interleaved; medians are printed as
 * a Markdown table, with what the backend holds after up + refresh (rows or files, bytes) and, in PostgreSQL,
 * how many rows up + refresh wrote (each checkpoint is one).
 *
 *   node dist/bench/backend-options.js [--ours] [--trivial]
 *   env: BENCH_N (200), BENCH_RUNS (3), BENCH_OPTIONS (option sets by name, comma-separated; default all)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { getHost, loadInventory } from "../test/support/fleet";
import { destroyContainers, makeConvertedContainers } from "../test/support/host";
import { type PostgresState, postgresState } from "../test/support/postgres";
import { pulumiEnv, runPulumi } from "../test/support/pulumi";
import { repoRoot } from "../test/support/repo";

const OPTIONS: Record<string, Record<string, string>> = {
  defaults: {},
  "skip checkpoints": { PULUMI_SKIP_CHECKPOINTS: "true" },
  gzip: { PULUMI_DIY_BACKEND_GZIP: "true" },
  "no backups": { PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS: "true" },
  "all three": {
    PULUMI_SKIP_CHECKPOINTS: "true",
    PULUMI_DIY_BACKEND_GZIP: "true",
    PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS: "true",
  },
};
type Backend = "file" | "postgres";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function dirBytes(dir: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  if (!fs.existsSync(dir)) return { count, bytes };
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    count++;
    bytes += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return { count, bytes };
}

async function main() {
  const argv = process.argv.slice(2);
  const n = Number(process.env.BENCH_N ?? "200");
  const runs = Number(process.env.BENCH_RUNS ?? "3");
  const programs = [
    ...(argv.includes("--trivial") || !argv.includes("--ours") ? ["trivial"] : []),
    ...(argv.includes("--ours") ? ["ours"] : []),
  ];
  const chosen = process.env.BENCH_OPTIONS?.split(",") ?? Object.keys(OPTIONS);
  const inv = loadInventory();
  const h4 = getHost("h4", inv);
  const names = Array.from({ length: n }, (_, i) => `bench-b-${String(i + 1).padStart(4, "0")}`);
  const work = fs.mkdtempSync(path.join(repoRoot(), ".bench-backend-"));
  const specFile = path.join(work, "spec.json");
  fs.writeFileSync(specFile, JSON.stringify([{ address: h4.address, containers: names }]));
  const build = path.join(repoRoot(), "dist", "bench", "programs");
  const tables: PostgresState[] = [];
  const results: {
    program: string;
    backend: Backend;
    option: string;
    up: number[];
    refresh: number[];
    held: string;
  }[] = [];
  if (programs.includes("ours")) {
    await destroyContainers(h4, ...names); // what an interrupted earlier run left
    await makeConvertedContainers(h4, "bench-b-tpl", names);
  }
  try {
    for (let r = 0; r < runs; r++)
      for (const program of programs)
        for (const backend of ["file", "postgres"] as Backend[])
          for (const [option, extra] of Object.entries(OPTIONS).filter(([o]) => chosen.includes(o))) {
            const tag = `${program}-${backend}-${option.replace(/ /g, "-")}-${r}`;
            const dir = path.join(work, tag);
            fs.mkdirSync(dir);
            fs.writeFileSync(
              path.join(dir, "Pulumi.yaml"),
              `name: bench-backend\nruntime: nodejs\nmain: index.js\n`,
            );
            const file = program === "ours" ? "scale-rootfs.js" : "preview-trivial.js";
            fs.writeFileSync(
              path.join(dir, "index.js"),
              `module.exports = require(${JSON.stringify(path.join(build, file))});\n`,
            );
            const pg = backend === "postgres" ? postgresState("bench", inv) : undefined;
            if (pg) tables.push(pg);
            const env = pulumiEnv({
              stateDir: path.join(dir, ".state"),
              home: path.join(work, ".pulumi-home"),
              extra: { ...(pg?.env ?? {}), ...extra, BENCH_SPEC: specFile, BENCH_COUNT: String(n) },
            });
            const pulumi = async (args: string[]) => {
              const t = performance.now();
              await runPulumi(args, { cwd: dir, env, timeoutMs: 900_000 });
              return performance.now() - t;
            };
            await pulumi(["stack", "init", "s"]);
            const up = await pulumi(["up", "--yes", "--skip-preview", "--parallel", "32"]);
            const refresh = await pulumi(["refresh", "--yes", "--skip-preview", "--parallel", "32"]);
            let held: string;
            if (pg) {
              const out = await pg.sql(`SELECT count(*), sum(octet_length(data::text)) FROM ${pg.table}`);
              const [count, bytes] = out.trim().split("\t").map(Number);
              // Rows written (inserted, updated, deleted) by up + refresh: one per checkpoint, lock, backup...
              const writes = await pg.sql(
                `SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = '${pg.table}'`,
              );
              held = `${count} rows, ${(bytes / 1024).toFixed(0)} KiB; ${writes.trim()} row writes`;
            } else {
              const d = dirBytes(path.join(dir, ".state"));
              held = `${d.count} files, ${(d.bytes / 1024).toFixed(0)} KiB`;
            }
            // Not measured: without checkpoints, to save time (destroy retains: no host is touched).
            env.PULUMI_SKIP_CHECKPOINTS = "true";
            await pulumi(["destroy", "--yes", "--skip-preview", "--parallel", "32"]);
            const row = results.find(
              (x) => x.program === program && x.backend === backend && x.option === option,
            );
            if (row) {
              row.up.push(up);
              row.refresh.push(refresh);
            } else results.push({ program, backend, option, up: [up], refresh: [refresh], held });
            console.error(
              `[bench] run ${r + 1}/${runs} ${tag}: up ${(up / 1000).toFixed(1)} s, refresh ${(refresh / 1000).toFixed(1)} s, ${held}`,
            );
          }
  } finally {
    for (const t of tables) await t.drop().catch(() => undefined);
    if (programs.includes("ours")) await destroyContainers(h4, ...names, "bench-b-tpl");
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(`N = ${n}, ${runs} runs each, median wall time (${os.cpus().length} cores, shared):\n`);
  console.log("| program | backend | options | up | refresh | held after up + refresh |");
  console.log("|---|---|---|---|---|---|");
  for (const x of results)
    console.log(
      `| ${x.program} | ${x.backend} | ${x.option} | ${(median(x.up) / 1000).toFixed(1)} s | ${(median(x.refresh) / 1000).toFixed(1)} s | ${x.held} |`,
    );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
