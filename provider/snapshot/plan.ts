/**
 * Pure logic of LxcSnapshot: whether a container can be snapshotted (and why not, in words a user can act
 * on), whether what is at the snapshot's path already is one this resource can adopt, and drift.
 */
import { checkRootfsConfig } from "../host/lxc-config";
import type { SnapshotInspection } from "./inspection";

/** What a snapshot resource names: its container, its name, and the directory of containers. */
export interface SnapshotPlace {
  container: string;
  name: string;
  lxcPath: string;
  ifRunning: "freeze" | "live" | "fail";
  nestedSubvolumes: "fail" | "include";
}

/** `<lxcPath>/<container>/snaps/<name>`: where LXC keeps its own snapshots. */
export function snapshotPath(p: Pick<SnapshotPlace, "container" | "name" | "lxcPath">): string {
  return `${p.lxcPath}/${p.container}/snaps/${p.name}`;
}

const KIND_WORDS = {
  symlink: "a symlink",
  other: "neither a directory nor a regular file",
  dir: "a directory",
  file: "a regular file",
  missing: "missing",
};

/** Why the container cannot be snapshotted as declared, or undefined when it can. Checks no snapshot path. */
export function containerProblem(insp: SnapshotInspection, p: SnapshotPlace): string | undefined {
  const ctd = `${p.lxcPath}/${p.container}`;
  if (insp.containerDir === "missing") return `container ${p.container} does not exist in ${p.lxcPath}`;
  if (insp.containerDir !== "dir")
    return `${ctd} is ${KIND_WORDS[insp.containerDir]}, not a container's directory; snapshots are made only in a real one`;
  if (insp.fstype !== "btrfs") return `${p.container} is on ${insp.fstype}, not btrfs`;
  const cfg = checkRootfsConfig(insp.config, `${ctd}/rootfs`);
  if (!insp.rootfs || !cfg.ok || cfg.store !== "btrfs") {
    return (
      `${p.container}'s rootfs is not a btrfs subvolume with a btrfs: config, so it cannot be snapshotted; ` +
      `declare an LxcSubvolumeRootfs for ${p.container} and pass it in this snapshot's dependsOn`
    );
  }
  if (insp.snaps !== undefined && insp.snaps !== "dir" && insp.snaps !== "missing") {
    return `${ctd}/snaps is ${KIND_WORDS[insp.snaps]} (left by a person or another tool?); snapshots are made only in a real directory there: remove it (what a symlink points at is left alone) and run again`;
  }
  if (insp.making !== undefined && insp.making !== "dir" && insp.making !== "missing") {
    return `${ctd}/snaps/.plb-making-${p.name} is ${KIND_WORDS[insp.making]}, not a build of this provider; remove it and run again`;
  }
  return undefined;
}

/** Why a snapshot cannot be taken now (state, nested subvolumes, tools), or undefined when it can. */
export function takeProblem(insp: SnapshotInspection, p: SnapshotPlace): string | undefined {
  const running = insp.state === "RUNNING";
  if (running && p.ifRunning === "fail")
    return `${p.container} is RUNNING; stop it, or set ifRunning: "freeze" (consistent) or "live" (crash-consistent)`;
  if (running && p.ifRunning === "freeze" && !insp.hasLxcFreeze)
    return `${p.container} is RUNNING and lxc-freeze is not installed; install lxc, or set ifRunning: "live"`;
  if (insp.state === "" || insp.state === undefined)
    return `lxc-info cannot tell the state of ${p.container}; check that LXC works on the host`;
  if (insp.nested.length > 0 && p.nestedSubvolumes === "fail") {
    const shown = insp.nested.slice(0, 5).join(", ") + (insp.nested.length > 5 ? ", ..." : "");
    return (
      `${p.container}'s rootfs holds ${insp.nested.length} nested subvolume(s) (${shown}); a btrfs snapshot is not ` +
      `recursive and would hold an empty directory in their place: set nestedSubvolumes: "include" to snapshot each one read-only into its place`
    );
  }
  return undefined;
}

/**
 * What is at the snapshot's path already: "none", "adopt" (a complete read-only snapshot of this container:
 * a create cut off after its rename, or state lost), or why it can be neither.
 */
export function existingSnapshot(
  insp: SnapshotInspection,
  p: SnapshotPlace,
): { kind: "none" } | { kind: "adopt" } | { kind: "refuse"; why: string } {
  const at = snapshotPath(p);
  if (insp.snapDir === undefined || insp.snapDir === "missing") return { kind: "none" };
  if (insp.snapDir !== "dir")
    return { kind: "refuse", why: `${at} is ${KIND_WORDS[insp.snapDir]}; choose another name or remove it` };
  const snap = insp.snapshot;
  const ours =
    snap?.readOnly === true &&
    insp.rootfs !== undefined &&
    snap.parentUuid === insp.rootfs.uuid &&
    insp.snapConfig === "file";
  if (!ours) {
    return {
      kind: "refuse",
      why: `${at} already exists and is not a read-only snapshot of ${p.container}'s rootfs with its config; choose another name or remove it`,
    };
  }
  return { kind: "adopt" };
}

/** What read found different from what create made, as short phrases; empty when in sync. */
export function snapshotDrift(insp: SnapshotInspection, uuid: string | null): string[] {
  const d: string[] = [];
  const snap = insp.snapshot;
  if (!snap) return ["rootfs is no longer a subvolume"];
  if (uuid && snap.uuid !== uuid) d.push(`rootfs is another subvolume (UUID ${snap.uuid}, made ${uuid})`);
  if (!snap.readOnly) d.push("rootfs is no longer read-only");
  if (insp.snapConfig !== "file") d.push(`config is ${KIND_WORDS[insp.snapConfig ?? "missing"]}`);
  return d;
}

/** A frozen time from the host's nanoseconds, in ms (rounded up: a freeze is never 0 ms), or null. */
export function frozenMs(ns: number | undefined): number | null {
  return ns === undefined ? null : Math.max(1, Math.ceil(ns / 1e6));
}
