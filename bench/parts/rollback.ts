/**
 * Part "rollback": restoreFrom on a stopped, converted container of ENTRIES entries (busybox + bulk/, see
 * tree-gen.ts), against its floor: a bare `btrfs subvolume snapshot` of the read-only snapshot and the two
 * renames that swap it in, timed on the host, plus one SSH round trip (`true`, median of 10 on the warm
 * connection), since a remote restore cannot take fewer. Per run, two identical containers (O(1) snapshots
 * of one converted template, each with a read-only snapshot snaps/s and then a few files changed): ours
 * restores one through a warm pooled connection (convergeWith: inspect, the restore batch, inspect), the
 * floor the other, in alternating order.
 */
import { convergeWith } from "../../provider/rootfs/provider";
import { openRemote } from "../../provider/transport/ssh";
import { type BenchContext, medianRoundTrip, quietly, rootfsInputs, warmRemote } from "../lib/context";
import { destroy, LXC, settle, sh, timedOnHost } from "../lib/host";
import { makeTemplate, templateName } from "./conversion";

export interface RollbackResult {
  entries: number;
  /** ms per run. */
  ours: number[];
  /** Snapshot + two renames on the host, ms per run. */
  floor: number[];
  /** One SSH round trip, ms per run (median of 10). */
  rtt: number[];
}

const NAMES = ["bench-rb-ours", "bench-rb-floor"];

/** Container NAME: an O(1) snapshot of the converted template, a read-only snapshot s of it, then changed. */
const PREPARE = `set -e; tpl=$1; shift; cd ${LXC}
for n in "$@"; do
  mkdir "$n"; btrfs subvolume snapshot "$tpl/rootfs" "$n/rootfs" >/dev/null
  sed -e "s|${LXC}/$tpl/|${LXC}/$n/|g" -e "s|^lxc.uts.name = .*|lxc.uts.name = $n|" "$tpl/config" >"$n/config"
  mkdir -p "$n/snaps/s"; btrfs subvolume snapshot -r "$n/rootfs" "$n/snaps/s/rootfs" >/dev/null
  cp "$n/config" "$n/snaps/s/config"; date >"$n/snaps/s/ts"
  echo changed >>"$n/rootfs/etc/passwd"; echo new >"$n/rootfs/new"; rm -f "$n/rootfs/bulk/d0000/f1"
done`;

/** The floor: the writable snapshot, then rootfs aside and the snapshot in its place. */
const FLOOR = `d=${LXC}/$1; btrfs subvolume snapshot "$d/snaps/s/rootfs" "$d/rootfs.new" >/dev/null && mv "$d/rootfs" "$d/rootfs.old" && mv "$d/rootfs.new" "$d/rootfs"; mark`;

export async function benchRollback(ctx: BenchContext, entries: number): Promise<RollbackResult> {
  const h = ctx.h1;
  const tag = `rb${entries}`;
  const tpl = templateName(tag);
  await makeTemplate(ctx, { tag, entries });
  await quietly(ctx, () =>
    convergeWith(openRemote(rootfsInputs(ctx, h, tpl).connection), rootfsInputs(ctx, h, tpl)),
  );
  const res: RollbackResult = { entries, ours: [], floor: [], rtt: [] };
  try {
    for (let i = 0; i < ctx.runs; i++) {
      for (const n of NAMES) await destroy(h, n);
      await sh(h, PREPARE, tpl, ...NAMES);
      await settle(h);
      const remote = await warmRemote(ctx, h);
      res.rtt.push(await medianRoundTrip(remote, 10));
      const ours = async () => {
        const inputs = { ...rootfsInputs(ctx, h, NAMES[0]), restoreFrom: "s" };
        const s = performance.now();
        const outs = await quietly(ctx, () => convergeWith(remote, inputs, "create", "s"));
        res.ours.push(performance.now() - s);
        if (outs.restoredFrom !== "s") throw new Error(`rollback run ${i + 1}: not restored`);
      };
      const floor = async () => {
        const r = await timedOnHost(h, FLOOR, NAMES[1]);
        if (r.code !== 0) throw new Error(`rollback floor: ${r.stderr}`);
        res.floor.push(r.intervals[0]);
      };
      if (i % 2 === 0) {
        await ours();
        await floor();
      } else {
        await floor();
        await ours();
      }
      ctx.log(
        `rollback run ${i + 1}/${ctx.runs}: ours ${res.ours[i].toFixed(0)} ms, floor ${res.floor[i].toFixed(0)} ms + rtt ${res.rtt[i].toFixed(1)} ms`,
      );
    }
  } finally {
    for (const n of [...NAMES, tpl]) await destroy(h, n);
  }
  return res;
}
