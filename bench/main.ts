/**
 * `npm run bench`: benchmarks on the local fleet, written to bench/RESULTS.md, bench/chart.svg and
 * bench/results.json. Every figure is a ratio against a baseline run in the same invocation, interleaved
 * run by run; see bench/lib/report.ts for how they are summarized and judged.
 *
 *   node main.js                 run everything (env: BENCH_RUNS, BENCH_SIZES, BENCH_SCALE, BENCH_PARTS,
 *                                BENCH_BUDGET_S, BENCH_DOWNTIME_ENTRIES, BENCH_DOWNTIME_HOST,
 *                                BENCH_ROLLBACK_ENTRIES)
 *   node main.js --cleanup       remove every bench- container from h1 and h2
 *   node main.js --report FILE   render RESULTS.md and chart.svg again from a results.json
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { closeAllConnections } from "../provider/transport/ssh";
import { loadInventory } from "../test/support/fleet";
import { pulumiEnv, pulumiSdkVersion } from "../test/support/pulumi";
import { repoRoot } from "../test/support/repo";
import { type BenchContext, makeContext } from "./lib/context";
import { destroyAll, sh } from "./lib/host";
import { type BenchResults, renderChart, renderReport } from "./lib/report";
import { benchClone } from "./parts/clone";
import {
  benchConversion,
  type ConversionResult,
  demonstrateDotfileLoss,
  postGuardSkipsPlainDirs,
  type SizeSpec,
} from "./parts/conversion";
import { benchDowntime } from "./parts/downtime";
import { benchFleet } from "./parts/fleet";
import { benchPreview } from "./parts/preview";
import { benchRollback } from "./parts/rollback";
import { benchScale, parseScale } from "./parts/scale";
import { benchSnapshot } from "./parts/snapshot";
import { benchTransport } from "./parts/transport";
import { benchXhost } from "./parts/xhost";

/** Scratch space next to the build (scripts/bench.sh compiles into dist/.bench/build): ignored by git. */
const BASE = path.resolve(__dirname, "..", "..");

function parseSizes(spec: string): SizeSpec[] {
  return spec
    .split(",")
    .filter(Boolean)
    .map((t) => (t === "debian" ? { tag: t } : { tag: t, entries: Number(t.replace(/k$/, "000")) }));
}

function cmd(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "?";
  }
}

async function machine(ctx: BenchContext): Promise<Record<string, string>> {
  const mem = /MemTotal:\s+(\d+) kB/.exec(fs.readFileSync("/proc/meminfo", "utf8"));
  const onHost = async (script: string) => (await sh(ctx.h1, script)).trim().split("\n")[0];
  let pulumi = "?";
  try {
    pulumi = cmd(path.join(pulumiEnv().PULUMI_LXC_BTRFS_BIN as string, "pulumi"), ["version"]);
  } catch {
    // reported as "?"
  }
  return {
    cpu: `${os.cpus()[0]?.model ?? "?"}`,
    nproc: cmd("nproc", []),
    memory: mem ? `${(Number(mem[1]) / 2 ** 20).toFixed(1)} GiB` : "?",
    kernel: os.release(),
    os: cmd("sh", ["-c", '. /etc/os-release && echo "$PRETTY_NAME"']),
    "btrfs-progs": await onHost("btrfs --version"),
    lxc: await onHost("lxc-info --version"),
    coreutils: cmd("sh", ["-c", "cp --version | head -n1"]),
    rsync: cmd("sh", ["-c", "rsync --version | head -n1"]),
    node: process.version,
    pulumi: `CLI ${pulumi}, @pulumi/pulumi ${pulumiSdkVersion()}`,
    storage: `fleet hosts are namespaces of this machine; h1/h2/h4 /var/lib/lxc: 12G sparse loop images on ${cmd("sh", ["-c", "findmnt -n -o FSTYPE -T /var/tmp"])}`,
    commit: cmd("git", ["-C", repoRoot(), "rev-parse", "--short", "HEAD"]),
  };
}

async function cleanup(ctx: { log(m: string): void }): Promise<void> {
  const inv = loadInventory();
  for (const h of inv.hosts.filter((x) => x.fs === "btrfs")) {
    const gone = await destroyAll(h);
    if (gone.length) ctx.log(`cleanup ${h.name}: removed ${gone.join(" ")}`);
  }
}

/**
 * Samples every 10 s whether another test run (mocha) is active: the fleet is shared, and the report says
 * how much of the bench ran next to one.
 */
function watchOthers(): { stop(): { samples: number; busy: number; loadavg: number[] } } {
  let samples = 0;
  let busy = 0;
  const loadavg: number[] = [];
  const timer = setInterval(() => {
    loadavg.push(os.loadavg()[0]);
    execFile("pgrep", ["-f", "mocha"], (err) => {
      samples++;
      if (!err) busy++;
    });
  }, 10_000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      return { samples, busy, loadavg };
    },
  };
}

/** CPU time used on this machine while the bench does nothing, as a fraction of all cores (0..1). */
async function backgroundCpu(ms = 3000): Promise<number> {
  const read = () => {
    const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

async function runAll(): Promise<BenchResults> {
  const buildDir = __dirname;
  const workDir = path.join(BASE, "work");
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.mkdirSync(workDir, { recursive: true });
  const logFile = path.join(BASE, "bench.log");
  fs.writeFileSync(logFile, "");
  const ctx = makeContext({
    runs: Number(process.env.BENCH_RUNS ?? "5"),
    buildDir,
    workDir,
    logFile,
    budgetMs: Number(process.env.BENCH_BUDGET_S ?? "1200") * 1000,
  });
  const t0 = process.env.BENCH_T0 ? Number(process.env.BENCH_T0) : ctx.started;
  const parts = (
    process.env.BENCH_PARTS ??
    "clone,preview,fleet,scale,transport,conversion,downtime,rollback,snapshot,xhost"
  ).split(",");
  const sizes = parseSizes(process.env.BENCH_SIZES ?? "1k,debian,10k,50k,100k");
  const res: BenchResults = {
    version: 1,
    startedAt: new Date(t0).toISOString(),
    totalMs: 0,
    runs: ctx.runs,
    machine: {},
    conversions: [],
    skipped: [],
    errors: [],
    notes: {},
  };
  const attempt = async (part: string, fn: () => Promise<void>) => {
    if (!parts.includes(part)) return;
    const s = Date.now();
    try {
      await fn();
    } catch (e) {
      ctx.log(`${part} FAILED: ${(e as Error).stack ?? e}`);
      res.errors.push({ part, message: (e as Error).message });
    }
    ctx.log(`${part}: ${((Date.now() - s) / 1000).toFixed(0)} s`);
  };
  const others = watchOthers();
  try {
    res.backgroundCpu = await backgroundCpu();
    ctx.log(`background CPU before starting: ${(res.backgroundCpu * 100).toFixed(0)}% of all cores`);
    res.machine = await machine(ctx);
    await cleanup(ctx);
    await attempt("clone", async () => {
      res.clone = await benchClone(ctx);
    });
    await attempt("preview", async () => {
      res.preview = await benchPreview(ctx);
    });
    await attempt("fleet", async () => {
      res.fleet = await benchFleet(ctx);
    });
    await attempt("scale", async () => {
      res.scale = await benchScale(
        ctx,
        parseScale(process.env.BENCH_SCALE ?? "20,200:1,1000", ctx.btrfsHosts.length),
      );
    });
    await attempt("transport", async () => {
      res.transport = await benchTransport(ctx);
    });
    await attempt("conversion", async () => {
      res.notes.postDotfiles = await demonstrateDotfileLoss(ctx);
      res.notes.postGuardSkips = await postGuardSkipsPlainDirs(ctx);
      let prev: { entries: number; ms: number } | undefined;
      for (const spec of sizes) {
        // Skip a size that would not fit the time budget, estimated linearly from the previous size,
        // keeping a minute for cleanup and the report.
        if (prev && spec.entries) {
          const est = (prev.ms * spec.entries) / prev.entries;
          const left = ctx.deadline - Date.now() - 60_000;
          if (est > left) {
            res.skipped.push({
              tag: spec.tag,
              reason: `estimated ${(est / 1000).toFixed(0)} s, ${(Math.max(0, left) / 1000).toFixed(0)} s left of the ${(ctx.deadline - ctx.started) / 1000} s budget`,
            });
            ctx.log(`conversion ${spec.tag}: skipped (${res.skipped.at(-1)?.reason})`);
            continue;
          }
        }
        const s = Date.now();
        const r: ConversionResult = await benchConversion(ctx, spec);
        res.conversions.push(r);
        if (spec.entries) prev = { entries: r.entries, ms: Date.now() - s };
      }
    });
    await attempt("downtime", async () => {
      const host = ctx.btrfsHosts.find((h) => h.name === (process.env.BENCH_DOWNTIME_HOST ?? "h2"));
      res.downtime = await benchDowntime(ctx, Number(process.env.BENCH_DOWNTIME_ENTRIES ?? "100000"), host);
    });
    await attempt("rollback", async () => {
      res.rollback = await benchRollback(ctx, Number(process.env.BENCH_ROLLBACK_ENTRIES ?? "100000"));
    });
    await attempt("snapshot", async () => {
      res.snapshot = await benchSnapshot(ctx);
    });
    await attempt("xhost", async () => {
      res.xhost = await benchXhost(ctx);
    });
  } finally {
    res.otherTestRuns = others.stop();
    await cleanup(ctx).catch((e) => ctx.log(`cleanup failed: ${e}`));
    await closeAllConnections();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  res.totalMs = Date.now() - t0;
  return res;
}

function writeOutputs(res: BenchResults, outDir: string): void {
  fs.writeFileSync(path.join(outDir, "results.json"), `${JSON.stringify(res, null, 1)}\n`);
  fs.writeFileSync(path.join(outDir, "RESULTS.md"), renderReport(res));
  fs.writeFileSync(path.join(outDir, "chart.svg"), renderChart(res));
}

async function main(): Promise<void> {
  const outDir = process.env.BENCH_OUT ?? path.join(repoRoot(), "bench");
  fs.mkdirSync(outDir, { recursive: true });
  const argv = process.argv.slice(2);
  if (argv[0] === "--cleanup") {
    await cleanup({ log: (m) => console.error(`[bench] ${m}`) });
    return;
  }
  if (argv[0] === "--report") {
    writeOutputs(JSON.parse(fs.readFileSync(argv[1] as string, "utf8")), outDir);
    return;
  }
  const res = await runAll();
  if (process.env.BENCH_T0) res.totalMs = Date.now() - Number(process.env.BENCH_T0);
  writeOutputs(res, outDir);
  console.error(`[bench] done in ${(res.totalMs / 1000).toFixed(0)} s: ${path.join(outDir, "RESULTS.md")}`);
  if (res.errors.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
