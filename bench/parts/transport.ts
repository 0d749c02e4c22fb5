/**
 * Part: the transport. The same work through each way of running remote commands, interleaved run by run
 * in this one process (LXC_BTRFS_TRANSPORT, read per command; a fresh connection per mode and run):
 *   exec-nagle  one SSH channel (session, login shell) per command, Nagle on: the transport of 0.2.0
 *   exec        one channel per command, TCP_NODELAY
 *   shell       long-lived remote shells per connection (the default)
 * What: a trivial command (`true`, median of 20 on a warm connection), a snapshot clone (clone.create of a
 * 10 MB source) and a 1k-entry conversion (convergeWith), each with the time of every remote command and of
 * every step of a step.sh batch; and their floors on the host: bare `lxc-copy -s -B btrfs`, and
 * `cp -a --reflink` into a new subvolume + `rm -rf` of the old tree. Runs on h4 when the fleet has it (the
 * fault matrices cut and restart h1).
 */

import { cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { convergeWith } from "../../provider/rootfs/provider";
import { closeAllConnections, openRemote } from "../../provider/transport/ssh";
import { type BenchContext, medianRoundTrip, quietly, rootConnection, rootfsInputs } from "../lib/context";
import { cloneTemplate, createBusybox, destroy, LXC, settle, sh, timedOnHost } from "../lib/host";
import { type CommandTiming, timedRemote } from "../lib/remote-timing";
import { FLOOR_SCRIPT, makeTemplate, templateName } from "./conversion";

export const TRANSPORTS = ["exec-nagle", "exec", "shell"] as const;
export type Transport = (typeof TRANSPORTS)[number];

export interface TransportRuns {
  /** Median of 20 `true` round trips on a warm connection, ms, per run. */
  rtt: number[];
  /** clone.create of the 10 MB source, ms, per run; and its remote commands. */
  clone: number[];
  cloneCommands: CommandTiming[][];
  /** convergeWith on a fresh copy of the 1k template, ms, per run; and its remote commands with steps. */
  convert: number[];
  convertCommands: CommandTiming[][];
}

export interface TransportResult {
  host: string;
  entries: number;
  modes: Record<Transport, TransportRuns>;
  /** Bare `lxc-copy -s -B btrfs` on the host, ms, per run. */
  cloneFloor: number[];
  /** FLOOR_SCRIPT (cp -a --reflink into a new subvolume, swap, rm -rf), up to its first mark, ms, per run. */
  convertFloor: number[];
}

const SRC = "bench-tr-src";
const TAG = "1k";

export async function benchTransport(ctx: BenchContext): Promise<TransportResult> {
  const h = ctx.btrfsHosts.find((x) => x.name === "h4") ?? ctx.h1;
  const hctx: BenchContext = { ...ctx, h1: h };
  const before = process.env.LXC_BTRFS_TRANSPORT;
  const conn = rootConnection(ctx, h);
  // sources: a converted busybox with 10 MB of data, and the 1k-entry template
  await createBusybox(h, SRC);
  await closeAllConnections();
  await quietly(ctx, () =>
    convergeWith(openRemote(rootfsInputs(ctx, h, SRC).connection), rootfsInputs(ctx, h, SRC)),
  );
  await sh(h, `head -c 10M /dev/urandom >"${LXC}/$1/rootfs/blob"`, SRC);
  await makeTemplate(hctx, { tag: TAG, entries: 1000 });
  const tpl = templateName(TAG);
  const entries = Number((await sh(h, `find "${LXC}/$1/rootfs" -mindepth 1 | wc -l`, tpl)).trim());
  await settle(h);
  const empty = (): TransportRuns => ({
    rtt: [],
    clone: [],
    cloneCommands: [],
    convert: [],
    convertCommands: [],
  });
  const res: TransportResult = {
    host: h.name,
    entries,
    modes: { "exec-nagle": empty(), exec: empty(), shell: empty() },
    cloneFloor: [],
    convertFloor: [],
  };
  try {
    // The fleet is shared: a run cut short by someone else's fault injection (a link cut, an sshd restart)
    // is discarded whole and run again, up to 5 times, so every mode keeps the same runs.
    let discarded = 0;
    for (let i = 0; i < ctx.runs; ) {
      const tmp: Pick<TransportResult, "modes" | "cloneFloor" | "convertFloor"> = {
        modes: { "exec-nagle": empty(), exec: empty(), shell: empty() },
        cloneFloor: [],
        convertFloor: [],
      };
      try {
        await oneRun(i, tmp);
      } catch (e) {
        if (++discarded > 5) throw e;
        ctx.log(`transport run ${i + 1}: discarded (${(e as Error).message.split("\n").join(" ")})`);
        await closeAllConnections();
        for (const n of ["bench-tr-cl", "bench-tr-cv", "bench-tr-fl"]) await destroy(h, n);
        continue;
      }
      for (const m of TRANSPORTS)
        for (const k of Object.keys(tmp.modes[m]) as (keyof TransportRuns)[])
          (res.modes[m][k] as unknown[]).push(...(tmp.modes[m][k] as unknown[]));
      res.cloneFloor.push(...tmp.cloneFloor);
      res.convertFloor.push(...tmp.convertFloor);
      ctx.log(
        `transport run ${i + 1}/${ctx.runs}: ${TRANSPORTS.map(
          (m) =>
            `${m}: true ${res.modes[m].rtt[i].toFixed(1)} ms, clone ${res.modes[m].clone[i].toFixed(0)} ms, 1k ${res.modes[m].convert[i].toFixed(0)} ms`,
        ).join(
          "; ",
        )}; floors: clone ${res.cloneFloor[i].toFixed(0)} ms, 1k ${res.convertFloor[i].toFixed(0)} ms`,
      );
      i++;
    }
  } finally {
    if (before === undefined) delete process.env.LXC_BTRFS_TRANSPORT;
    else process.env.LXC_BTRFS_TRANSPORT = before;
    await closeAllConnections();
    for (const n of [SRC, tpl, "bench-tr-cl", "bench-tr-cv", "bench-tr-fl"]) await destroy(h, n);
  }
  return res;

  async function oneRun(i: number, tmp: Pick<TransportResult, "modes" | "cloneFloor" | "convertFloor">) {
    // rotate the order so that no mode always goes first
    const order = TRANSPORTS.map((_, k) => TRANSPORTS[(k + i) % TRANSPORTS.length]);
    for (const mode of order) {
      process.env.LXC_BTRFS_TRANSPORT = mode;
      await closeAllConnections();
      const r = tmp.modes[mode];
      const remote = openRemote(rootfsInputs(ctx, h, SRC).connection);
      await remote.check(["true"]);
      r.rtt.push(await medianRoundTrip(remote, 20));

      // clone: the provider's own create, through a warm connection; its commands timed by the trace
      const name = "bench-tr-cl";
      const inputs = cloneArgsSchema.parse({ connection: conn, source: SRC, name });
      const cmds: CommandTiming[] = [];
      let t = performance.now();
      const made = await quietly(ctx, () => traceCommands(cmds, () => clone.create(inputs)));
      r.clone.push(performance.now() - t);
      r.cloneCommands.push(cmds);
      await quietly(ctx, () => clone.del(made.id, made.outs));
      await settle(h);

      // 1k conversion: convergeWith through a Remote that times each command and step
      const cv = "bench-tr-cv";
      await cloneTemplate(h, tpl, cv);
      await settle(h);
      const sink: CommandTiming[] = [];
      const timed = timedRemote(openRemote(rootfsInputs(ctx, h, cv).connection), sink);
      await timed.check(["true"]);
      sink.length = 0;
      t = performance.now();
      await quietly(ctx, () => convergeWith(timed, rootfsInputs(ctx, h, cv)));
      r.convert.push(performance.now() - t);
      r.convertCommands.push(sink);
      await destroy(h, cv);
      await settle(h);
    }
    // floors on the host
    const f = await timedOnHost(
      h,
      `set -e; lxc-copy -n "$1" -N "$2" -s -B btrfs; mark; lxc-destroy -n "$2" >/dev/null`,
      SRC,
      "bench-tr-fl",
    );
    if (f.code !== 0 || f.intervals.length !== 1) throw new Error(`lxc-copy -s: exit ${f.code}: ${f.stderr}`);
    tmp.cloneFloor.push(f.intervals[0]);
    await settle(h);
    await cloneTemplate(h, tpl, "bench-tr-fl");
    await settle(h);
    const c = await timedOnHost(h, FLOOR_SCRIPT, "bench-tr-fl");
    if (c.code !== 0 || c.intervals.length < 1) throw new Error(`floor: exit ${c.code}: ${c.stderr}`);
    tmp.convertFloor.push(c.intervals[0]);
    await destroy(h, "bench-tr-fl");
    await settle(h);
  }
}

/** Runs fn with the provider's command trace captured: each remote command of fn, labelled, with its ms. */
async function traceCommands<T>(sink: CommandTiming[], fn: () => Promise<T>): Promise<T> {
  const orig = console.error;
  const before = process.env.LXC_BTRFS_TRACE;
  process.env.LXC_BTRFS_TRACE = "1";
  console.error = (...a: unknown[]) => {
    const m = /^\[lxc-btrfs trace\] \S+ (\d+)ms (?:plb-(\S+) (\S+)|(\S+))/.exec(String(a[0]));
    if (m)
      sink.push({ label: m[2] === "clone" ? m[3] : (m[2] ?? m[4]), ms: Number(m[1]), steps: [], startMs: 0 });
  };
  try {
    return await fn();
  } finally {
    console.error = orig;
    if (before === undefined) delete process.env.LXC_BTRFS_TRACE;
    else process.env.LXC_BTRFS_TRACE = before;
  }
}

/** Median per step label over runs: "op ms" for each remote command (and step.sh step) of a run, summed by label. */
function byLabel(runs: CommandTiming[][], steps: boolean): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const [i, cmds] of runs.entries()) {
    const sums = new Map<string, number>();
    for (const c of cmds) {
      if (steps && c.steps.length) {
        sums.set(`${c.label}: start`, (sums.get(`${c.label}: start`) ?? 0) + c.startMs);
        for (const s of c.steps) sums.set(`  ${s.op}`, (sums.get(`  ${s.op}`) ?? 0) + s.ms);
      } else sums.set(c.label, (sums.get(c.label) ?? 0) + c.ms);
    }
    for (const [k, v] of sums) {
      const xs = m.get(k) ?? [];
      xs[i] = v;
      m.set(k, xs);
    }
  }
  return m;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function ratioCell(a: number[], b: number[]): string {
  const r = a.map((x, i) => x / b[i]).sort((x, y) => x - y);
  return `**${median(r).toFixed(2)}** (${r[0].toFixed(2)} – ${r[r.length - 1].toFixed(2)})`;
}

/** The report's section for this part. */
export function transportSection(t: TransportResult | undefined): string[] {
  if (!t) return [];
  const L = ["## Transport: a channel per command against long-lived remote shells", ""];
  const n = t.modes.shell.rtt.length;
  L.push(
    `${n} interleaved runs on ${t.host}, one process, a fresh connection per mode and run. **exec-nagle**: one SSH channel ` +
      "(session and login shell) per command with Nagle's algorithm on, the transport of 0.2.0; **exec**: the same with " +
      "TCP_NODELAY; **shell**: the default, commands as framed requests to a few long-lived shells per connection. " +
      `Ratios are paired by run: median (min – max). Clone: \`clone.create\` of a 10 MB snapshot source; 1k: \`convergeWith\` of a ` +
      `${t.entries}-entry busybox tree.`,
    "",
  );
  L.push(
    "| figure | exec-nagle | exec | shell | shell / exec-nagle | shell / exec |",
    "|---|---:|---:|---:|---:|---:|",
  );
  const row = (label: string, key: "rtt" | "clone" | "convert", digits: number) => {
    const m = (x: Transport) => `${median(t.modes[x][key]).toFixed(digits)} ms`;
    L.push(
      `| ${label} | ${m("exec-nagle")} | ${m("exec")} | ${m("shell")} | ${ratioCell(t.modes.shell[key], t.modes["exec-nagle"][key])} | ${ratioCell(t.modes.shell[key], t.modes.exec[key])} |`,
    );
  };
  row("trivial command (`true`)", "rtt", 1);
  row("clone create", "clone", 0);
  row(`conversion of ${t.entries} entries`, "convert", 0);
  L.push("");
  const rttFloor = (x: Transport) => t.cloneFloor.map((f, i) => f + t.modes[x].rtt[i]);
  L.push(
    "| against the floor | exec-nagle | exec | shell |",
    "|---|---:|---:|---:|",
    `| clone create / (bare \`lxc-copy -s -B btrfs\`, median ${median(t.cloneFloor).toFixed(0)} ms, + 1 round trip) | ${TRANSPORTS.map((x) => ratioCell(t.modes[x].clone, rttFloor(x))).join(" | ")} |`,
    `| conversion / floor (\`cp -a --reflink\` + \`rm -rf\`, median ${median(t.convertFloor).toFixed(0)} ms) | ${TRANSPORTS.map((x) => ratioCell(t.modes[x].convert, t.convertFloor)).join(" | ")} |`,
    "",
  );
  for (const [what, key, steps] of [
    ["clone create", "cloneCommands", false],
    [`conversion of ${t.entries} entries`, "convertCommands", true],
  ] as const) {
    L.push(
      `Where the time of a ${what} goes (median ms per run, remote commands by operation; steps of a step.sh batch indented):`,
      "",
    );
    L.push("| command / step | exec-nagle | exec | shell |", "|---|---:|---:|---:|");
    const maps = TRANSPORTS.map((x) => byLabel(t.modes[x][key], steps));
    const labels = [...new Set(maps.flatMap((m) => [...m.keys()]))];
    for (const l of labels)
      L.push(
        `| ${l.startsWith("  ") ? `&nbsp;&nbsp;${l.trim()}` : l} | ${maps.map((m) => (m.has(l) ? median(m.get(l) as number[]).toFixed(1) : "—")).join(" | ")} |`,
      );
    L.push("");
  }
  return L;
}
