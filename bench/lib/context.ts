/** What every part of the benchmark shares: the fleet, credentials, run counts, a log and the clock. */
import { appendFileSync, readFileSync } from "node:fs";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import { openRemote, type Remote } from "../../provider/transport/ssh";
import { type FleetHost, type Inventory, loadInventory } from "../../test/support/fleet";

export interface BenchContext {
  inv: Inventory;
  h1: FleetHost;
  h2: FleetHost;
  /**
   * The fleet's btrfs hosts that the rollout and scale figures run over (h1, h2, h4): three, as their
   * published figures say. h5, a fourth btrfs host, is only a target of copies between hosts.
   */
  btrfsHosts: FleetHost[];
  /** Every btrfs host of the fleet (h1, h2, h4, h5): copies between hosts fan out to all but the source's. */
  copyHosts: FleetHost[];
  rootKey: string;
  /** Interleaved runs per figure. */
  runs: number;
  /** Directory of the compiled bench (holds tree-gen.js, convert-child.js, programs/). */
  buildDir: string;
  /** Scratch directory (Pulumi projects and state); removed at the end. */
  workDir: string;
  logFile: string;
  started: number;
  /** ms since epoch by which the whole bench should be done. */
  deadline: number;
  log(msg: string): void;
}

export function makeContext(opts: {
  runs: number;
  buildDir: string;
  workDir: string;
  logFile: string;
  budgetMs: number;
}): BenchContext {
  const inv = loadInventory();
  const host = (n: string) => {
    const h = inv.hosts.find((x) => x.name === n);
    if (h?.fs !== "btrfs") throw new Error(`fleet host ${n} missing or not btrfs; run npm run fleet:up`);
    return h;
  };
  const started = Date.now();
  return {
    inv,
    h1: host("h1"),
    h2: host("h2"),
    btrfsHosts: inv.hosts.filter((h) => h.fs === "btrfs" && h.name !== "h5"),
    copyHosts: inv.hosts.filter((h) => h.fs === "btrfs"),
    rootKey: readFileSync(inv.users.root.privateKeyPath as string, "utf8"),
    runs: opts.runs,
    buildDir: opts.buildDir,
    workDir: opts.workDir,
    logFile: opts.logFile,
    started,
    deadline: started + opts.budgetMs,
    log(msg: string) {
      const line = `[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`;
      console.error(line);
      appendFileSync(opts.logFile, `${line}\n`);
    },
  };
}

/** Connection fields for root on a fleet host, key inline (as a Pulumi secret would deliver it). */
export function rootConnection(ctx: BenchContext, host: FleetHost) {
  return { host: host.address, privateKey: ctx.rootKey, knownHostsPath: ctx.inv.knownHostsPath };
}

export function rootfsInputs(ctx: BenchContext, host: FleetHost, container: string): RootfsInputs {
  return rootfsArgsSchema.parse({ connection: rootConnection(ctx, host), container });
}

/** A pooled Remote that is already connected: one trivial command first, so dial time is excluded. */
export async function warmRemote(ctx: BenchContext, host: FleetHost): Promise<Remote> {
  const remote = openRemote(rootfsInputs(ctx, host, "x").connection);
  await remote.check(["true"]);
  return remote;
}

/** Runs fn with console.log (the provider's progress lines) sent to the log file instead of stdout. */
export async function quietly<T>(ctx: BenchContext, fn: () => Promise<T>): Promise<T> {
  const orig = console.log;
  console.log = (...a: unknown[]) => appendFileSync(ctx.logFile, `${a.map(String).join(" ")}\n`);
  try {
    return await fn();
  } finally {
    console.log = orig;
  }
}

/** The median of N `true` round trips on a connected Remote, ms. */
export async function medianRoundTrip(remote: Remote, n: number): Promise<number> {
  const rtts: number[] = [];
  for (let k = 0; k < n; k++) {
    const s = performance.now();
    await remote.check(["true"]);
    rtts.push(performance.now() - s);
  }
  rtts.sort((a, b) => a - b);
  return n % 2 ? rtts[(n - 1) / 2] : (rtts[n / 2 - 1] + rtts[n / 2]) / 2;
}
