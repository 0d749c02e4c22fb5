/**
 * Part 2: snapshot clones. Ours (clone.create, then clone.del, through a warm pooled SSH connection)
 * against bare `lxc-copy -s -B btrfs` timed on the host (the floor) and a full copy, on sources holding
 * 10 MB, 500 MB and 2 GB of incompressible data written once. One SSH round trip (`true`) is measured
 * alongside, since our floor is lxc-copy plus the round trips it takes to drive it.
 */

import { cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { convergeWith } from "../../provider/rootfs/provider";
import { hostExec } from "../../test/support/fleet";
import {
  type BenchContext,
  medianRoundTrip,
  quietly,
  rootConnection,
  rootfsInputs,
  warmRemote,
} from "../lib/context";
import { createBusybox, destroy, LXC, settle, sh, spaceUsage, timedOnHost } from "../lib/host";

export interface CloneSize {
  tag: string;
  mb: number;
}

export const CLONE_SIZES: CloneSize[] = [
  { tag: "10m", mb: 10 },
  { tag: "500m", mb: 500 },
  { tag: "2g", mb: 2048 },
];

export interface CloneResult {
  sizes: {
    tag: string;
    mb: number;
    create: number[];
    del: number[];
    floor: number[];
    floorDestroy: number[];
    full: number[];
    oursDataGrowth: number[];
    fullDataGrowth: number[];
    /** The remote commands of each of our creates (from LXC_BTRFS_TRACE): clone.sh op and ms. */
    commands: { op: string; ms: number }[][];
  }[];
  /** One SSH round trip (`true` on the warm connection), ms, per iteration (median of 10). */
  rtt: number[];
  /** What the full copy used, and what it produced. */
  fullMethod: string;
  fullProbe: string;
  setupMs: number;
}

const src = (s: CloneSize) => `bench-src-${s.tag}`;

/**
 * A busybox container on h1 converted by us, then MB of data written into its subvolume once, in 100 MiB
 * files (one smaller file for the rest): random, so nothing compresses or dedupes. The clone, snapshot
 * and xhost parts' sources.
 */
export async function makeDataSource(ctx: BenchContext, name: string, mb: number): Promise<void> {
  const h = ctx.h1;
  await createBusybox(h, name);
  const remote = await warmRemote(ctx, h);
  await quietly(ctx, () => convergeWith(remote, rootfsInputs(ctx, h, name)));
  await sh(
    h,
    `set -e; d=${LXC}/$1/rootfs/data; mkdir -p "$d"; left=$2; i=0
while [ "$left" -gt 0 ]; do n=$((left > 100 ? 100 : left)); head -c "\${n}M" /dev/urandom >"$d/blob$i"; left=$((left - n)); i=$((i + 1)); done`,
    name,
    String(mb),
  );
}

async function makeSources(ctx: BenchContext): Promise<void> {
  for (const s of CLONE_SIZES) await makeDataSource(ctx, src(s), s.mb);
  await settle(ctx.h1);
}

/**
 * A full copy the way LXC's btrfs driver makes one when it does not snapshot: a new subvolume and rsync of
 * the rootfs into it (LXC runs `rsync -aHAXS --one-file-system`), plus the config with the new name.
 */
export const FULL_COPY_SCRIPT = `set -e; s=${LXC}/$1 d=${LXC}/$2
mkdir "$d"; btrfs subvolume create "$d/rootfs" >/dev/null
rsync -aHAXS --one-file-system "$s/rootfs/" "$d/rootfs/"
sed -e "s|$s/|$d/|g" -e "s|^lxc.uts.name = .*|lxc.uts.name = $2|" "$s/config" >"$d/config"
mark`;

/**
 * What plain `lxc-copy` (without -s) does with a btrfs source on the same filesystem, in words: LXC 5
 * defaults to a snapshot there (-B btrfs gives a subvolume with a parent UUID and no data growth) and
 * refuses -B dir ("Directories cannot be snapshotted"), so neither is a full copy and FULL_COPY_SCRIPT is used.
 */
async function probeLxcCopy(ctx: BenchContext): Promise<string> {
  const h = ctx.h1;
  const s = CLONE_SIZES[0];
  const probe = "bench-cl-probe";
  const before = await spaceUsage(h);
  await sh(h, `lxc-copy -n "$1" -N "$2" -B btrfs`, src(s), probe);
  const after = await spaceUsage(h);
  const parent = (
    await sh(
      h,
      `btrfs subvolume show "${LXC}/$1/rootfs" 2>/dev/null | sed -n 's/^[[:space:]]*Parent UUID:[[:space:]]*//p'`,
      probe,
    )
  ).trim();
  await destroy(h, probe);
  const dir = await hostExec(h, ["lxc-copy", "-l", "ERROR", "-n", src(s), "-N", probe, "-B", "dir"]);
  await destroy(h, probe);
  const dirMsg = `${dir.stdout}${dir.stderr}`.split("\n").find((l) => /snapshot|fail|error/i.test(l)) ?? "";
  return (
    `On a ${s.mb} MB btrfs source, plain \`lxc-copy -B btrfs\` (no -s) made a subvolume with parent UUID ${parent || "none"} ` +
    `and data +${((after.data - before.data) / 2 ** 20).toFixed(1)} MiB${parent && parent !== "-" ? " (a snapshot: LXC defaults to one on btrfs)" : ""}; ` +
    `\`lxc-copy -B dir\` exited ${dir.code}${dirMsg ? ` ("${dirMsg.replace(/^.*?- /, "").trim()}")` : ""}`
  );
}

/**
 * Runs fn with the provider's command trace on (LXC_BTRFS_TRACE: one stderr line per remote command with
 * its duration) and returns the commands it ran, by clone.sh operation.
 */
async function traced<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; commands: { op: string; ms: number }[] }> {
  const commands: { op: string; ms: number }[] = [];
  const orig = console.error;
  const before = process.env.LXC_BTRFS_TRACE;
  process.env.LXC_BTRFS_TRACE = "1";
  console.error = (...a: unknown[]) => {
    const m = /^\[lxc-btrfs trace\] \S+ (\d+)ms (?:plb-(\S+) (\S+))?/.exec(String(a[0]));
    if (m) commands.push({ op: m[2] === "clone" ? m[3] : (m[2] ?? "other"), ms: Number(m[1]) });
    else orig(...a);
  };
  try {
    return { value: await fn(), commands };
  } finally {
    console.error = orig;
    if (before === undefined) delete process.env.LXC_BTRFS_TRACE;
    else process.env.LXC_BTRFS_TRACE = before;
  }
}

export async function benchClone(ctx: BenchContext): Promise<CloneResult> {
  const h = ctx.h1;
  const t0 = Date.now();
  await makeSources(ctx);
  const probe = await probeLxcCopy(ctx);
  const res: CloneResult = {
    sizes: CLONE_SIZES.map((s) => ({
      tag: s.tag,
      mb: s.mb,
      create: [],
      del: [],
      floor: [],
      floorDestroy: [],
      full: [],
      oursDataGrowth: [],
      fullDataGrowth: [],
      commands: [],
    })),
    rtt: [],
    fullMethod:
      "btrfs subvolume create X/rootfs; rsync -aHAXS --one-file-system SRC/rootfs/ X/rootfs/; config copied with the new name",
    fullProbe: probe,
    setupMs: Date.now() - t0,
  };
  ctx.log(`clone: sources ready in ${res.setupMs} ms; ${probe}`);
  for (let i = 0; i < ctx.runs; i++) {
    const remote = await warmRemote(ctx, h);
    res.rtt.push(await medianRoundTrip(remote, 10));
    for (const [j, s] of CLONE_SIZES.entries()) {
      const r = res.sizes[j];
      const name = `bench-cl-${s.tag}`;
      // ours
      const inputs = cloneArgsSchema.parse({ connection: rootConnection(ctx, h), source: src(s), name });
      const before = await spaceUsage(h);
      await (await warmRemote(ctx, h)).check(["true"]);
      let t = performance.now();
      const { value, commands } = await traced(() => quietly(ctx, () => clone.create(inputs)));
      const { id, outs } = value;
      r.create.push(performance.now() - t);
      r.commands.push(commands);
      if (!outs.parentUuid) throw new Error(`ours: ${name} is not a snapshot: ${JSON.stringify(outs)}`);
      r.oursDataGrowth.push((await spaceUsage(h)).data - before.data);
      await (await warmRemote(ctx, h)).check(["true"]);
      t = performance.now();
      await quietly(ctx, () => clone.del(id, outs));
      r.del.push(performance.now() - t);
      await settle(h);
      // floor: bare lxc-copy -s, timed on the host
      const f = await timedOnHost(
        h,
        `set -e; lxc-copy -n "$1" -N "$2" -s -B btrfs; mark; lxc-destroy -n "$2" >/dev/null; mark`,
        src(s),
        name,
      );
      if (f.code !== 0 || f.intervals.length !== 2)
        throw new Error(
          `lxc-copy -s + lxc-destroy: exit ${f.code}, ${f.intervals.length} marks: ${f.stderr}`,
        );
      r.floor.push(f.intervals[0]);
      r.floorDestroy.push(f.intervals[1]);
      await settle(h);
      // full copy
      const fb = await spaceUsage(h);
      const c = await timedOnHost(h, FULL_COPY_SCRIPT, src(s), name);
      if (c.code !== 0 || c.intervals.length !== 1)
        throw new Error(`full copy: exit ${c.code}, ${c.intervals.length} marks: ${c.stderr}`);
      r.full.push(c.intervals[0]);
      r.fullDataGrowth.push((await spaceUsage(h)).data - fb.data);
      await destroy(h, name);
      await settle(h);
    }
    ctx.log(
      `clone run ${i + 1}/${ctx.runs}: rtt ${res.rtt[i].toFixed(1)} ms; ${res.sizes
        .map(
          (r) =>
            `${r.tag}: ours ${r.create[i].toFixed(0)} / floor ${r.floor[i].toFixed(0)} / full ${r.full[i].toFixed(0)} ms`,
        )
        .join("; ")}`,
    );
  }
  for (const s of CLONE_SIZES) await destroy(h, src(s));
  await settle(h);
  return res;
}
