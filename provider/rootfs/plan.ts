/**
 * What to do to a container's rootfs, decided from one inspection, pure. The provider executes the steps
 * in order, re-inspects, and plans again until the plan is "done"; a crash at any point leaves a journal
 * on the host from which the next plan resumes (after the swap) or rolls back (before it).
 *
 *   convert: journal(copying) -> [stop] -> subvolume rootfs.plb-new -> reflink copy -> verify
 *            -> journal(swapping) -> swap (rootfs -> rootfs.pre-btrfs, rootfs.plb-new -> rootfs)
 *            -> journal(swapped) -> config btrfs: -> nested subvolumes moved -> [start] -> old tree removed
 *   live (ifRunning "live", a running container):
 *            journal(precopying) -> subvolume rootfs.plb-new -> pre-copy while it runs (its start time kept)
 *            -> journal(catching-up) -> stop -> catch-up (only what changed since the pre-copy started)
 *            -> verify -> the same swap and finish as convert, the start before the removal
 *   revert:  the same with a plain directory rootfs.plb-dir and the old subvolume as rootfs.plb-old.
 *   restore (restoreFrom, a converted rootfs): snapshot-check -> journal(copying) -> [stop]
 *            -> writable snapshot snaps/<name>/rootfs -> rootfs.plb-restore -> verify (its Parent UUID is the
 *            snapshot's) -> journal(swapping) -> swap (rootfs -> rootfs.pre-restore, rootfs.plb-restore
 *            -> rootfs) -> journal(swapped) -> [start] -> rootfs.pre-restore removed unless keepBackup.
 *            Interrupted before the swap started, it is rolled back (and done again); after, finished.
 * The original tree is never changed before its copy is verified and swapped in.
 */
import { createHash } from "node:crypto";
import { checkRootfsConfig, rewriteRootfsLine } from "../host/lxc-config";
import type { Journal, RootfsInspection } from "./inspection";

export interface RootfsPolicy {
  container: string;
  lxcPath: string;
  ifRunning: "fail" | "restart" | "live";
  nestedSubvolumes: "fail" | "keep";
  keepBackup: boolean;
}

export type Step =
  | { op: "journal"; phase: Journal["phase"]; kind: Journal["op"]; wasRunning: boolean }
  | { op: "journal-clear" }
  | { op: "stop" }
  | { op: "start" }
  | { op: "discard"; path: string }
  /** Refuses (so what follows does not run) unless the swap has not started: `cur` in place, `old` absent. */
  | { op: "unswapped"; cur: string; old: string }
  | { op: "subvol-create"; path: string }
  | { op: "mkdir-new"; path: string }
  | { op: "copy"; from: string; to: string; total: number }
  /** The copy of a running container's tree, recording (before it starts) when it started. */
  | { op: "precopy"; from: string; to: string; total: number }
  /** With the container stopped: brings `to` up to date with what changed in `from` since the pre-copy. */
  | { op: "catchup"; from: string; to: string }
  | { op: "verify"; a: string; b: string }
  | { op: "swap"; cur: string; next: string; old: string }
  | { op: "write-config"; expectedSha: string; content: string; backupName: string }
  | { op: "move-nested"; from: string; to: string }
  | { op: "remove"; path: string }
  /**
   * Refuses unless `snapshot` (snaps/<name>) and its parent are real directories and its rootfs a
   * read-only subvolume, and (unless `keep`) `cur` holds no nested subvolume. Changes nothing.
   */
  | { op: "snapshot-check"; snapshot: string; cur: string; keep: boolean }
  /** The journal of a restore: `journal` with the snapshot's name. */
  | { op: "journal-restore"; phase: Journal["phase"]; snapshot: string; wasRunning: boolean }
  /** A writable snapshot of `snapshot`/rootfs at `path` (the snapshot checked again first). */
  | { op: "restore-snapshot"; snapshot: string; path: string }
  /** Refuses unless `path` is writable and a snapshot of exactly `snapshot`/rootfs, still read-only. */
  | { op: "restore-verify"; snapshot: string; path: string };

export type RootfsPlan =
  | { kind: "refuse"; reason: string }
  | { kind: "done"; adopted: boolean }
  /** `restores`: the snapshot whose restore this plan completes (the provider then records it). */
  | { kind: "apply"; action: string; steps: Step[]; restores?: string };

export interface RootfsPaths {
  dir: string;
  rootfs: string;
  next: string;
  backup: string;
  revertDir: string;
  revertOld: string;
  restoreNew: string;
  restoreOld: string;
}

export function rootfsPaths(lxcPath: string, container: string): RootfsPaths {
  const dir = `${lxcPath}/${container}`;
  return {
    dir,
    rootfs: `${dir}/rootfs`,
    next: `${dir}/rootfs.plb-new`,
    backup: `${dir}/rootfs.pre-btrfs`,
    revertDir: `${dir}/rootfs.plb-dir`,
    revertOld: `${dir}/rootfs.plb-old`,
    restoreNew: `${dir}/rootfs.plb-restore`,
    restoreOld: `${dir}/rootfs.pre-restore`,
  };
}

/** Metadata a reflink copy needs: a generous per-entry allowance plus headroom. */
export function requiredFreeBytes(files: number): number {
  return 64 * 1024 * 1024 + files * 2048;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** Common refusals: the host or container cannot be worked on at all. */
function refuseUnusable(insp: RootfsInspection, p: RootfsPolicy, paths: RootfsPaths): string | undefined {
  if (insp.containerDir === "missing") {
    return `container ${p.container} does not exist: ${paths.dir} is missing; check the name and lxcPath`;
  }
  if (insp.fstype !== "btrfs") {
    return `${paths.dir} is on ${insp.fstype}, not btrfs; LxcSubvolumeRootfs needs ${p.lxcPath} on a btrfs filesystem`;
  }
  if (insp.config === null)
    return `${paths.dir}/config is missing or unreadable; is ${p.container} an LXC container?`;
  if (!insp.btrfsVersion.startsWith("btrfs-progs v")) {
    return "the btrfs command (btrfs-progs) is missing or does not run on the host; install it (Debian: apt-get install btrfs-progs)";
  }
  return undefined;
}

function stepsFinishing(j: Journal, p: RootfsPolicy, paths: RootfsPaths, insp: RootfsInspection): Step[] {
  const steps: Step[] = [];
  const target = j.op === "convert" ? "btrfs" : "dir";
  const cfg = insp.config === null ? undefined : checkRootfsConfig(insp.config, paths.rootfs);
  if (cfg?.ok && cfg.store !== target) {
    steps.push({
      op: "write-config",
      expectedSha: sha256(insp.config as string),
      content: rewriteRootfsLine(insp.config as string, cfg.line.index, `${target}:${paths.rootfs}`),
      backupName: j.op === "convert" ? "config.pre-btrfs" : "config.pre-dir",
    });
  }
  const old = j.op === "convert" ? paths.backup : paths.revertOld;
  const hasOld = insp.exists[old.slice(paths.dir.length + 1)];
  // The nested subvolumes belong to the new rootfs before the container runs on it; the old tree's
  // removal is cleanup, not downtime, so it comes after the start. A crash between the two leaves the
  // "swapped" journal: the next run finds the container running and only removes the old tree.
  if (hasOld) steps.push({ op: "move-nested", from: old, to: paths.rootfs });
  if (j.wasRunning && insp.state !== "RUNNING") steps.push({ op: "start" });
  if (hasOld && (j.op === "revert" || !p.keepBackup)) steps.push({ op: "remove", path: old });
  steps.push({ op: "journal-clear" });
  return steps;
}

/** Finishes or rolls back an interrupted operation found in the journal. */
function planResume(insp: RootfsInspection, p: RootfsPolicy, paths: RootfsPaths): RootfsPlan {
  const j = insp.journal as Journal;
  if (j.op === "restore") return planResumeRestore(j, insp, p, paths);
  // Before the swap nothing of the original changed: discard the copy and start the container again if
  // it ran (a live conversion may have stopped it; one still running is left running).
  if (j.phase === "copying" || j.phase === "precopying" || j.phase === "catching-up") {
    return rollBack(j, insp, paths, "copy not yet verified");
  }
  // Verified once, but the original was left in place across the interruption: the container may have
  // run on it since (autostart, or by hand) and changed it. Never swap in a copy that may be stale:
  // discard it; the next round copies and verifies again.
  if (j.phase === "swapping" && !swapStarted(j, insp, paths)) {
    return rollBack(
      j,
      insp,
      paths,
      "the swap had not started; the original may have changed since its verification",
    );
  }
  const steps: Step[] = [];
  if (j.phase === "swapping") {
    steps.push(
      j.op === "convert"
        ? { op: "swap", cur: paths.rootfs, next: paths.next, old: paths.backup }
        : { op: "swap", cur: paths.rootfs, next: paths.revertDir, old: paths.revertOld },
      { op: "journal", phase: "swapped", kind: j.op, wasRunning: j.wasRunning },
    );
    // The swap changes which trees exist; the finishing steps are planned on the next inspection.
    return { kind: "apply", action: `resume an interrupted ${j.op} (complete the swap)`, steps };
  }
  return {
    kind: "apply",
    action: `resume an interrupted ${j.op} (finish)`,
    steps: stepsFinishing(j, p, paths, insp),
  };
}

/** Discards the copy of an interrupted operation, starting the container again if it ran and is stopped. */
function rollBack(j: Journal, insp: RootfsInspection, paths: RootfsPaths, why: string): RootfsPlan {
  const steps: Step[] = [{ op: "discard", path: j.op === "convert" ? paths.next : paths.revertDir }];
  if (j.wasRunning && insp.state !== "RUNNING") steps.push({ op: "start" });
  steps.push({ op: "journal-clear" });
  return { kind: "apply", action: `roll back an interrupted ${j.op} (${why})`, steps };
}

/** Whether the swap's first rename (rootfs -> old name) happened: after it, the original cannot have run. */
function swapStarted(j: Journal, insp: RootfsInspection, paths: RootfsPaths): boolean {
  const old = j.op === "convert" ? paths.backup : paths.revertOld;
  return insp.rootfs === "missing" || insp.exists[old.slice(paths.dir.length + 1)] === true;
}

function stepsCopyAndSwap(
  kind: Journal["op"],
  insp: RootfsInspection,
  p: RootfsPolicy,
  paths: RootfsPaths,
): RootfsPlan | string {
  if (/[ia]/.test(insp.rootfsFlags.replace(/-/g, ""))) {
    return `${paths.rootfs} itself is immutable or append-only (lsattr: ${insp.rootfsFlags}), so it cannot be renamed; clear it with chattr -i -a ${paths.rootfs} and run again`;
  }
  const running = insp.state === "RUNNING" || insp.state === "FROZEN";
  if (running && p.ifRunning === "fail") {
    return `container ${p.container} is ${insp.state}; stop it first or set ifRunning: "restart" or "live"`;
  }
  const files = insp.files ?? 0;
  if ((insp.availBytes ?? 0) < requiredFreeBytes(files)) {
    return (
      `not enough free space in ${paths.dir}: ${insp.availBytes} bytes available, ${requiredFreeBytes(files)} needed ` +
      `for the metadata of ${files} entries; free some space and run again`
    );
  }
  const next = kind === "convert" ? paths.next : paths.revertDir;
  const old = kind === "convert" ? paths.backup : paths.revertOld;
  const create: Step =
    kind === "convert" ? { op: "subvol-create", path: next } : { op: "mkdir-new", path: next };
  const steps: Step[] = [];
  if (running && p.ifRunning === "live") {
    // The downtime is the catch-up, proportional to what changed while the pre-copy ran.
    steps.push(
      { op: "journal", phase: "precopying", kind, wasRunning: true },
      create,
      { op: "precopy", from: paths.rootfs, to: next, total: files },
      { op: "journal", phase: "catching-up", kind, wasRunning: true },
      { op: "stop" },
      { op: "catchup", from: paths.rootfs, to: next },
    );
  } else {
    steps.push({ op: "journal", phase: "copying", kind, wasRunning: running });
    if (running) steps.push({ op: "stop" });
    steps.push(create, { op: "copy", from: paths.rootfs, to: next, total: files });
  }
  steps.push(
    { op: "verify", a: paths.rootfs, b: next },
    { op: "journal", phase: "swapping", kind, wasRunning: running },
    { op: "swap", cur: paths.rootfs, next, old },
    { op: "journal", phase: "swapped", kind, wasRunning: running },
  );
  // After the swap the old tree exists under its new name and the container is stopped if it ran.
  const after: RootfsInspection = {
    ...insp,
    exists: { ...insp.exists, [old.slice(paths.dir.length + 1)]: true },
    state: running ? "STOPPED" : insp.state,
  };
  steps.push(...stepsFinishing({ op: kind, phase: "swapped", wasRunning: running }, p, paths, after));
  return {
    kind: "apply",
    action: kind === "convert" ? "convert rootfs to a subvolume" : "revert rootfs to a directory",
    steps,
  };
}

/** Plans bringing the rootfs to "subvolume with a btrfs: config". */
export function planConvert(insp: RootfsInspection, p: RootfsPolicy): RootfsPlan {
  const paths = rootfsPaths(p.lxcPath, p.container);
  const unusable = refuseUnusable(insp, p, paths);
  if (unusable) return { kind: "refuse", reason: unusable };
  if (insp.journal) return planResume(insp, p, paths);
  if (insp.rootfs !== "dir") {
    const what = { symlink: "a symlink", missing: "missing", other: "not a directory" }[
      insp.rootfs ?? "missing"
    ];
    return { kind: "refuse", reason: `${paths.rootfs} is ${what}; expected a directory` };
  }
  const cfg = checkRootfsConfig(insp.config as string, paths.rootfs);
  if (!cfg.ok) return { kind: "refuse", reason: `${paths.dir}/config: ${cfg.problem}` };
  // Already converted: adopt and change nothing, whatever is mounted inside.
  if (insp.rootfsIsSubvolume && cfg.store === "btrfs") return { kind: "done", adopted: true };
  if (insp.mounts.length > 0) {
    return {
      kind: "refuse",
      reason: `mount points inside ${paths.rootfs}: ${insp.mounts.join(", ")}; unmount them first`,
    };
  }
  if (insp.rootfsIsSubvolume) {
    return {
      kind: "apply",
      action: `point the config at the btrfs backing store (was ${cfg.store})`,
      steps: stepsFinishing({ op: "convert", phase: "swapped", wasRunning: false }, p, paths, insp).filter(
        (s) => s.op === "write-config",
      ),
    };
  }
  for (const leftover of ["rootfs.plb-new", "rootfs.pre-btrfs"]) {
    if (insp.exists[leftover]) {
      return {
        kind: "refuse",
        reason: `${paths.dir}/${leftover} already exists and no conversion journal explains it; move it away and run again`,
      };
    }
  }
  if (insp.nested.length > 0 && p.nestedSubvolumes === "fail") {
    return {
      kind: "refuse",
      reason: `nested subvolumes inside ${paths.rootfs}: ${insp.nested.join(", ")}; set nestedSubvolumes: "keep" to move them into the new subvolume`,
    };
  }
  const plan = stepsCopyAndSwap("convert", insp, p, paths);
  return typeof plan === "string" ? { kind: "refuse", reason: plan } : plan;
}

/** Plans turning the subvolume back into a plain directory with a dir: config (onDelete: "revert"). */
export function planRevert(insp: RootfsInspection, p: RootfsPolicy): RootfsPlan {
  const paths = rootfsPaths(p.lxcPath, p.container);
  if (insp.containerDir === "missing") return { kind: "done", adopted: false };
  const unusable = refuseUnusable(insp, p, paths);
  if (unusable) return { kind: "refuse", reason: unusable };
  if (insp.journal) return planResume(insp, p, paths);
  const cfg = checkRootfsConfig(insp.config as string, paths.rootfs);
  if (!cfg.ok) return { kind: "refuse", reason: `${paths.dir}/config: ${cfg.problem}` };
  if (!insp.rootfsIsSubvolume) {
    if (cfg.store === "dir") return { kind: "done", adopted: false };
    return {
      kind: "apply",
      action: "point the config at the dir backing store",
      steps: stepsFinishing({ op: "revert", phase: "swapped", wasRunning: false }, p, paths, insp).filter(
        (s) => s.op === "write-config",
      ),
    };
  }
  for (const leftover of ["rootfs.plb-dir", "rootfs.plb-old"]) {
    if (insp.exists[leftover]) {
      return {
        kind: "refuse",
        reason: `${paths.dir}/${leftover} already exists and no journal explains it; move it away`,
      };
    }
  }
  const plan = stepsCopyAndSwap("revert", insp, { ...p, nestedSubvolumes: "keep" }, paths);
  return typeof plan === "string" ? { kind: "refuse", reason: plan } : plan;
}

/** The directory of snapshot `name` of the container: LXC's lxc-snapshot layout. */
export function snapshotDir(paths: RootfsPaths, name: string): string {
  return `${paths.dir}/snaps/${name}`;
}

/**
 * Plans making the rootfs a writable snapshot of snapshot `name`, once the conversion is done (the
 * provider asks only then, and only when restoreFrom is new: an unchanged restoreFrom never restores
 * again). ifRunning "live" restores as "restart" does: a snapshot is taken in O(1), there is nothing
 * to pre-copy, so the downtime is the stop, the snapshot, two renames and the start.
 */
export function planRestore(insp: RootfsInspection, p: RootfsPolicy, name: string): RootfsPlan {
  const paths = rootfsPaths(p.lxcPath, p.container);
  const refuse = (reason: string): RootfsPlan => ({ kind: "refuse", reason });
  if (!insp.rootfsIsSubvolume) return refuse(`${paths.rootfs} is not a subvolume; cannot restore it`);
  for (const leftover of ["rootfs.plb-restore", "rootfs.pre-restore"]) {
    if (insp.exists[leftover]) {
      return refuse(
        `${paths.dir}/${leftover} already exists (an earlier restore's backup?) and no journal explains it; move it away or delete it (btrfs subvolume delete) and run again`,
      );
    }
  }
  if (/[ia]/.test(insp.rootfsFlags.replace(/-/g, ""))) {
    return refuse(
      `${paths.rootfs} itself is immutable or append-only (lsattr: ${insp.rootfsFlags}), so it cannot be renamed; clear it with chattr -i -a ${paths.rootfs} and run again`,
    );
  }
  const running = insp.state === "RUNNING" || insp.state === "FROZEN";
  if (running && p.ifRunning === "fail") {
    return refuse(
      `container ${p.container} is ${insp.state}; stop it first or set ifRunning: "restart" to restore it from snapshot ${name}`,
    );
  }
  const snap = snapshotDir(paths, name);
  const steps: Step[] = [
    { op: "snapshot-check", snapshot: snap, cur: paths.rootfs, keep: p.keepBackup },
    { op: "journal-restore", phase: "copying", snapshot: name, wasRunning: running },
  ];
  if (running) steps.push({ op: "stop" });
  steps.push(
    { op: "restore-snapshot", snapshot: snap, path: paths.restoreNew },
    { op: "restore-verify", snapshot: snap, path: paths.restoreNew },
    { op: "journal-restore", phase: "swapping", snapshot: name, wasRunning: running },
    { op: "swap", cur: paths.rootfs, next: paths.restoreNew, old: paths.restoreOld },
    { op: "journal-restore", phase: "swapped", snapshot: name, wasRunning: running },
  );
  if (running) steps.push({ op: "start" });
  if (!p.keepBackup) steps.push({ op: "remove", path: paths.restoreOld });
  steps.push({ op: "journal-clear" });
  return { kind: "apply", action: `restore rootfs from snapshot ${name}`, steps, restores: name };
}

/**
 * An interrupted restore: before its swap started, the writable snapshot is discarded (the provider
 * then restores again: the original was never touched); after, the swap and the cleanup are finished.
 */
function planResumeRestore(
  j: Journal,
  insp: RootfsInspection,
  p: RootfsPolicy,
  paths: RootfsPaths,
): RootfsPlan {
  const name = j.snapshot as string;
  const hasOld = insp.exists["rootfs.pre-restore"] === true;
  const swapStarted = insp.rootfs === "missing" || hasOld;
  if (j.phase === "copying" || (j.phase === "swapping" && !swapStarted)) {
    const steps: Step[] = [{ op: "discard", path: paths.restoreNew }];
    if (j.wasRunning && insp.state !== "RUNNING") steps.push({ op: "start" });
    steps.push({ op: "journal-clear" });
    return {
      kind: "apply",
      action: `roll back an interrupted restore from snapshot ${name} (not yet swapped)`,
      steps,
    };
  }
  if (j.phase === "swapping") {
    return {
      kind: "apply",
      action: `resume an interrupted restore from snapshot ${name} (complete the swap)`,
      steps: [
        { op: "swap", cur: paths.rootfs, next: paths.restoreNew, old: paths.restoreOld },
        { op: "journal-restore", phase: "swapped", snapshot: name, wasRunning: j.wasRunning },
      ],
    };
  }
  const steps: Step[] = [];
  if (j.wasRunning && insp.state !== "RUNNING") steps.push({ op: "start" });
  if (hasOld && !p.keepBackup) steps.push({ op: "remove", path: paths.restoreOld });
  steps.push({ op: "journal-clear" });
  return {
    kind: "apply",
    action: `resume an interrupted restore from snapshot ${name} (finish)`,
    steps,
    restores: name,
  };
}
