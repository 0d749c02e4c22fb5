/**
 * Part 6 (issue: fleet-sized stacks): what a stack costs per resource as the fleet grows. N converted
 * containers (N = 20, 200, 1000 by default) spread over the fleet's btrfs hosts, declared one
 * LxcSubvolumeRootfs each, so `up` only adopts and `preview --refresh` only reads. For each N, run by run
 * and interleaved with the same commands on N trivial dynamic resources (a provider with `create` only,
 * the engine's own cost per resource): `up` (from an empty stack), a no-op `preview`, `preview --refresh`,
 * then `destroy` (retain: nothing on the hosts). Every run also records where the CPU went: the Pulumi
 * process tree (engine, language host, program, provider process) against everything else (the hosts'
 * sshd, shells and tools; the bench samples /proc/stat and the provider process's /proc/PID/stat).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { FleetHost } from "../../test/support/fleet";
import { makeConvertedContainers } from "../../test/support/host";
import type { BenchContext } from "../lib/context";
import { sh } from "../lib/host";
import { isNoop, makeProject } from "../lib/pulumi-project";

export const SCALE_COMMANDS = ["up", "preview", "refresh"] as const;
export type ScaleCommand = (typeof SCALE_COMMANDS)[number];

export interface CpuSplit {
  /** CPU seconds of the provider process(es). */
  provider: number;
  /** CPU seconds of every other process of the Pulumi tree (engine, language host, program). */
  engine: number;
  /** CPU seconds of everything else on the machine: the fleet hosts' sshd and scripts, and background. */
  other: number;
}

export interface ScaleSample {
  ms: number;
  cpu: CpuSplit;
}

/** N containers on the first `hosts` btrfs hosts ("200:1" in BENCH_SCALE: 200 on one host). */
export interface ScaleSpec {
  n: number;
  hosts: number;
}

export interface ScaleResult {
  n: number;
  hosts: string[];
  ours: Record<ScaleCommand, ScaleSample[]>;
  trivial: Record<ScaleCommand, ScaleSample[]>;
  /** Bytes of `pulumi stack export` per resource after the first `up`: what every checkpoint rewrites. */
  stateBytesPerResource?: { ours: number; trivial: number };
}

const TPL = "bench-s-tpl";

/** Converted containers (snapshots of one made with lxc-create -B btrfs), NAMES spread over the hosts. */
async function makeConverted(hosts: FleetHost[], names: string[][]): Promise<void> {
  await Promise.all(hosts.map((h, i) => makeConvertedContainers(h, TPL, names[i] ?? [])));
}

async function removeScale(hosts: FleetHost[]): Promise<void> {
  await Promise.all(
    hosts.map((h) =>
      sh(
        h,
        'cd /var/lib/lxc && for d in bench-s-*; do [ -d "$d" ] || continue; if [ "$(stat -c %i "$d/rootfs" 2>/dev/null)" = 256 ]; then btrfs subvolume delete "$d/rootfs" >/dev/null; fi; rm -rf "$d"; done',
      ),
    ),
  );
}

function cpuTicks(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6]; // user nice system irq softirq
}

/** Samples the CPU time of Pulumi's processes while `fn` runs; the rest of the machine's is "other". */
async function withCpu<T>(fn: () => Promise<T>): Promise<{ value: T; cpu: CpuSplit }> {
  const hz = 100;
  const seen = new Map<number, { kind: "provider" | "engine"; ticks: number }>();
  const tick = () => {
    for (const p of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
        const kind = cmd.includes("dynamic-provider")
          ? "provider"
          : /pulumi(-language-nodejs)?\0|@pulumi\/pulumi\/cmd\/run/.test(cmd) || cmd.includes("/bin/pulumi")
            ? "engine"
            : undefined;
        if (!kind) continue;
        const st = fs.readFileSync(`/proc/${p}/stat`, "utf8");
        const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
        const ticks = Number(f[11]) + Number(f[12]); // utime stime
        seen.set(Number(p), { kind, ticks: Math.max(ticks, seen.get(Number(p))?.ticks ?? 0) });
      } catch {
        // gone between readdir and read
      }
    }
  };
  const timer = setInterval(tick, 100);
  const t0 = cpuTicks();
  try {
    const value = await fn();
    tick();
    const total = (cpuTicks() - t0) / hz;
    let provider = 0;
    let engine = 0;
    for (const s of seen.values()) {
      if (s.kind === "provider") provider += s.ticks / hz;
      else engine += s.ticks / hz;
    }
    return { value, cpu: { provider, engine, other: Math.max(0, total - provider - engine) } };
  } finally {
    clearInterval(timer);
  }
}

/** "20,200:1,1000" -> specs; without ":H" a size spreads over every btrfs host. */
export function parseScale(spec: string, allHosts: number): ScaleSpec[] {
  return spec
    .split(",")
    .filter(Boolean)
    .map((t) => {
      const [n, h] = t.split(":");
      return { n: Number(n), hosts: h ? Math.min(Number(h), allHosts) : allHosts };
    });
}

export async function benchScale(ctx: BenchContext, specs: ScaleSpec[]): Promise<ScaleResult[]> {
  const out: ScaleResult[] = [];
  for (const { n, hosts: hostCount } of specs) {
    const hosts = ctx.btrfsHosts.slice(0, hostCount);
    const names = Array.from({ length: n }, (_, i) => `bench-s-${String(i + 1).padStart(4, "0")}`);
    const perHost = hosts.map((_, k) => names.filter((_, i) => i % hosts.length === k));
    await removeScale(ctx.btrfsHosts);
    await makeConverted(hosts, perHost);
    const tag = `${n}-${hostCount}`;
    const specFile = path.join(ctx.workDir, `scale-${tag}.json`);
    fs.writeFileSync(
      specFile,
      JSON.stringify(hosts.map((h, k) => ({ address: h.address, containers: perHost[k] }))),
    );
    const env = { BENCH_SPEC: specFile, BENCH_COUNT: String(n) };
    const ours = makeProject(
      ctx.workDir,
      `bench-scale-ours-${tag}`,
      path.join(ctx.buildDir, "programs", "scale-rootfs.js"),
    );
    const trivial = makeProject(
      ctx.workDir,
      `bench-scale-trivial-${tag}`,
      path.join(ctx.buildDir, "programs", "preview-trivial.js"),
    );
    await ours.init("s");
    await trivial.init("s");
    const res: ScaleResult = {
      n,
      hosts: hosts.map((h) => h.name),
      ours: { up: [], preview: [], refresh: [] },
      trivial: { up: [], preview: [], refresh: [] },
    };
    // Fewer runs at the largest size: each is minutes long.
    const runs = n >= 1000 ? Math.min(ctx.runs, 3) : ctx.runs;
    for (let r = 0; r < runs; r++) {
      for (const [side, p] of [
        ["ours", ours],
        ["trivial", trivial],
      ] as const) {
        const cmds: [ScaleCommand, string[]][] = [
          ["up", ["up", "--yes", "--skip-preview", "--parallel", "32"]],
          ["preview", ["preview", "--parallel", "32"]],
          ["refresh", ["preview", "--refresh", "--parallel", "32"]],
        ];
        for (const [what, args] of cmds) {
          const { value, cpu } = await withCpu(() => p.run(args, "s", env));
          if (what === "up" && r === 0) {
            const exported = await p.run(["stack", "export"], "s", env);
            res.stateBytesPerResource ??= { ours: 0, trivial: 0 };
            res.stateBytesPerResource[side] = Math.round(Buffer.byteLength(exported.stdout) / n);
          }
          if (what !== "up" && !isNoop(value.stdout))
            throw new Error(`scale ${n} ${side} ${what} is not a no-op:\n${value.stdout.slice(-2000)}`);
          res[side][what].push({ ms: value.ms, cpu });
          ctx.log(
            `scale N=${n} run ${r + 1}/${runs} ${side} ${what}: ${value.ms.toFixed(0)} ms ` +
              `(cpu: provider ${cpu.provider.toFixed(1)} s, engine ${cpu.engine.toFixed(1)} s, other ${cpu.other.toFixed(1)} s)`,
          );
        }
        // Retain on delete: destroying forgets the resources and touches no host.
        await p.run(["destroy", "--yes", "--skip-preview", "--parallel", "32"], "s", env);
      }
    }
    out.push(res);
  }
  await removeScale(ctx.btrfsHosts);
  return out;
}
