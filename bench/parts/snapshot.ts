/**
 * Part "snapshot": LxcSnapshot's create against its floors.
 *
 * - "live" (here on a stopped source, which takes no freeze either way): ours (createSnapshotWith through
 *   a warm pooled connection: inspect, make, which ends with an inspection) against a bare
 *   `btrfs subvolume snapshot -r` timed on the host plus one SSH round trip (`true`, median of 10), on a
 *   source of 10 MB and one of 2 GB of incompressible data, and one of 100k files (tree-gen's bulk/): the
 *   ratio, and ours on 2 GB and on 100k files / ours on 10 MB (flat in bytes and in entries).
 * - "freeze" on a running container: the time ours kept it frozen (frozenMs, measured on the host from
 *   before lxc-freeze to after lxc-unfreeze) against the bare `lxc-freeze; btrfs subvolume snapshot -r;
 *   lxc-unfreeze` timed on the host on the same container.
 * Ours and the floor alternate which goes first; each snapshot is deleted (untimed) before the next.
 */

import { convergeWith } from "../../provider/rootfs/provider";
import { snapshotArgsSchema } from "../../provider/snapshot/inputs";
import { createSnapshotWith, deleteSnapshotWith } from "../../provider/snapshot/provider";
import { openRemote } from "../../provider/transport/ssh";
import {
  type BenchContext,
  medianRoundTrip,
  quietly,
  rootConnection,
  rootfsInputs,
  warmRemote,
} from "../lib/context";
import { destroy, LXC, settle, sh, timedOnHost } from "../lib/host";
import { makeDataSource } from "./clone";
import { makeTemplate, templateName } from "./conversion";

export interface SnapshotSizeResult {
  tag: string;
  /** MB of data written into a busybox container, or (entries) a tree of that many files. */
  mb: number;
  entries?: number;
  /** ours, ms per run */
  ours: number[];
  /** btrfs subvolume snapshot -r on the host, ms per run */
  floor: number[];
}

export interface SnapshotResult {
  sizes: SnapshotSizeResult[];
  /** One SSH round trip, ms per run (median of 10). */
  rtt: number[];
  freeze: {
    /** frozenMs reported by ours, per run */
    ours: number[];
    /** lxc-freeze + snapshot -r + lxc-unfreeze on the host, ms per run */
    floor: number[];
  };
}

const SIZES: { tag: string; mb: number; entries?: number }[] = [
  { tag: "10m", mb: 10 },
  { tag: "2g", mb: 2048 },
  { tag: "100k-files", mb: 0, entries: 100_000 },
];
const src = (tag: string) => (tag === "100k-files" ? templateName("snap100k") : `bench-snap-${tag}`);
const RUNNING = "bench-snap-run";

const inputsFor = (ctx: BenchContext, container: string, ifRunning: "live" | "freeze") =>
  snapshotArgsSchema.parse({ connection: rootConnection(ctx, ctx.h1), container, name: "bench", ifRunning });

/** The floor's snapshot, made and deleted outside snaps/ (ours is the only one there). */
const FLOOR_LIVE = `set -e; d=${LXC}/$1; btrfs subvolume snapshot -r "$d/rootfs" "$d/floor-snap" >/dev/null; mark
btrfs subvolume delete "$d/floor-snap" >/dev/null`;
const FLOOR_FREEZE = `set -e; d=${LXC}/$1; mark; lxc-freeze -n "$1"; btrfs subvolume snapshot -r "$d/rootfs" "$d/floor-snap" >/dev/null; lxc-unfreeze -n "$1"; mark
btrfs subvolume delete "$d/floor-snap" >/dev/null`;

export async function benchSnapshot(ctx: BenchContext): Promise<SnapshotResult> {
  const h = ctx.h1;
  const res: SnapshotResult = {
    sizes: SIZES.map((s) => ({ ...s, ours: [], floor: [] })),
    rtt: [],
    freeze: { ours: [], floor: [] },
  };
  try {
    for (const s of SIZES) {
      if (s.entries) {
        await makeTemplate(ctx, { tag: "snap100k", entries: s.entries });
        const inputs = rootfsInputs(ctx, h, src(s.tag));
        await quietly(ctx, () => convergeWith(openRemote(inputs.connection), inputs));
      } else await makeDataSource(ctx, src(s.tag), s.mb);
    }
    await makeDataSource(ctx, RUNNING, 10);
    await sh(h, `lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 30`, RUNNING);
    await settle(h);
    for (let i = 0; i < ctx.runs; i++) {
      const remote = await warmRemote(ctx, h);
      res.rtt.push(await medianRoundTrip(remote, 10));
      const take = async (container: string, ifRunning: "live" | "freeze") => {
        const inputs = inputsFor(ctx, container, ifRunning);
        const t = performance.now();
        const { outs } = await quietly(ctx, () => createSnapshotWith(remote, inputs));
        const ms = performance.now() - t;
        if (!outs.readOnly) throw new Error(`snapshot of ${container} is not read-only`);
        await quietly(ctx, () => deleteSnapshotWith(remote, inputs, outs.uuid));
        return { ms, frozenMs: outs.frozenMs };
      };
      for (const [j, s] of SIZES.entries()) {
        const r = res.sizes[j];
        const ours = async () => r.ours.push((await take(src(s.tag), "live")).ms);
        const floor = async () => {
          const f = await timedOnHost(h, FLOOR_LIVE, src(s.tag));
          if (f.code !== 0) throw new Error(`snapshot floor: ${f.stderr}`);
          r.floor.push(f.intervals[0]);
        };
        for (const step of i % 2 === 0 ? [ours, floor] : [floor, ours]) {
          await settle(h);
          await step();
        }
      }
      const oursFreeze = async () => {
        const { frozenMs } = await take(RUNNING, "freeze");
        if (typeof frozenMs !== "number") throw new Error(`freeze: ${RUNNING} was not frozen`);
        res.freeze.ours.push(frozenMs);
      };
      const floorFreeze = async () => {
        const f = await timedOnHost(h, FLOOR_FREEZE, RUNNING);
        if (f.code !== 0) throw new Error(`freeze floor: ${f.stderr}`);
        res.freeze.floor.push(f.intervals[1]);
      };
      for (const step of i % 2 === 0 ? [oursFreeze, floorFreeze] : [floorFreeze, oursFreeze]) {
        await settle(h);
        await step();
      }
      ctx.log(
        `snapshot run ${i + 1}/${ctx.runs}: ` +
          res.sizes
            .map((r) => `${r.tag} ours ${r.ours[i].toFixed(1)} ms, floor ${r.floor[i].toFixed(1)} ms`)
            .join("; ") +
          `; rtt ${res.rtt[i].toFixed(2)} ms; frozen ours ${res.freeze.ours[i]} ms, floor ${res.freeze.floor[i].toFixed(1)} ms`,
      );
    }
  } finally {
    for (const n of [...SIZES.map((s) => src(s.tag)), RUNNING]) await destroy(h, n);
  }
  return res;
}
