/**
 * Part 1: converting a rootfs directory into a subvolume. Ours (the provider through a warm pooled SSH
 * connection) against three baselines run on the host itself, interleaved on fresh reflink copies of one
 * template tree per size: the floor (new subvolume + cp -a --reflink + rm -rf), the usual hand-written
 * script ("the post's script": move rootfs aside, create a subvolume, `mv` the contents back; POST_SCRIPT
 * below), and rsync -aHAX into a new subvolume. Space growth of each from `btrfs filesystem df -b`.
 */
import * as path from "node:path";
import { run } from "../../test/support/fleet";
import type { ChildReport } from "../convert-child";
import type { BenchContext } from "../lib/context";
import {
  cloneTemplate,
  cloneTemplateMany,
  createBusybox,
  destroy,
  LXC,
  settle,
  sh,
  spaceUsage,
  timedOnHost,
  treeSize,
} from "../lib/host";
import type { CommandTiming } from "../lib/remote-timing";

export const VARIANTS = ["ours", "floor", "post", "rsync"] as const;
export type Variant = (typeof VARIANTS)[number];

export interface SizeSpec {
  /** `1k`, `10k`, ... or `debian` (a copy of the fleet's real Debian container). */
  tag: string;
  /** Entries below rootfs wanted (synthetic trees only). */
  entries?: number;
}

export interface ConversionResult {
  tag: string;
  entries: number;
  bytes: number;
  /** ms per run, per variant; `floorSync` is the floor plus its final `sync -f`. */
  ms: Record<Variant | "floorSync" | "postSync" | "rsyncSync", number[]>;
  dataGrowth: Record<Variant, number[]>;
  metaGrowth: Record<Variant, number[]>;
  /** The commands of each of our runs, with per-step times. */
  ours: CommandTiming[][];
  /** Peak RSS of the provider process per run, and of an idle one (connected, nothing else; 50k entries and up), KiB. */
  maxRssKb: number[];
  idleMaxRssKb: number[];
  /** One SSH round trip measured by our provider process just before each conversion, ms. */
  rttMs: number[];
  /** Exit codes of the post's script (its `rmdir` fails when rootfs held dotfiles). */
  postCodes: number[];
  /** Wall time of one whole iteration (prep, 4 runs, cleanup), ms. */
  iterationMs: number[];
  templateMs: number;
}

/** The hand-written script's loop body (sudo dropped), for one container: `mv rootfs.saved/*` skips dotfiles. */
export const POST_SCRIPT = `rootfs=${LXC}/$1/rootfs
mv "\${rootfs}" "\${rootfs}.saved" && btrfs subvolume create "\${rootfs}" >/dev/null && mv "\${rootfs}.saved"/* "\${rootfs}" && rmdir "\${rootfs}.saved"
rc=$?
mark; sync -f ${LXC}; mark
exit $rc`;

export const FLOOR_SCRIPT = `set -e; cd ${LXC}/$1
btrfs subvolume create rootfs.new >/dev/null
cp -a --reflink=always rootfs/. rootfs.new/
mv rootfs rootfs.old; mv rootfs.new rootfs
rm -rf rootfs.old
mark; sync -f .; mark`;

export const RSYNC_SCRIPT = `set -e; cd ${LXC}/$1
btrfs subvolume create rootfs.new >/dev/null
rsync -aHAX rootfs/ rootfs.new/
mv rootfs rootfs.old; mv rootfs.new rootfs
rm -rf rootfs.old
mark; sync -f .; mark`;

export function templateName(tag: string): string {
  return `bench-tpl-${tag}`;
}

/** Builds the template container for a size on h1: busybox + bulk/, or a copy of the Debian container. */
export async function makeTemplate(ctx: BenchContext, spec: SizeSpec): Promise<void> {
  const tpl = templateName(spec.tag);
  const h = ctx.h1;
  await destroy(h, tpl);
  if (spec.tag === "debian") {
    const deb = h.containers.find((c) => c.kind === "debian")?.name;
    if (!deb) throw new Error("the fleet has no Debian container on h1");
    await cloneTemplate(h, deb, tpl);
  } else {
    let t = Date.now();
    await createBusybox(h, tpl);
    ctx.log(`template ${tpl}: lxc-create ${Date.now() - t} ms`);
    t = Date.now();
    const base = (await treeSize(h, tpl)).entries;
    const want = (spec.entries ?? 1000) - base - 1; // -1: bulk/ itself
    await sh(h, `mkdir "${LXC}/$1/rootfs/bulk"`, tpl);
    await hostNode(ctx, path.join(ctx.buildDir, "tree-gen.js"), `${LXC}/${tpl}/rootfs/bulk`, String(want));
    // xattrs and an ACL on a few files, so the copies must carry them
    await sh(
      h,
      'cd "/var/lib/lxc/$1/rootfs/bulk/d0000" && setfattr -n user.bench -v 1 f1 && setfattr -n user.bench -v 2 f2 && setfacl -m u:nobody:r f4 2>/dev/null || true',
      tpl,
    );
    ctx.log(`template ${tpl}: bulk ${Date.now() - t} ms`);
  }
  const t = Date.now();
  await settle(h);
  ctx.log(`template ${tpl}: settle ${Date.now() - t} ms`);
}

async function hostNode(ctx: BenchContext, script: string, ...args: string[]): Promise<string> {
  return sh(ctx.h1, `exec "${process.execPath}" "$@"`, script, ...args);
}

/** Runs our conversion in a fresh provider process (see convert-child.ts) and returns its report. */
async function provider(ctx: BenchContext, container: string, idle: boolean): Promise<ChildReport> {
  const r = await run(
    process.execPath,
    [path.join(ctx.buildDir, "convert-child.js"), ctx.h1.name, container, ...(idle ? ["--idle"] : [])],
    { check: true, timeoutMs: 1_200_000 },
  );
  return JSON.parse(r.stdout.trim().split("\n").pop() as string) as ChildReport;
}

/** One size: template, then `runs` iterations of ours, floor, post, rsync, each on a fresh copy. */
export async function benchConversion(ctx: BenchContext, spec: SizeSpec): Promise<ConversionResult> {
  const h = ctx.h1;
  const tpl = templateName(spec.tag);
  const t0 = Date.now();
  await makeTemplate(ctx, spec);
  const templateMs = Date.now() - t0;
  const size = await treeSize(h, tpl);
  ctx.log(
    `conversion ${spec.tag}: template ${size.entries} entries, ${size.bytes} bytes in ${templateMs} ms`,
  );
  const res: ConversionResult = {
    tag: spec.tag,
    entries: size.entries,
    bytes: size.bytes,
    ms: { ours: [], floor: [], post: [], rsync: [], floorSync: [], postSync: [], rsyncSync: [] },
    dataGrowth: { ours: [], floor: [], post: [], rsync: [] },
    metaGrowth: { ours: [], floor: [], post: [], rsync: [] },
    ours: [],
    maxRssKb: [],
    idleMaxRssKb: [],
    rttMs: [],
    postCodes: [],
    iterationMs: [],
    templateMs,
  };
  const name = (v: Variant) => `bench-cv-${v}`;
  for (let i = 0; i < ctx.runs; i++) {
    const it0 = Date.now();
    const spent: string[] = [];
    let lap = Date.now();
    const note = (what: string) => {
      spent.push(`${what} ${Date.now() - lap}`);
      lap = Date.now();
    };
    await cloneTemplateMany(
      h,
      tpl,
      VARIANTS.map((v) => name(v)),
    );
    note("prep");
    for (const v of VARIANTS) {
      const before = await spaceUsage(h);
      note("usage");
      if (v === "ours") {
        // The idle baseline for memory only where memory could matter, to save time on small trees.
        const idle = res.entries >= 50_000 ? await provider(ctx, name(v), true) : undefined;
        const r = await provider(ctx, name(v), false);
        if (!r.outs?.rootfsIsSubvolume || r.outs.configBackingStore !== "btrfs" || r.outs.adopted)
          throw new Error(`ours did not convert ${name(v)}: ${JSON.stringify(r.outs)}`);
        res.ms.ours.push(r.ms);
        res.ours.push(r.commands);
        res.maxRssKb.push(r.maxRssKb);
        if (idle) res.idleMaxRssKb.push(idle.maxRssKb);
        res.rttMs.push(r.rttMs);
      } else {
        const script = v === "floor" ? FLOOR_SCRIPT : v === "post" ? POST_SCRIPT : RSYNC_SCRIPT;
        const r = await timedOnHost(h, script, name(v));
        if (v === "post") res.postCodes.push(r.code ?? -1);
        else if (r.code !== 0) throw new Error(`${v} failed on ${name(v)}: ${r.stderr}`);
        if (r.intervals.length !== 2) throw new Error(`${v}: no timing marks (exit ${r.code}): ${r.stderr}`);
        res.ms[v].push(r.intervals[0]);
        res.ms[`${v}Sync`].push(r.intervals[0] + r.intervals[1]);
      }
      note(v);
      const after = await spaceUsage(h);
      note("usage");
      res.dataGrowth[v].push(after.data - before.data);
      res.metaGrowth[v].push(after.metadata - before.metadata);
    }
    for (const v of VARIANTS) await destroy(h, name(v));
    await settle(h);
    note("cleanup");
    res.iterationMs.push(Date.now() - it0);
    ctx.log(`conversion ${spec.tag} run ${i + 1}: ms spent: ${spent.join(", ")}`);
    ctx.log(
      `conversion ${spec.tag} run ${i + 1}/${ctx.runs}: ${VARIANTS.map((v) => `${v} ${res.ms[v][i].toFixed(0)} ms`).join(", ")}`,
    );
  }
  await destroy(h, tpl);
  await settle(h);
  return res;
}

/**
 * The post's `mv rootfs.saved/*` on a tree with a top-level dotfile: shows that the dotfile is left behind
 * and `rmdir` fails. Returns what happened, in words.
 */
export async function demonstrateDotfileLoss(ctx: BenchContext): Promise<string> {
  const h = ctx.h1;
  const n = "bench-cv-dotfile";
  await createBusybox(h, n);
  try {
    await sh(h, 'echo secret >"/var/lib/lxc/$1/rootfs/.dotfile"', n);
    const r = await timedOnHost(h, POST_SCRIPT, n);
    const out = await sh(
      h,
      'cd "/var/lib/lxc/$1"; [ -e rootfs/.dotfile ] && echo "in rootfs: yes" || echo "in rootfs: no"; [ -e rootfs.saved/.dotfile ] && echo "left in rootfs.saved: yes" || echo "left in rootfs.saved: no"',
      n,
    );
    return `exit ${r.code} (${r.stderr.trim().split("\n").pop()}); ${out.trim().replace(/\n/g, "; ")}`;
  } finally {
    await destroy(h, n);
  }
}

/** Whether the post's guard (`btrfs subvolume list ROOTFS`) would skip a plain directory today. */
export async function postGuardSkipsPlainDirs(ctx: BenchContext): Promise<boolean> {
  const n = "bench-cv-guard";
  await createBusybox(ctx.h1, n);
  try {
    const out = await sh(
      ctx.h1,
      'btrfs subvolume list "/var/lib/lxc/$1/rootfs" >/dev/null 2>&1 && echo 0 || echo 1',
      n,
    );
    return out.trim() === "0";
  } finally {
    await destroy(ctx.h1, n);
  }
}
