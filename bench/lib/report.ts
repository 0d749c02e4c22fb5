/**
 * Pure: turns the raw results into figures (ratios with median, min, max and a verdict), RESULTS.md and an
 * SVG chart. Every ratio is computed run by run from interleaved runs of the same invocation, then
 * summarized; absolute times are shown for orientation and never judged.
 */
import type { CloneResult } from "../parts/clone";
import type { ConversionResult } from "../parts/conversion";
import type { DowntimeResult } from "../parts/downtime";
import { FLEET_TREE_ENTRIES, type FleetResult, MAX_PER_HOST, PER_HOST } from "../parts/fleet";
import { PREVIEW_RESOURCES, type PreviewResult } from "../parts/preview";
import type { RollbackResult } from "../parts/rollback";
import {
  type CpuSplit,
  SCALE_COMMANDS,
  type ScaleCommand,
  type ScaleResult,
  type ScaleSample,
} from "../parts/scale";
import type { SnapshotResult } from "../parts/snapshot";
import { type TransportResult, transportSection } from "../parts/transport";
import type { XhostResult } from "../parts/xhost";
import type { CommandTiming } from "./remote-timing";
import {
  type Figure,
  fmtBytes,
  fmtMs,
  fmtRatio,
  pairRatios,
  type Summary,
  summarize,
  verdict,
} from "./stats";

export interface BenchResults {
  version: 1;
  startedAt: string;
  totalMs: number;
  runs: number;
  machine: Record<string, string>;
  clone?: CloneResult;
  preview?: PreviewResult;
  fleet?: FleetResult;
  scale?: ScaleResult[];
  /** The transport part: exec per command against long-lived remote shells. */
  transport?: TransportResult;
  conversions: ConversionResult[];
  downtime?: DowntimeResult;
  /** restoreFrom on a stopped container against a bare snapshot + two renames + one round trip. */
  rollback?: RollbackResult;
  /** LxcSnapshot create, "live" at two sizes and "freeze" on a running container, against bare btrfs/LXC. */
  snapshot?: SnapshotResult;
  /** A cross-host clone (send/receive relayed through the provider) against send | ssh receive and rsync. */
  xhost?: XhostResult;
  skipped: { tag: string; reason: string }[];
  errors: { part: string; message: string }[];
  notes: { postDotfiles?: string; postGuardSkips?: boolean; merged?: string };
  /** 10-second samples of whether another test run (mocha) was active on the shared fleet. */
  otherTestRuns?: { samples: number; busy: number; loadavg?: number[] };
  /** CPU busy on the machine (all cores, 0..1) in 3 s before the bench started doing anything. */
  backgroundCpu?: number;
}

const MEMORY_LIMIT_KB = 200 * 1024;
const med = (xs: number[]) => summarize(xs).median;

function convLabel(c: ConversionResult): string {
  return c.tag === "debian" ? `Debian (${c.entries} entries)` : `${c.tag} files (${c.entries} entries)`;
}

/** Every figure of the report, in order, with its target where the issue set one. */
export function computeFigures(res: BenchResults): Figure[] {
  const figs: Figure[] = [];
  const xh = res.xhost;
  if (xh) {
    const group = `Cross-host clone of a ${xh.mb} MB container, h1 to h2`;
    figs.push({
      group,
      label: "ours / (btrfs subvolume snapshot -r; btrfs send | ssh h2 btrfs receive, from h1)",
      ratio: summarize(pairRatios(xh.ours, xh.floor)),
      target: { op: "<=", value: 1.25, text: "≤ 1.25×" },
      oursMs: med(xh.ours),
      baseMs: med(xh.floor),
    });
    figs.push({
      group,
      label: "ours / rsync -aHAX --numeric-ids over ssh",
      ratio: summarize(pairRatios(xh.ours, xh.rsync)),
      target: { op: "<=", value: 1, text: "≤ 1 expected" },
      oursMs: med(xh.ours),
      baseMs: med(xh.rsync),
    });
    figs.push({
      group,
      label: `fan-out: copies to ${xh.fanoutHosts.join(" and ")} at once / one copy`,
      ratio: summarize(pairRatios(xh.fanout, xh.ours)),
      target: { op: "<=", value: 1.5, text: "≤ 1.5 (issue: 3 hosts)" },
      oursMs: med(xh.fanout),
      baseMs: med(xh.ours),
      note: "one send per target, all at once; the fleet has two btrfs hosts besides the source",
    });
    if (xh.refresh?.length) {
      const rgroup = `Refresh of that copy after 1% changed (10 MiB of one blob, 4 small files), h1 to h2`;
      figs.push({
        group: rgroup,
        label: "ours: refresh / full copy",
        ratio: summarize(pairRatios(xh.refresh, xh.ours)),
        target: { op: "<=", value: 0.1, text: "≤ 0.1×" },
        oursMs: med(xh.refresh),
        baseMs: med(xh.ours),
        note: `${(med(xh.refreshBytes) / 2 ** 20).toFixed(1)} MiB relayed per refresh (btrfs send -p)`,
      });
      figs.push({
        group: rgroup,
        label: "ours / (snapshot -r; btrfs send -p <last> | ssh h2 btrfs receive, from h1)",
        ratio: summarize(pairRatios(xh.refresh, xh.refreshFloor)),
        target: { op: "<=", value: 1.25, text: "≤ 1.25×" },
        oursMs: med(xh.refresh),
        baseMs: med(xh.refreshFloor),
      });
    }
    if (xh.teeOne?.length) {
      figs.push({
        group,
        label: `fan-out at the floor: one send teed to ${xh.fanoutHosts.slice(0, 2).join(" and ")} / one send per host, at once (OpenSSH, from h1)`,
        ratio: summarize(pairRatios(xh.teeOne, xh.teeTwo)),
        oursMs: med(xh.teeOne),
        baseMs: med(xh.teeTwo),
        note: "below 1: reading the source once pays; the choice between the two is made on this figure",
      });
    }
    figs.push({
      group: `Memory: the provider relaying a ${xh.bigMb} MB cross-host clone`,
      label: "peak RSS / 200 MiB",
      ratio: summarize([xh.peakRss / 1024 / MEMORY_LIMIT_KB]),
      target: { op: "<", value: 1, text: "< 1 (under 200 MiB)" },
      note: "space",
    });
  }
  const rb = res.rollback;
  if (rb) {
    const floor = rb.floor.map((ms, i) => ms + rb.rtt[i]);
    figs.push({
      group: `Rollback in place (restoreFrom) of a stopped container (${rb.entries} entries)`,
      label: "ours / (btrfs subvolume snapshot + two renames + one SSH round trip)",
      ratio: summarize(pairRatios(rb.ours, floor)),
      target: { op: "<=", value: 2, text: "≤ 2×" },
      oursMs: med(rb.ours),
      baseMs: med(floor),
    });
  }
  const sn = res.snapshot;
  if (sn) {
    const group = "Snapshot (LxcSnapshot create)";
    for (const z of sn.sizes) {
      const floor = z.floor.map((ms, i) => ms + sn.rtt[i]);
      figs.push({
        group,
        label: `"live", ${z.tag} source: ours / (btrfs subvolume snapshot -r + one SSH round trip)`,
        ratio: summarize(pairRatios(z.ours, floor)),
        target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
        oursMs: med(z.ours),
        baseMs: med(floor),
      });
    }
    const [small, ...bigger] = sn.sizes;
    for (const big of bigger)
      figs.push({
        group,
        label: `"live": ours on ${big.tag} / ours on ${small.tag} (flat in size)`,
        ratio: summarize(pairRatios(big.ours, small.ours)),
        target: { op: "<=", value: 1.2, text: "≤ 1.2" },
        oursMs: med(big.ours),
        baseMs: med(small.ours),
      });
    figs.push({
      group,
      label: '"freeze": time frozen, ours / (lxc-freeze; btrfs subvolume snapshot -r; lxc-unfreeze)',
      ratio: summarize(pairRatios(sn.freeze.ours, sn.freeze.floor)),
      target: { op: "<=", value: 1.2, text: "≤ 1.2×" },
      oursMs: med(sn.freeze.ours),
      baseMs: med(sn.freeze.floor),
      note: "ours is reported in whole ms, rounded up",
    });
  }
  const dt = res.downtime;
  if (dt) {
    const group = `Downtime of a running container (${dt.entries} entries)`;
    figs.push({
      group,
      label: '"live" (1% of files written during the pre-copy) / "restart"',
      ratio: summarize(pairRatios(dt.live, dt.restart)),
      target: { op: "<=", value: 0.15, text: "≤ 0.15" },
      oursMs: med(dt.live),
      baseMs: med(dt.restart),
    });
    figs.push({
      group,
      label: '"restart" / floor (cp -a --reflink into a new subvolume + rm -rf)',
      ratio: summarize(pairRatios(dt.restart, dt.floor)),
      target: { op: "<=", value: 1.0, text: "≤ 1.0" },
      oursMs: med(dt.restart),
      baseMs: med(dt.floor),
    });
  }
  for (const c of res.conversions) {
    const group = `Conversion: ${convLabel(c)}`;
    const big = c.tag !== "debian" && c.entries >= 10_000;
    figs.push({
      group,
      label: "ours / floor",
      ratio: summarize(pairRatios(c.ms.ours, c.ms.floor)),
      target: big ? { op: "<=", value: 1.25, text: "≤ 1.25× (from 10k files up)" } : undefined,
      oursMs: med(c.ms.ours),
      baseMs: med(c.ms.floor),
    });
    figs.push({
      group,
      label: "ours / floor+sync",
      ratio: summarize(pairRatios(c.ms.ours, c.ms.floorSync)),
      oursMs: med(c.ms.ours),
      baseMs: med(c.ms.floorSync),
      note: "the floor plus one sync -f at its end: ours makes its steps durable, the floor does not",
    });
    if (c.rttMs?.length === c.ms.ours.length) {
      const hostSide = c.ms.ours.map((ms, i) => ms - c.ours[i].length * c.rttMs[i]);
      figs.push({
        group,
        label: "(ours − commands × SSH round trip) / floor",
        ratio: summarize(pairRatios(hostSide, c.ms.floor)),
        oursMs: med(hostSide),
        baseMs: med(c.ms.floor),
        note: "our host-side work alone, an estimate: each remote command costs about one round trip on top",
      });
    }
    figs.push({
      group,
      label: "ours / post's script",
      ratio: summarize(pairRatios(c.ms.ours, c.ms.post)),
      target: { op: "<", value: 1, text: "< 1 (faster)" },
      oursMs: med(c.ms.ours),
      baseMs: med(c.ms.post),
    });
    figs.push({
      group,
      label: "ours / rsync -aHAX",
      ratio: summarize(pairRatios(c.ms.ours, c.ms.rsync)),
      oursMs: med(c.ms.ours),
      baseMs: med(c.ms.rsync),
    });
    figs.push({
      group,
      label: "ours: data growth / tree size",
      ratio: summarize(c.dataGrowth.ours.map((g) => g / c.bytes)),
      target: { op: "<", value: 0.01, text: "< 1%" },
      note: "space",
    });
  }
  const cl = res.clone;
  if (cl) {
    for (const s of cl.sizes) {
      const floorRtt = s.floor.map((f, i) => f + cl.rtt[i]);
      figs.push({
        group: `Clone: ${sizeLabel(s.mb)} source`,
        label: "ours / (lxc-copy -s + 1 SSH round trip)",
        ratio: summarize(pairRatios(s.create, floorRtt)),
        target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
        oursMs: med(s.create),
        baseMs: med(floorRtt),
      });
      figs.push({
        group: `Clone: ${sizeLabel(s.mb)} source`,
        label: "ours / full copy",
        ratio: summarize(pairRatios(s.create, s.full)),
        target: s.mb >= 2048 ? { op: "<=", value: 0.02, text: "≤ 0.02 (≥ 50× faster)" } : undefined,
        oursMs: med(s.create),
        baseMs: med(s.full),
      });
    }
    const small = cl.sizes[0];
    const large = cl.sizes[cl.sizes.length - 1];
    if (small && large && small !== large) {
      figs.push({
        group: "Clone: flat in size",
        label: `ours ${sizeLabel(large.mb)} / ours ${sizeLabel(small.mb)}`,
        ratio: summarize(pairRatios(large.create, small.create)),
        target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
        oursMs: med(large.create),
        baseMs: med(small.create),
      });
    }
  }
  const fl = res.fleet;
  if (fl) {
    const runs = fl.all.map((_, i) => fl.hosts.map((h) => fl.alone[h][i]));
    const slowest = runs.map((r) => Math.max(...r));
    const sum = runs.map((r) => r.reduce((a, b) => a + b, 0));
    const group = `Fleet: ${PER_HOST} containers on each of ${fl.hosts.join(", ")}`;
    figs.push({
      group,
      label: "all hosts / slowest host alone",
      ratio: summarize(pairRatios(fl.all, slowest)),
      target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
      oursMs: med(fl.all),
      baseMs: med(slowest),
    });
    figs.push({
      group,
      label: "all hosts / sum of hosts alone",
      ratio: summarize(pairRatios(fl.all, sum)),
      oursMs: med(fl.all),
      baseMs: med(sum),
    });
  }
  const pv = res.preview;
  if (pv) {
    figs.push({
      group: `Preview: ${PREVIEW_RESOURCES} resources, no-op`,
      label: "ours / trivial dynamic resources",
      ratio: summarize(pairRatios(pv.ours, pv.trivial)),
      target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
      oursMs: med(pv.ours),
      baseMs: med(pv.trivial),
    });
  }
  figs.push(...scaleFigures(res.scale ?? []));
  const mem = largestConversion(res);
  if (mem) {
    figs.push({
      group: `Memory: provider process converting ${convLabel(mem)}`,
      label: "peak RSS / 200 MiB",
      ratio: summarize(mem.maxRssKb.map((k) => k / MEMORY_LIMIT_KB)),
      target: { op: "<", value: 1, text: "< 1 (under 200 MiB)" },
      note: "space",
    });
    if (mem.idleMaxRssKb.length === mem.maxRssKb.length)
      figs.push({
        group: `Memory: provider process converting ${convLabel(mem)}`,
        label: "peak RSS / idle provider process",
        ratio: summarize(pairRatios(mem.maxRssKb, mem.idleMaxRssKb)),
        note: "space",
      });
  }
  return figs;
}

function largestConversion(res: BenchResults): ConversionResult | undefined {
  return [...res.conversions].filter((c) => c.maxRssKb.length).sort((a, b) => b.entries - a.entries)[0];
}

function sizeLabel(mb: number): string {
  return mb >= 1024 ? `${mb / 1024} GB` : `${mb} MB`;
}

function range(s: Summary, f: (x: number) => string = fmtRatio): string {
  return `${f(s.min)} – ${f(s.max)}`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x < 0.001 ? 3 : 2)}%`;
}

function fmtFigure(f: Figure, x: number): string {
  if (f.label.includes("growth")) return pct(x);
  return fmtRatio(x);
}

/** Median ms per command label and per step op of our runs. */
export function phaseTable(runs: CommandTiming[][]): { what: string; ms: number }[] {
  const keys = new Map<string, number[]>();
  const add = (k: string, v: number, run: number) => {
    const xs = keys.get(k) ?? [];
    xs[run] = (xs[run] ?? 0) + v;
    keys.set(k, xs);
  };
  runs.forEach((cmds, run) => {
    for (const c of cmds) {
      if (c.steps.length === 0) {
        add(c.label, c.ms, run);
        continue;
      }
      add("start a step batch (channel, sh)", c.startMs, run);
      for (const s of c.steps) add(`step ${s.op}`, s.ms, run);
    }
  });
  return [...keys.entries()].map(([what, xs]) => ({
    what,
    ms: med(Array.from({ length: runs.length }, (_, i) => xs[i] ?? 0)),
  }));
}

/** Median ms per operation (several calls of one op in a run are added up). */
function opTable(runs: { op: string; ms: number }[][]): { what: string; ms: number }[] {
  const ops = [...new Set(runs.flatMap((r) => r.map((c) => c.op)))];
  return ops.map((op) => ({
    what: `${op} (×${med(runs.map((r) => r.filter((c) => c.op === op).length))})`,
    ms: med(runs.map((r) => r.filter((c) => c.op === op).reduce((a, c) => a + c.ms, 0))),
  }));
}

export function renderReport(res: BenchResults): string {
  const figs = computeFigures(res);
  const L: string[] = [];
  L.push("# Benchmarks");
  L.push("");
  L.push(
    `Generated by \`npm run bench\` (bench/main.ts) on ${res.startedAt.slice(0, 16).replace("T", " ")} UTC, commit ${res.machine.commit ?? "?"}; ` +
      `the whole run took **${(res.totalMs / 60000).toFixed(1)} min**. Chart: [chart.svg](chart.svg); raw samples: [results.json](results.json).`,
  );
  L.push("");
  L.push(
    `Every figure is a **ratio** of ours to a baseline measured in the same invocation, run by run in interleaved order (A B A B ...), ` +
      `**median of ${res.runs} runs, with min and max**. Below 1 means ours is faster (or smaller). Absolute times are medians, ` +
      "for orientation only: they depend on this machine and are never judged.",
  );
  L.push("");
  if (res.notes.merged) L.push(`**Note**: ${res.notes.merged}`, "");
  L.push("## Machine");
  L.push("");
  L.push("| | |");
  L.push("|---|---|");
  for (const [k, v] of Object.entries(res.machine)) L.push(`| ${k} | ${v} |`);
  L.push("");
  L.push("## Summary");
  L.push("");
  L.push("| figure | ratio (median) | min – max | target | result | ours / baseline (abs.) |");
  L.push("|---|---:|---:|---|---|---|");
  for (const f of figs) {
    const v = verdict(f);
    const abs =
      f.oursMs !== undefined && f.baseMs !== undefined ? `${fmtMs(f.oursMs)} / ${fmtMs(f.baseMs)}` : "";
    L.push(
      `| ${f.group}: ${f.label} | **${fmtFigure(f, f.ratio.median)}** | ${range(f.ratio, (x) => fmtFigure(f, x))} | ${f.target?.text ?? "—"} | ${v === "FAIL" ? "**FAIL**" : (v ?? "—")} | ${abs} |`,
    );
  }
  L.push("");
  const failed = figs.filter((f) => verdict(f) === "FAIL");
  L.push(
    failed.length
      ? `**${failed.length} of ${figs.filter((f) => f.target).length} targets missed**; see "Missed targets" below.`
      : `All ${figs.filter((f) => f.target).length} targets met.`,
  );
  const o = res.otherTestRuns;
  const bg = res.backgroundCpu;
  const load = o?.loadavg?.length ? summarize(o.loadavg) : undefined;
  const quiet = `${bg !== undefined ? `Before starting, the machine was ${(bg * 100).toFixed(0)}% busy without the bench. ` : ""}${load ? `1-minute load average during the run: median ${load.median.toFixed(1)}, max ${load.max.toFixed(1)} (${res.machine.nproc ?? "?"} cores). ` : ""}`;
  if (o?.busy || (bg ?? 0) > 0.1)
    L.push(
      `\n**Caution**: the machine and fleet are shared. ${quiet}${o?.busy ? `Another test run (mocha) was active during ${o.busy} of ${o.samples} 10-second samples. ` : ""}` +
        "Such load is noise in these figures; the interleaving spreads it over both sides of each ratio, but not evenly.",
    );
  else if (o)
    L.push(`\n${quiet}No other test run was active on the fleet during this run (${o.samples} samples).`);
  for (const s of res.skipped) L.push(`\nSkipped: conversion of ${s.tag} files (${s.reason}).`);
  for (const e of res.errors) L.push(`\n**Error** in ${e.part}: ${e.message.split("\n")[0]}`);
  L.push("");
  L.push(...downtimeSection(res.downtime));
  L.push(...conversionSection(res));
  L.push(...cloneSection(res));
  L.push(...fleetSection(res));
  L.push(...previewSection(res));
  L.push(...scaleSection(res));
  L.push(...transportSection(res.transport));
  L.push(...memorySection(res));
  L.push(...missedSection(res, failed));
  return `${L.join("\n")}\n`;
}

function downtimeSection(dt: DowntimeResult | undefined): string[] {
  if (!dt?.liveSteps?.length) return [];
  const L = [`## Downtime of a running container (${dt.entries} entries)`, ""];
  L.push(
    `A running container of ${dt.entries} entries converted with \`ifRunning: "live"\` (a writer inside appends to 1% of its files, ` +
      `median ${med(dt.written)}, between the pre-copy and the stop) and with \`"restart"\`, on fresh reflink copies of one template; ` +
      "downtime observed on the host (`lxc-info -s` every 10 ms, from leaving RUNNING to RUNNING again). " +
      "The steps the container is down for, from the step markers (median ms per run; a step that runs twice is added up):",
    "",
  );
  const live = opTable(dt.liveSteps);
  const restart = opTable(dt.restartSteps);
  const ops = [...new Set([...live, ...restart].map((r) => r.what.replace(/ \(×\d+\)$/, "")))];
  L.push('| step | "live" | "restart" |', "|---|---:|---:|");
  const cell = (rows: { what: string; ms: number }[], op: string) => {
    const r = rows.find((x) => x.what.replace(/ \(×\d+\)$/, "") === op);
    return r ? r.ms.toFixed(0) : "—";
  };
  for (const op of ops) L.push(`| ${op} | ${cell(live, op)} | ${cell(restart, op)} |`);
  L.push(`| **downtime observed** | ${med(dt.live).toFixed(0)} | ${med(dt.restart).toFixed(0)} |`);
  L.push(`| whole conversion | ${med(dt.liveTotal).toFixed(0)} | ${med(dt.restartTotal).toFixed(0)} |`);
  L.push(`| floor (cp -a --reflink + rm -rf, container stopped) | | ${med(dt.floor).toFixed(0)} |`);
  L.push("");
  return L;
}

function conversionSection(res: BenchResults): string[] {
  if (!res.conversions.length) return [];
  const L = ["## 1. Conversion", ""];
  L.push(
    "Each run converts a fresh reflink copy (`cp -a --reflink=always`, untimed) of one template container on h1: busybox plus `bulk/` " +
      "(directories of 100 entries: files of 100 B – 2 KB, every 20th 16–48 KiB of random data, a symlink every 250th entry, a hardlink every " +
      "500th, a dotfile per directory, a few xattrs), or a copy of the fleet's real Debian container (debootstrap minbase).",
  );
  L.push("");
  L.push(
    "- **ours**: `convergeWith` in a fresh provider process through an already connected pooled SSH connection (a `true` runs first): inspect, " +
      "journal, new subvolume, `cp -a --reflink=always`, verification of both trees, swap, config rewrite, removal of the old tree, each step made " +
      "durable (`sync -f`), and the final inspection.",
  );
  L.push(
    "- **floor**: on the host, `btrfs subvolume create; cp -a --reflink=always rootfs/. new/; mv; rm -rf old`, timed with `date +%s%N` inside one " +
      "command (no SSH); **floor+sync** adds one `sync -f` at the end.",
  );
  L.push(
    "- **post's script**: the loop body of the original 2013 post, `mv rootfs rootfs.saved && btrfs subvolume create rootfs && mv rootfs.saved/* rootfs && rmdir rootfs.saved`. " +
      "`mv` into another subvolume gets EXDEV from rename() and falls back to copying (coreutils 9 copies with reflink when it can). " +
      "It loses top-level dotfiles: `*` does not match them, they stay in `rootfs.saved` and `rmdir` fails" +
      (res.notes.postDotfiles
        ? ` (shown on a busybox rootfs with a \`.dotfile\`: ${res.notes.postDotfiles})`
        : "") +
      ". Our trees have no top-level dotfile, so it completes here." +
      (res.notes.postGuardSkips
        ? ' Its guard, `btrfs subvolume list "$rootfs" || { ... }`, succeeds on a plain directory with btrfs-progs 6.2 (it lists the whole filesystem), so on today\'s tools the loop as posted converts nothing; the body is timed here.'
        : ""),
  );
  L.push(
    "- **rsync**: `btrfs subvolume create; rsync -aHAX rootfs/ new/; mv; rm -rf old` on the host: a full data copy.",
  );
  L.push("");
  L.push(
    "Space: `btrfs filesystem df -b` after `btrfs subvolume sync` and `sync`, before and after each run (nothing else of the bench runs meanwhile). " +
      "The copies share their data extents with the template, so a reflink conversion should not grow data at all, while rsync writes the whole tree again.",
  );
  L.push("");
  L.push("| tree | entries | file bytes | ours | floor | floor+sync | post's script | rsync |");
  L.push("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const c of res.conversions) {
    L.push(
      `| ${c.tag} | ${c.entries} | ${fmtBytes(c.bytes)} | ${fmtMs(med(c.ms.ours))} | ${fmtMs(med(c.ms.floor))} | ${fmtMs(med(c.ms.floorSync))} | ${fmtMs(med(c.ms.post))} | ${fmtMs(med(c.ms.rsync))} |`,
    );
  }
  L.push("");
  L.push("Space growth per run (median; data / metadata):");
  L.push("");
  L.push("| tree | ours | floor | post's script | rsync |");
  L.push("|---|---:|---:|---:|---:|");
  for (const c of res.conversions) {
    const g = (v: "ours" | "floor" | "post" | "rsync") =>
      `${fmtBytes(med(c.dataGrowth[v]))} / ${fmtBytes(med(c.metaGrowth[v]))}`;
    L.push(`| ${c.tag} | ${g("ours")} | ${g("floor")} | ${g("post")} | ${g("rsync")} |`);
  }
  const badPost = res.conversions.filter((c) => c.postCodes.some((x) => x !== 0));
  if (badPost.length)
    L.push(
      "",
      `The post's script exited non-zero on: ${badPost.map((c) => `${c.tag} (${c.postCodes.join(",")})`).join("; ")}.`,
    );
  L.push("");
  L.push(
    "Where our time goes (median ms per remote command or step; steps timed from the `@@step` lines step.sh prints):",
  );
  L.push("");
  const tables = res.conversions.map((c) => phaseTable(c.ours));
  const whats = [...new Set(tables.flatMap((t) => t.map((r) => r.what)))];
  L.push(`| command / step | ${res.conversions.map((c) => c.tag).join(" | ")} |`);
  L.push(`|---|${res.conversions.map(() => "---:").join("|")}|`);
  for (const w of whats)
    L.push(
      `| ${w} | ${tables
        .map((t) => {
          const r = t.find((x) => x.what === w);
          return r ? r.ms.toFixed(0) : "";
        })
        .join(" | ")} |`,
    );
  L.push(`| **total (median)** | ${res.conversions.map((c) => med(c.ms.ours).toFixed(0)).join(" | ")} |`);
  L.push(`| remote commands | ${res.conversions.map((c) => med(c.ours.map((x) => x.length))).join(" | ")} |`);
  if (res.conversions.every((c) => c.rttMs?.length))
    L.push(
      `| one SSH round trip (\`true\`, measured by the provider process just before) | ${res.conversions.map((c) => med(c.rttMs).toFixed(0)).join(" | ")} |`,
    );
  L.push("");
  L.push(
    'Each remote command pays about one SSH round trip before its first step starts ("start a step batch", and inside "inspect"): a new ' +
      "channel on the pooled connection, sshd starting the user's login shell (bash, which sshd makes source `~/.bashrc`), then `sh -c` with " +
      "our script. The floor, post's script and rsync run on the host with none of that.",
  );
  L.push("");
  return L;
}

function cloneSection(res: BenchResults): string[] {
  const cl = res.clone;
  if (!cl) return [];
  const L = ["## 2. Clone", ""];
  L.push(
    "Sources on h1: busybox containers converted by us, then 10 MB, 500 MB and 2 GB of `/dev/urandom` written once into their subvolume. " +
      "**ours**: `clone.create` (inspect, `lxc-copy -s -B btrfs`, inspect, finishing the config, hostname and hosts files, inspect) then `clone.del`, " +
      "through a warm pooled connection. **floor**: bare `lxc-copy -n SRC -N X -s -B btrfs` timed on the host, plus one SSH round trip (`true` on the " +
      `warm connection, median of 10 per iteration: ${fmtMs(med(cl.rtt))}). **full copy**: \`${cl.fullMethod}\` timed on the host. ${cl.fullProbe}.`,
  );
  L.push("");
  L.push(
    "| source | ours create | ours delete | lxc-copy -s | lxc-destroy | full copy | data growth ours / full |",
  );
  L.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const s of cl.sizes)
    L.push(
      `| ${sizeLabel(s.mb)} | ${fmtMs(med(s.create))} | ${fmtMs(med(s.del))} | ${fmtMs(med(s.floor))} | ${fmtMs(med(s.floorDestroy))} | ${fmtMs(med(s.full))} | ${fmtBytes(med(s.oursDataGrowth))} / ${fmtBytes(med(s.fullDataGrowth))} |`,
    );
  L.push("");
  const withCmds = cl.sizes.filter((s) => s.commands?.length);
  if (withCmds.length) {
    L.push("Our create, command by command (median ms, from `LXC_BTRFS_TRACE=1`; `clone.sh` operations):");
    L.push("");
    L.push(`| command | ${withCmds.map((s) => sizeLabel(s.mb)).join(" | ")} |`);
    L.push(`|---|${withCmds.map(() => "---:").join("|")}|`);
    const rows = withCmds.map((s) => opTable(s.commands));
    const ops = [...new Set(rows.flatMap((r) => r.map((x) => x.what)))];
    for (const op of ops)
      L.push(`| ${op} | ${rows.map((r) => r.find((x) => x.what === op)?.ms.toFixed(0) ?? "").join(" | ")} |`);
    L.push(`| commands | ${withCmds.map((s) => med(s.commands.map((c) => c.length))).join(" | ")} |`);
    L.push("");
  }
  return L;
}

function fleetSection(res: BenchResults): string[] {
  const fl = res.fleet;
  if (!fl) return [];
  const L = ["## 3. Fleet rollout", ""];
  L.push(
    `\`pulumi up\` with the real CLI of a program using \`LxcFleetRollout.discover\` (no canary wave, at most ${MAX_PER_HOST} conversions at once per host) ` +
      `over ${PER_HOST} fresh busybox containers per host (${fl.entries} entries each, ~${FLEET_TREE_ENTRIES} wanted), a new stack each run. ` +
      `Interleaved per iteration: each of ${fl.hosts.join(", ")} alone, then all of them. Wall time of the whole \`pulumi up\` (CLI start, program, discovery, engine, conversions). ` +
      "h3 cannot take part: its /var/lib/lxc is ext4, and a subvolume needs btrfs (discovery reports its containers as skipped).",
  );
  L.push("");
  L.push(`| run | ${fl.hosts.map((h) => `${h} alone`).join(" | ")} | all |`);
  L.push(`|---|${fl.hosts.map(() => "---:").join("|")}|---:|`);
  L.push(`| median | ${fl.hosts.map((h) => fmtMs(med(fl.alone[h]))).join(" | ")} | ${fmtMs(med(fl.all))} |`);
  L.push("");
  L.push(
    `SSH logins ("Accepted" lines in each host's sshd log) per \`pulumi up\` of all hosts: ${fl.hosts.map((h) => `${h} ${fl.accepted[h].join(", ")}`).join("; ")} ` +
      `(each host alone: ${fl.hosts.map((h) => `${h} ${fl.acceptedAlone[h].join(", ")}`).join("; ")}). ` +
      "One is the program's discovery (it closes its connection), the other the provider process's pooled connection shared by all conversions on that host.",
  );
  L.push("");
  L.push(
    `All fleet hosts are namespaces of this one ${res.machine.nproc ?? "?"}-core machine with their disks on the same underlying disk, so hosts ` +
      "in parallel compete for the same CPUs and I/O; on real separate hosts the parallel run could only do better.",
  );
  L.push("");
  return L;
}

function previewSection(res: BenchResults): string[] {
  const pv = res.preview;
  if (!pv) return [];
  return [
    "## 4. Preview",
    "",
    `A no-op \`pulumi preview\` of ${PREVIEW_RESOURCES} \`LxcSubvolumeRootfs\` (converted by one \`pulumi up\` first: ${fmtMs(pv.upMs)}) against a no-op preview of ` +
      `${PREVIEW_RESOURCES} trivial dynamic resources (a provider with \`create\` only), each its own temp project with the same CLI; interleaved. ` +
      `Medians: ours ${fmtMs(med(pv.ours))}, trivial ${fmtMs(med(pv.trivial))}. SSH logins on h1 during our previews: ${pv.accepted.join(", ")} ` +
      "(check and diff make no network calls).",
    "",
  ];
}

function memorySection(res: BenchResults): string[] {
  const c = largestConversion(res);
  if (!c) return [];
  const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;
  const L = ["## 5. Memory", ""];
  L.push(
    "Every one of our conversions above ran in a fresh node process (bench/convert-child.ts) that reports its own peak RSS " +
      "(`process.resourceUsage().maxRSS`); from 50k entries up, an idle one (loads the provider, connects, runs `true`) runs before each as the baseline.",
  );
  L.push("");
  L.push("| tree | peak RSS converting (median, min – max) | idle provider process |");
  L.push("|---|---:|---:|");
  for (const x of res.conversions)
    if (x.maxRssKb.length) {
      const s = summarize(x.maxRssKb);
      L.push(
        `| ${x.tag} | ${mb(s.median)} (${mb(s.min)} – ${mb(s.max)}) | ${x.idleMaxRssKb.length ? mb(med(x.idleMaxRssKb)) : "—"} |`,
      );
    }
  L.push("");
  return L;
}

function missedSection(res: BenchResults, failed: Figure[]): string[] {
  const L = ["## Missed targets", ""];
  if (!failed.length) return [...L, "None.", ""];
  for (const f of failed) {
    L.push(
      `- **${f.group}: ${f.label}** = ${fmtFigure(f, f.ratio.median)} (target ${f.target?.text}). ${reasonFor(res, f)}`,
    );
  }
  L.push("");
  return L;
}

/** The likely reason for a missed target, from the measurements themselves where possible. */
function reasonFor(res: BenchResults, f: Figure): string {
  const dt = res.downtime;
  if (f.group.startsWith("Downtime") && dt?.liveSteps?.length) {
    const step = (op: string, runs: { op: string; ms: number }[][]) =>
      med(runs.map((r) => r.filter((s) => s.op === op).reduce((a, s) => a + s.ms, 0)));
    const [catchup, verify] = [step("catchup", dt.liveSteps), step("verify", dt.liveSteps)];
    if (f.label.startsWith('"live"'))
      return (
        `The container is down ${fmtMs(med(dt.live))}: the catch-up ${fmtMs(catchup)} (one walk of the source, sorted and compared with the pre-copy's list of its image, and ${med(dt.written)} files copied again) ` +
        `and the verification ${fmtMs(verify)} (walks of both trees' metadata, xattrs and inode flags: the source's start with the catch-up), ` +
        `the rest stop, journal, swap, config and start. Both grow with the tree, not with the change: to reach 0.15 the downtime would have to be ${fmtMs(0.15 * med(dt.restart))}, ` +
        "which needs a verification that does not read every entry of both trees while the container is stopped; the verification stays as strict as for a stopped container."
      );
    return `"restart" is down for its copy (${fmtMs(step("copy", dt.restartSteps))}) and verification (${fmtMs(step("verify", dt.restartSteps))}); the floor's copy and removal take ${fmtMs(med(dt.floor))}.`;
  }
  if (f.group.startsWith("Conversion") && f.label === "ours / floor") {
    const c = res.conversions.find((x) => f.group.includes(convLabel(x)));
    if (!c) return "";
    const rows = phaseTable(c.ours).sort((a, b) => b.ms - a.ms);
    const copy = rows.find((r) => r.what === "step copy")?.ms ?? 0;
    const removal = rows.find((r) => r.what === "step remove")?.ms ?? 0;
    const rest = rows.filter((r) => r.what !== "step copy" && r.what !== "step remove");
    const top = rest.slice(0, 4).map((r) => `${r.what} ${r.ms.toFixed(0)} ms`);
    const rtt = c.rttMs?.length ? med(c.rttMs) : 0;
    const n = med(c.ours.map((x) => x.length));
    return (
      `The reflink copy itself takes ${copy.toFixed(0)} ms (floor ${med(c.ms.floor).toFixed(0)} ms in all); beyond copy and removal the largest costs are ${top.join(", ")}. ` +
      (rtt
        ? `${n} remote commands at about ${rtt.toFixed(0)} ms of SSH round trip each make ${(n * rtt).toFixed(0)} ms of fixed cost. `
        : "") +
      "The verification walks each tree three times (one `find` for metadata, counts, device numbers and hardlinks, one `getfattr` for xattrs and ACLs, one `lsattr` for inode flags), " +
      "the source's walks beside the copy and the copy's after it, " +
      "the first inspection walks the tree to count it, and the copy is flushed (`syncfs`) before the journal says `swapping`, so that a power loss cannot swap in a copy that is not on disk; " +
      `against the floor with one sync the ratio is ${fmtRatio(med(pairRatios(c.ms.ours, c.ms.floorSync)))}. ` +
      `To meet 1.25× everything beyond copy and removal would have to fit in ${fmtMs(Math.max(0, 1.25 * med(c.ms.floor) - copy - removal))}; it takes ${fmtMs(med(c.ms.ours) - copy - removal)}.`
    );
  }
  if (f.group.startsWith("Conversion") && f.label.startsWith("ours / post")) {
    return (
      "The post's script is the floor by another name (coreutils 9 `mv` falls back to a reflinking copy across subvolumes, so it copies no data either) " +
      "and does no inspection, verification, journaling or syncing; our extra time is that safety work plus one SSH round trip per remote command " +
      "(see the step table in section 1)."
    );
  }
  if (f.group.startsWith("Clone")) {
    const cl = res.clone;
    const s = cl?.sizes.find((x) => f.group.includes(sizeLabel(x.mb)));
    if (!cl || !s) return "";
    const n = s.commands?.length ? med(s.commands.map((c) => c.length)) : 0;
    const rtt = med(cl.rtt);
    const create = med(s.create);
    const hostSide = create - n * rtt;
    const work =
      `Our create (${fmtMs(create)}) is ${n} remote commands around the same lxc-copy: about ${fmtMs(n * rtt)} of SSH round trips ` +
      `(${fmtMs(rtt)} each) and about ${fmtMs(hostSide)} of work on the host, mostly the inspection that ends each command (lxc-info and ` +
      "`btrfs subvolume show` for source and clone, every container's config for MAC addresses, a walk of the source for nested subvolumes; " +
      "see the table in section 2). The fixups need the config lxc-copy wrote, so they cannot share its round trip without guessing it.";
    if (f.label.startsWith("ours / (lxc-copy"))
      return `${work} The bare lxc-copy -s takes ${fmtMs(med(s.floor))}; the target allows it one round trip.`;
    if (f.label === "ours / full copy")
      return (
        `${work} To be 50× faster than this full copy (${fmtMs(med(s.full))}) it would have to finish in ${fmtMs(med(s.full) / 50)}; ` +
        `the snapshot itself does (bare lxc-copy -s: ${fmtMs(med(s.floor))}). The full copy is fast here because the source's data sits in ` +
        `this machine's page cache (${res.machine.memory ?? "?"} of RAM) and ` +
        "the loop image's writes land in the host's page cache too; on real disks it would take longer."
      );
  }
  if (f.group.startsWith("Fleet")) {
    return "Both hosts share this machine's CPUs and disk, so running them in parallel cannot halve the time as separate machines would.";
  }
  if (f.group.startsWith("Scale")) {
    const r = (res.scale ?? []).find((x) => f.group.includes(scaleTag(x)));
    if (!r && !f.group.includes("per resource")) return "";
    if (f.group.includes("per resource"))
      return "Per-resource time that grows with N is the engine's: it rewrites the whole state at every step, so its cost per resource grows with the stack (the engine CPU column in section 6).";
    const c = (side: "ours" | "trivial", cmd: ScaleCommand, k: keyof CpuSplit) =>
      med((r as ScaleResult)[side][cmd].map((x) => x.cpu[k]));
    const sb = (r as ScaleResult).stateBytesPerResource;
    const state = sb
      ? ` Each of our resources holds ${sb.ours} bytes of state (the serialized provider twice, inputs and outputs with the connection) against ${sb.trivial} for a trivial one, and the engine rewrites the whole checkpoint at every step.`
      : "";
    if (f.label.includes("`up`"))
      return (
        `In \`up\` the engine's process tree used ${c("ours", "up", "engine").toFixed(1)} s of CPU for ours against ${c("trivial", "up", "engine").toFixed(1)} s for trivial resources, ` +
        `and the hosts ${c("ours", "up", "other").toFixed(1)} s (one inspection per adoption: the engine starts creates one by one as the program registers them, so they seldom arrive together to be batched).${state}`
      );
    return (
      `A refresh reads every resource: the hosts spent ${c("ours", "refresh", "other").toFixed(1)} s of CPU on the batched inspections and the provider process ${c("ours", "refresh", "provider").toFixed(1)} s, ` +
      `against ${c("trivial", "refresh", "other").toFixed(1)} s and ${c("trivial", "refresh", "provider").toFixed(1)} s for trivial resources whose read returns nothing; ` +
      `on this 2-core machine the engine (${c("ours", "refresh", "engine").toFixed(1)} s) and the hosts share the same CPUs.${state}`
    );
  }
  if (f.group.startsWith("Preview")) {
    return "Our resources carry a larger serialized provider and more inputs/outputs per resource, which the engine checks and diffs one at a time.";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------
// Chart

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A horizontal log-scale chart of every time ratio: median dot, min–max whisker, target tick. */
export function renderChart(res: BenchResults): string {
  // time ratios measured directly: not space figures, nor the transport-free estimate
  const figs = computeFigures(res).filter((f) => f.note !== "space" && !f.label.startsWith("("));
  const rowH = 22;
  const left = 360;
  const right = 40;
  const width = 980;
  const plotW = width - left - right;
  const all = figs.flatMap((f) => [f.ratio.min, f.ratio.max, f.target?.value ?? 1]).filter((x) => x > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all, 0.5)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 2)));
  const x = (v: number) =>
    left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  const rows: { f?: Figure; group?: string }[] = [];
  let g = "";
  for (const f of figs) {
    if (f.group !== g) rows.push({ group: f.group });
    g = f.group;
    rows.push({ f });
  }
  const top = 60;
  const height = top + rows.length * rowH + 50;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  o.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  o.push(
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">pulumi-lxc-btrfs: ours / baseline (log scale; median ● and min–max; | target)</text>`,
  );
  o.push(
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${res.machine.nproc ?? "?"} cores, ${res.machine.memory ?? "?"}, kernel ${res.machine.kernel ?? "?"}, ${res.machine["btrfs-progs"] ?? ""}, LXC ${res.machine.lxc ?? "?"}; ${res.runs} interleaved runs; ${res.startedAt.slice(0, 10)}`)}</text>`,
  );
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > hi * 1.0001) break;
      const xx = x(v).toFixed(1);
      o.push(
        `<line x1="${xx}" y1="${top - 4}" x2="${xx}" y2="${top + rows.length * rowH}" stroke="${m === 1 ? "#ccc" : "#eee"}"/>`,
      );
      if (m === 1 || rows.length > 0)
        o.push(
          `<text x="${xx}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#555">${Number(v.toPrecision(1))}</text>`,
        );
    }
  }
  o.push(
    `<line x1="${x(1).toFixed(1)}" y1="${top - 4}" x2="${x(1).toFixed(1)}" y2="${top + rows.length * rowH}" stroke="#333" stroke-width="1.5"/>`,
  );
  o.push(
    `<text x="${x(1).toFixed(1)}" y="${top + rows.length * rowH + 34}" text-anchor="middle" fill="#333">1 = as fast as the baseline; left is faster</text>`,
  );
  rows.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2;
    if (r.group) {
      o.push(`<text x="8" y="${y + 4}" font-weight="bold">${esc(r.group)}</text>`);
      return;
    }
    const f = r.f as Figure;
    const v = verdict(f);
    const color = v === "FAIL" ? "#c0392b" : v === "pass" ? "#27ae60" : "#7f8c8d";
    o.push(`<text x="20" y="${y + 4}">${esc(f.label)}</text>`);
    o.push(
      `<rect x="${Math.min(x(1), x(f.ratio.median)).toFixed(1)}" y="${y - 6}" width="${Math.abs(x(f.ratio.median) - x(1)).toFixed(1)}" height="12" fill="${color}" opacity="0.35"/>`,
    );
    o.push(
      `<line x1="${x(f.ratio.min).toFixed(1)}" y1="${y}" x2="${x(f.ratio.max).toFixed(1)}" y2="${y}" stroke="${color}" stroke-width="1.5"/>`,
    );
    for (const e of [f.ratio.min, f.ratio.max])
      o.push(
        `<line x1="${x(e).toFixed(1)}" y1="${y - 4}" x2="${x(e).toFixed(1)}" y2="${y + 4}" stroke="${color}"/>`,
      );
    o.push(`<circle cx="${x(f.ratio.median).toFixed(1)}" cy="${y}" r="4" fill="${color}"/>`);
    if (f.target)
      o.push(
        `<line x1="${x(f.target.value).toFixed(1)}" y1="${y - 9}" x2="${x(f.target.value).toFixed(1)}" y2="${y + 9}" stroke="#000" stroke-width="2"/>`,
      );
    o.push(
      `<text x="${width - 4}" y="${y + 4}" text-anchor="end" fill="${color}">${fmtRatio(f.ratio.median)}${v ? ` ${v}` : ""}</text>`,
    );
  });
  o.push("</svg>");
  return `${o.join("\n")}\n`;
}

const SCALE_LABEL: Record<ScaleCommand, string> = {
  up: "`up` (all adopted)",
  preview: "no-op `preview`",
  refresh: "`preview --refresh`",
};

function scaleTag(r: ScaleResult): string {
  return `${r.n} containers on ${r.hosts.length === 1 ? "one host" : `${r.hosts.length} hosts`}`;
}

/** The figures of issue "fleet-sized stacks": per-command ratios at each N, and flatness from the smallest N. */
export function scaleFigures(scale: ScaleResult[]): Figure[] {
  const figs: Figure[] = [];
  const ms = (xs: ScaleSample[]) => xs.map((x) => x.ms);
  for (const r of scale) {
    const group = `Scale: ${scaleTag(r)}`;
    if (r.hosts.length === 1) {
      figs.push({
        group,
        label: "`preview --refresh` / no-op `preview`",
        ratio: summarize(pairRatios(ms(r.ours.refresh), ms(r.ours.preview))),
        target: { op: "<=", value: 1.3, text: "≤ 1.3×" },
        oursMs: med(ms(r.ours.refresh)),
        baseMs: med(ms(r.ours.preview)),
      });
      figs.push({
        group,
        label: "`up` adopting all / no-op `preview`",
        ratio: summarize(pairRatios(ms(r.ours.up), ms(r.ours.preview))),
        target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
        oursMs: med(ms(r.ours.up)),
        baseMs: med(ms(r.ours.preview)),
      });
    }
    for (const c of SCALE_COMMANDS) {
      figs.push({
        group,
        label: `${SCALE_LABEL[c]}: ours / ${r.n} trivial dynamic resources`,
        ratio: summarize(pairRatios(ms(r.ours[c]), ms(r.trivial[c]))),
        target: { op: "<=", value: 1.5, text: "≤ 1.5×" },
        oursMs: med(ms(r.ours[c])),
        baseMs: med(ms(r.trivial[c])),
      });
    }
  }
  const spread = scale.filter((r) => r.hosts.length > 1).sort((a, b) => a.n - b.n);
  const small = spread[0];
  const big = spread.at(-1);
  if (small && big && big.n > small.n) {
    for (const c of SCALE_COMMANDS) {
      const perRes = (r: ScaleResult) => med(ms(r.ours[c])) / r.n;
      const ratios = ms(big.ours[c]).map((x) => x / big.n / perRes(small));
      figs.push({
        group: `Scale: per resource, ${big.n} / ${small.n} containers`,
        label: `${SCALE_LABEL[c]} ms per resource`,
        ratio: summarize(ratios),
        target: { op: "<=", value: 1.5, text: "≤ 1.5× (flat)" },
        oursMs: perRes(big),
        baseMs: perRes(small),
        note: `the ${small.n}-container side is its median`,
      });
    }
  }
  return figs;
}

function scaleSection(res: BenchResults): string[] {
  const scale = res.scale ?? [];
  if (!scale.length) return [];
  const L = [
    "## 6. Scale: fleet-sized stacks",
    "",
    "N containers, already converted, one `LxcSubvolumeRootfs` each (so `up` only adopts and `preview --refresh` only reads), " +
      "against N trivial dynamic resources (a provider with `create` only: the engine's own cost per resource); every command with " +
      "`--parallel 32`, run by run interleaved, `destroy` (retain) between runs. Milliseconds per resource (median), and where the CPU " +
      "went (median CPU seconds of the run): the provider process, the rest of the Pulumi process tree (engine, language host, program), " +
      "and everything else on the machine (the fleet hosts' sshd, shells and tools, and background).",
    "",
    "| N | command | ours ms/resource | trivial ms/resource | ours / trivial | CPU s: provider / engine / other (ours) | CPU s: engine / other (trivial) |",
    "|---|---|---:|---:|---:|---|---|",
  ];
  for (const r of scale) {
    for (const c of SCALE_COMMANDS) {
      const o = r.ours[c];
      const t = r.trivial[c];
      const cpu = (xs: ScaleSample[], k: keyof CpuSplit) => med(xs.map((x) => x.cpu[k])).toFixed(1);
      L.push(
        `| ${scaleTag(r)} | ${SCALE_LABEL[c]} | ${(med(o.map((x) => x.ms)) / r.n).toFixed(1)} | ${(med(t.map((x) => x.ms)) / r.n).toFixed(1)} | ` +
          `${fmtRatio(med(o.map((x) => x.ms)) / med(t.map((x) => x.ms)))} | ${cpu(o, "provider")} / ${cpu(o, "engine")} / ${cpu(o, "other")} | ` +
          `${(Number(cpu(t, "engine")) + Number(cpu(t, "provider"))).toFixed(1)} / ${cpu(t, "other")} |`,
      );
    }
  }
  L.push("");
  for (const r of scale) {
    if (r.stateBytesPerResource)
      L.push(
        `State per resource (\`pulumi stack export\` after \`up\`, ${scaleTag(r)}): ours ${r.stateBytesPerResource.ours} bytes, trivial ${r.stateBytesPerResource.trivial} bytes.`,
        "",
      );
  }
  return L;
}
