/**
 * Part "xhost": a cross-host clone (LxcSnapshotClone with sourceConnection: btrfs send on h1, relayed
 * through this process into btrfs receive on h2) of a container holding 1 GB of incompressible data,
 * against what a btrbk user runs on the source host: `btrfs subvolume snapshot -r` then
 * `btrfs send | ssh h2 btrfs receive` with OpenSSH (the floor), and against `rsync -aHAX --numeric-ids`
 * over OpenSSH into a new subvolume on h2. Ours is clone.create through warm pooled connections; both
 * baselines are timed on h1 itself. Fan-out: copies to h2, h4 and h5 at once (three resources, one send
 * each: the fleet's other btrfs hosts), against the one copy. Ours, fan-out, the floor and rsync take turns going
 * first. Then one clone of a
 * 2 GB source with this process's RSS sampled every 50 ms: the relay's memory.
 */
import { cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import type { FleetHost } from "../../test/support/fleet";
import { type BenchContext, quietly, rootConnection, warmRemote } from "../lib/context";
import { destroy, LXC, settle, timedOnHost } from "../lib/host";
import { makeDataSource } from "./clone";

export interface XhostResult {
  mb: number;
  /** ms per run */
  ours: number[];
  floor: number[];
  rsync: number[];
  /** Copies to every other btrfs host (h2, h4, h5) at once, ms per run. */
  fanout: number[];
  fanoutHosts: string[];
  /** Bytes the relay carried, per run of ours (from its outputs or log). */
  bigMb: number;
  /** Peak RSS of this process while relaying the big source, and before it started, bytes. */
  peakRss: number;
  idleRss: number;
  bigMs: number;
  /**
   * Refresh after a change of 1% (10 MiB of one blob rewritten in place, and 4 of the busybox tree's ~400
   * files): ours (update with a new revision: btrfs send -p through the relay), and the floor on h1
   * (snapshot -r; btrfs send -p <last> | ssh h2 btrfs receive), ms per run; and the bytes ours relayed.
   */
  refresh: number[];
  refreshFloor: number[];
  refreshBytes: number[];
  /**
   * The fan-out choice at the floor, from h1 with OpenSSH: one btrfs send teed to receives on h2 and h4,
   * against two sends (one per target) at once, ms per run.
   */
  teeOne: number[];
  teeTwo: number[];
}

const SRC = "bench-xh-src";
const BIG = "bench-xh-big";
const NAME = "bench-xh-copy";
const FLOOR_NAME = "bench-xh-floor";

/** ssh from the source host to the target as root, with the fleet's key and known_hosts. */
function sshTo(ctx: BenchContext, to: FleetHost): string {
  return `ssh -i ${ctx.inv.users.root.privateKeyPath} -o UserKnownHostsFile=${ctx.inv.knownHostsPath} -o BatchMode=yes root@${to.address}`;
}

/** The floor on h1: a read-only snapshot, then btrfs send | ssh h2 btrfs receive; cleaned after the mark. */
const floorScript = (ssh: string) => `set -e; d=${LXC}/$1
btrfs subvolume snapshot -r "$d/rootfs" "$d/xh-floor-snap" >/dev/null
btrfs send -q "$d/xh-floor-snap" | ${ssh} "mkdir -p ${LXC}/$2 && btrfs receive -q ${LXC}/$2"
mark
btrfs subvolume delete "$d/xh-floor-snap" >/dev/null
${ssh} "btrfs property set -ts ${LXC}/$2/xh-floor-snap ro false; btrfs subvolume delete ${LXC}/$2/xh-floor-snap >/dev/null; rmdir ${LXC}/$2"`;

/** rsync -aHAX --numeric-ids over OpenSSH into a new subvolume on h2; cleaned after the mark. */
const rsyncScript = (ssh: string) => `set -e; d=${LXC}/$1
${ssh} "mkdir -p ${LXC}/$2 && btrfs subvolume create ${LXC}/$2/rootfs >/dev/null"
rsync -aHAX --numeric-ids -e "${ssh.replace(/ root@\S+$/, "")}" "$d/rootfs/" "root@$3:${LXC}/$2/rootfs/"
mark
${ssh} "btrfs subvolume delete ${LXC}/$2/rootfs >/dev/null; rmdir ${LXC}/$2"`;

/** 1% of the source changed: 10 MiB of blob0 rewritten in place (at offset 10*K MiB), 4 small files. */
const CHANGE = `set -e; d=${LXC}/$1/rootfs
dd if=/dev/urandom of="$d/data/blob0" bs=1M count=10 seek=$(( ($2 * 10) % 90 )) conv=notrunc status=none
for f in etc/motd etc/bench-a etc/bench-b root/bench-c; do mkdir -p "$d/\${f%/*}"; echo "run $2" >"$d/$f"; done`;

/** The floor's refresh on h1: snapshot K+1, send it against K to h2 (which has K), then drop K on both. */
const floorRefreshScript = (ssh: string) => `set -e; d=${LXC}/$1
btrfs subvolume snapshot -r "$d/rootfs" "$d/xh-p$3" >/dev/null
btrfs send -q -p "$d/xh-p$2" "$d/xh-p$3" | ${ssh} "btrfs receive -q ${LXC}/$4"
mark
btrfs subvolume delete "$d/xh-p$2" >/dev/null
${ssh} "btrfs property set -ts ${LXC}/$4/xh-p$2 ro false; btrfs subvolume delete ${LXC}/$4/xh-p$2 >/dev/null"`;

/**
 * One send read once and teed to two receivers (through a FIFO: each ssh reads its own copy, and tee waits
 * for the slower), against one send per receiver, both at once; each receive lands in its own directory,
 * removed after the mark.
 */
const teeScript = (
  a: string,
  b: string,
  two: boolean,
) => `set -e; d=${LXC}/$1 f=$(mktemp -u /tmp/plb-tee.XXXXXX)
btrfs subvolume snapshot -r "$d/rootfs" "$d/xh-tee" >/dev/null
${a} "mkdir -p ${LXC}/$2"; ${b} "mkdir -p ${LXC}/$2"
${
  two
    ? `btrfs send -q "$d/xh-tee" | ${a} "btrfs receive -q ${LXC}/$2" & p=$!
btrfs send -q "$d/xh-tee" | ${b} "btrfs receive -q ${LXC}/$2"
wait "$p"`
    : `mkfifo "$f"
${b} "btrfs receive -q ${LXC}/$2" <"$f" & p=$!
btrfs send -q "$d/xh-tee" | tee "$f" | ${a} "btrfs receive -q ${LXC}/$2"
wait "$p"; rm -f "$f"`
}
mark
btrfs subvolume delete "$d/xh-tee" >/dev/null
for s in "${a}" "${b}"; do $s "btrfs property set -ts ${LXC}/$2/xh-tee ro false; btrfs subvolume delete ${LXC}/$2/xh-tee >/dev/null; rmdir ${LXC}/$2"; done`;

async function benchTee(ctx: BenchContext, res: XhostResult, to: FleetHost[], runs: number): Promise<void> {
  const [a, b] = to.map((h) => sshTo(ctx, h));
  for (let i = 0; i < runs; i++) {
    for (const two of i % 2 === 0 ? [false, true] : [true, false]) {
      for (const h of [ctx.h1, ...to]) await settle(h);
      const f = await timedOnHost(ctx.h1, teeScript(a, b, two), SRC, `${FLOOR_NAME}-tee`);
      if (f.code !== 0) throw new Error(`xhost tee: ${f.stderr}`);
      (two ? res.teeTwo : res.teeOne).push(f.intervals[0]);
    }
    ctx.log(
      `xhost fan-out floor run ${i + 1}/${runs}: one send teed to ${to.map((h) => h.name).join("+")} ${res.teeOne[i].toFixed(0)} ms, one send each ${res.teeTwo[i].toFixed(0)} ms`,
    );
  }
}

/**
 * Refresh: the copy (ours) and the floor's received snapshot are made once, untimed; then per run the
 * source changes by 1% and ours (clone.update with a new revision) and the floor send that change, taking
 * turns going first.
 */
async function benchRefresh(
  ctx: BenchContext,
  res: XhostResult,
  inputs: ReturnType<typeof cloneArgsSchema.parse>,
  ssh: string,
  runs: number,
): Promise<void> {
  const [h1, h2] = [ctx.h1, ctx.h2];
  let { outs } = await quietly(ctx, () => clone.create({ ...inputs, revision: "0" }));
  const first = await timedOnHost(
    h1,
    `set -e; d=${LXC}/$1; btrfs subvolume snapshot -r "$d/rootfs" "$d/xh-p0" >/dev/null
btrfs send -q "$d/xh-p0" | ${ssh} "mkdir -p ${LXC}/$2 && btrfs receive -q ${LXC}/$2"`,
    SRC,
    FLOOR_NAME,
  );
  if (first.code !== 0) throw new Error(`xhost refresh floor: ${first.stderr}`);
  try {
    for (let i = 0; i < runs; i++) {
      const change = await timedOnHost(h1, CHANGE, SRC, String(i + 1));
      if (change.code !== 0) throw new Error(`xhost refresh change: ${change.stderr}`);
      const ours = async () => {
        const t = performance.now();
        ({ outs } = await quietly(ctx, () => clone.update("", outs, { ...inputs, revision: String(i + 1) })));
        res.refresh.push(performance.now() - t);
        res.refreshBytes.push(outs.transferredBytes ?? 0);
        if (!outs.sentParentUuid) throw new Error("xhost refresh: ours sent in full");
      };
      const floor = async () => {
        const f = await timedOnHost(h1, floorRefreshScript(ssh), SRC, String(i), String(i + 1), FLOOR_NAME);
        if (f.code !== 0) throw new Error(`xhost refresh floor: ${f.stderr}`);
        res.refreshFloor.push(f.intervals[0]);
      };
      for (const step of i % 2 === 0 ? [ours, floor] : [floor, ours]) {
        for (const h of [h1, h2]) await settle(h);
        await step();
      }
      ctx.log(
        `xhost refresh run ${i + 1}/${runs}: ours ${res.refresh[i].toFixed(0)} ms (${(res.refreshBytes[i] / 2 ** 20).toFixed(1)} MiB relayed), send -p|ssh receive ${res.refreshFloor[i].toFixed(0)} ms`,
      );
    }
  } finally {
    await quietly(ctx, () => clone.del("", outs)).catch(() => undefined);
    await timedOnHost(
      h1,
      `d=${LXC}/$1; for s in "$d"/xh-p*; do [ -d "$s" ] && btrfs subvolume delete "$s" >/dev/null; done
${ssh} "for s in ${LXC}/$2/xh-p*; do btrfs property set -ts "$s" ro false; btrfs subvolume delete "$s" >/dev/null; done; rmdir ${LXC}/$2"; true`,
      SRC,
      FLOOR_NAME,
    );
  }
}

export async function benchXhost(ctx: BenchContext, runs = ctx.runs): Promise<XhostResult> {
  const [h1, h2] = [ctx.h1, ctx.h2];
  const ssh = sshTo(ctx, h2);
  const res: XhostResult = {
    mb: 1024,
    ours: [],
    floor: [],
    rsync: [],
    fanout: [],
    fanoutHosts: [],
    bigMb: 2048,
    peakRss: 0,
    idleRss: 0,
    bigMs: 0,
    refresh: [],
    refreshFloor: [],
    refreshBytes: [],
    teeOne: [],
    teeTwo: [],
  };
  const targets = ctx.copyHosts.filter((h) => h.name !== h1.name);
  res.fanoutHosts = targets.map((h) => h.name);
  const inputs = (source: string, to: FleetHost = h2) =>
    cloneArgsSchema.parse({
      connection: rootConnection(ctx, to),
      sourceConnection: rootConnection(ctx, h1),
      source,
      name: NAME,
    });
  try {
    await makeDataSource(ctx, SRC, res.mb);
    for (const h of targets) await destroy(h, NAME);
    await settle(h1);
    for (let i = 0; i < runs; i++) {
      await warmRemote(ctx, h1);
      await warmRemote(ctx, h2);
      const ours = async () => {
        const t = performance.now();
        const { id, outs } = await quietly(ctx, () => clone.create(inputs(SRC)));
        res.ours.push(performance.now() - t);
        await quietly(ctx, () => clone.del(id, outs));
      };
      const floor = async () => {
        const f = await timedOnHost(h1, floorScript(ssh), SRC, FLOOR_NAME);
        if (f.code !== 0) throw new Error(`xhost floor: ${f.stderr}`);
        res.floor.push(f.intervals[0]);
      };
      const rsync = async () => {
        const f = await timedOnHost(h1, rsyncScript(ssh), SRC, FLOOR_NAME, h2.address);
        if (f.code !== 0) throw new Error(`xhost rsync: ${f.stderr}`);
        res.rsync.push(f.intervals[0]);
      };
      const fanout = async () => {
        const t = performance.now();
        const made = await quietly(ctx, () =>
          Promise.all(targets.map((to) => clone.create(inputs(SRC, to)))),
        );
        res.fanout.push(performance.now() - t);
        for (const { id, outs } of made) await quietly(ctx, () => clone.del(id, outs));
      };
      const order = [ours, fanout, floor, rsync];
      for (let k = 0; k < order.length; k++) {
        for (const h of [h1, ...targets]) await settle(h);
        await order[(k + i) % order.length]();
      }
      ctx.log(
        `xhost run ${i + 1}/${runs}: ours ${res.ours[i].toFixed(0)} ms, fan-out to ${res.fanoutHosts.join("+")} ${res.fanout[i].toFixed(0)} ms, send|ssh receive ${res.floor[i].toFixed(0)} ms, rsync ${res.rsync[i].toFixed(0)} ms`,
      );
    }
    await benchRefresh(ctx, res, inputs(SRC), ssh, runs);
    if (targets.length >= 2) await benchTee(ctx, res, targets.slice(0, 2), runs);
    // Memory while relaying 2 GB.
    await destroy(h1, SRC);
    await makeDataSource(ctx, BIG, res.bigMb);
    await settle(h1);
    res.idleRss = process.memoryUsage().rss;
    let peak = res.idleRss;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    try {
      const t = performance.now();
      const { id, outs } = await quietly(ctx, () => clone.create(inputs(BIG)));
      res.bigMs = performance.now() - t;
      await quietly(ctx, () => clone.del(id, outs));
    } finally {
      clearInterval(timer);
    }
    res.peakRss = peak;
    ctx.log(
      `xhost 2 GB: ${res.bigMs.toFixed(0)} ms, RSS ${(res.idleRss / 2 ** 20).toFixed(0)} MiB before, peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
    );
  } finally {
    for (const n of [SRC, BIG]) await destroy(h1, n);
    for (const h of targets) for (const n of [NAME, FLOOR_NAME]) await destroy(h, n);
  }
  return res;
}
