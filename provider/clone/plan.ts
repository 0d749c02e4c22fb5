/**
 * Pure logic of LxcSnapshotClone: what lxc-copy leaves undone (mount entries and
 * log file under the old container dir, /etc/hosts, MAC uniqueness), drift and diff.
 */

import { checkRootfsConfig, findHwaddrs, getConfigValue } from "../host/lxc-config";
import type { CloneInspection } from "./inspection";

/**
 * Why an existing container named like the clone cannot be adopted as the clone, or undefined when it
 * can: it must be a snapshot of the source whose config points at its own btrfs rootfs.
 */
export function adoptProblem(
  insp: CloneInspection,
  lxcPath: string,
  source: string,
  name: string,
): string | undefined {
  const notOurs = `a container named ${name} already exists and is not a snapshot of ${source}; choose another name or remove it`;
  if (!insp.clone.subvolume || insp.clone.subvolume.parentUuid !== insp.source.subvolume?.uuid)
    return notOurs;
  const want = `btrfs:${lxcPath}/${name}/rootfs`;
  if (getConfigValue(insp.cloneConfig, "lxc.rootfs.path") !== want)
    return `${name} is a snapshot of ${source} but its config does not say lxc.rootfs.path = ${want} (an unfinished copy made by hand or by another tool?); remove it or fix its config`;
  return undefined;
}

/**
 * Why the source cannot be snapshot-cloned, or undefined when it can. With `snapshot`, the inspection's
 * source side is that snapshot of the source (`<lxcPath>/<source>/snaps/<snapshot>`), and it is checked.
 */
export function sourceProblem(
  insp: CloneInspection,
  lxcPath: string,
  source: string,
  snapshot?: string,
  needsLxcCopy = true,
): string | undefined {
  if (snapshot !== undefined) return snapshotSourceProblem(insp, lxcPath, source, snapshot, needsLxcCopy);
  if (insp.source.dir === "missing") return `source container ${source} does not exist in ${lxcPath}`;
  if (insp.source.fstype !== "btrfs") return `source ${source} is on ${insp.source.fstype}, not btrfs`;
  const cfg = checkRootfsConfig(insp.sourceConfig, `${lxcPath}/${source}/rootfs`);
  if (!insp.source.isSubvolume || !cfg.ok || cfg.store !== "btrfs") {
    return (
      `source ${source}'s rootfs is not a btrfs subvolume with a btrfs: config, so it cannot be snapshot-cloned; ` +
      `declare an LxcSubvolumeRootfs for ${source} and pass it in this clone's dependsOn`
    );
  }
  return undefined;
}

function snapshotSourceProblem(
  insp: CloneInspection,
  lxcPath: string,
  source: string,
  snapshot: string,
  needsLxcCopy: boolean,
): string | undefined {
  const at = `${lxcPath}/${source}/snaps/${snapshot}`;
  if (insp.source.dir === "missing")
    return `source ${source} has no snapshot ${snapshot} (${at} does not exist); declare the LxcSnapshot and pass it in this clone's dependsOn`;
  if (needsLxcCopy && !insp.hasLxcCopy) return "cloning a snapshot needs lxc-copy (LXC >= 2.0); install lxc";
  const cfg = checkRootfsConfig(insp.sourceConfig, `${at}/rootfs`);
  if (!insp.source.isSubvolume || !cfg.ok || cfg.store !== "btrfs")
    return `${at} is not a snapshot with a btrfs subvolume rootfs and a btrfs: config pointing at it, so it cannot be snapshot-cloned`;
  return undefined;
}

/**
 * The clone's config after lxc-copy, finished: lxc.mount.entry sources and lxc.log.file that still point
 * under the source's directory are moved to the clone's, lxc.uts.name is the hostname (added when the
 * config has none: lxc-copy -K copies the source's line, or none), and MACs listed in `macs` are replaced:
 * a string replaces every line with that MAC, a list (from uniqueMacs) gives the value for each line with
 * that MAC in file order. Every other byte stays.
 */
export function finishCloneConfig(
  text: string,
  o: {
    lxcPath: string;
    source: string;
    name: string;
    hostname: string;
    macs: Map<string, string | readonly string[]>;
  },
): string {
  const oldDir = `${o.lxcPath}/${o.source}/`;
  const newDir = `${o.lxcPath}/${o.name}/`;
  const occurrence = new Map<string, number>();
  const out = text
    .split("\n")
    .map((line) => {
      const m = /^(\s*)([a-z0-9._]+)(\s*=\s*)(.*)$/.exec(line);
      if (!m) return line;
      const [, indent, key, eq, value] = m;
      if (key === "lxc.mount.entry" || key === "lxc.log.file" || key === "lxc.mount.fstab") {
        return value.startsWith(oldDir) ? `${indent}${key}${eq}${newDir}${value.slice(oldDir.length)}` : line;
      }
      if (key === "lxc.uts.name") return `${indent}${key}${eq}${o.hostname}`;
      if (/^lxc\.net\.\d+\.hwaddr$/.test(key)) {
        const mac = value.trim().toLowerCase();
        const n = occurrence.get(mac) ?? 0;
        occurrence.set(mac, n + 1);
        const r = o.macs.get(mac);
        const repl = typeof r === "string" ? r : r?.[n];
        return repl && repl !== mac ? `${indent}${key}${eq}${repl}` : line;
      }
      return line;
    })
    .join("\n");
  if (getConfigValue(out, "lxc.uts.name") !== undefined) return out;
  return `${out}${out === "" || out.endsWith("\n") ? "" : "\n"}lxc.uts.name = ${o.hostname}\n`;
}

/** /etc/hosts with every whole-word occurrence of `from` (outside comments) replaced by `to`. */
export function rewriteHosts(text: string, from: string, to: string): string {
  if (!from || from === to) return text;
  return text
    .split("\n")
    .map((line) => {
      const hash = line.indexOf("#");
      const body = hash < 0 ? line : line.slice(0, hash);
      const rest = hash < 0 ? "" : line.slice(hash);
      return (
        body.replace(/[^\s]+/g, (tok) =>
          tok === from ? to : tok.startsWith(`${from}.`) ? to + tok.slice(from.length) : tok,
        ) + rest
      );
    })
    .join("\n");
}

/** LXC's own prefix for generated MACs (00:16:3e, locally chosen bits after it). */
export function randomMac(rand: () => number): string {
  const b = [0x00, 0x16, 0x3e, Math.floor(rand() * 0x80), Math.floor(rand() * 256), Math.floor(rand() * 256)];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/**
 * Replacements for the clone's MACs (given in file order) that collide with any other container's or with
 * each other. For each MAC that needs one: the value for every line carrying it, in file order, where the
 * first line of a MAC no other container uses keeps it. One value per MAC would give two lines with the
 * same MAC the same new one, and they would still collide.
 */
export function uniqueMacs(cloneMacs: string[], others: string[], rand: () => number): Map<string, string[]> {
  const macs = cloneMacs.map((m) => m.toLowerCase());
  const taken = new Set(others.map((m) => m.toLowerCase()));
  const avoid = new Set([...taken, ...macs]);
  const kept = new Set<string>();
  const values = new Map<string, string[]>();
  const changed = new Set<string>();
  for (const mac of macs) {
    let value = mac;
    if (taken.has(mac) || kept.has(mac)) {
      do {
        value = randomMac(rand);
      } while (avoid.has(value));
      avoid.add(value);
      changed.add(mac);
    } else {
      kept.add(mac);
    }
    values.set(mac, [...(values.get(mac) ?? []), value]);
  }
  return new Map([...values].filter(([mac]) => changed.has(mac)));
}

export interface CloneDesired {
  name: string;
  source: string;
  hostname: string;
  start: boolean;
}

/** What read found different from what was declared, as short phrases; empty when in sync. */
export function cloneDrift(
  insp: CloneInspection,
  want: CloneDesired,
  lxcPath: string,
  parentUuid: string | null,
): string[] {
  const d: string[] = [];
  if (!insp.clone.isSubvolume) d.push("rootfs is no longer a subvolume");
  else if (parentUuid && insp.clone.subvolume?.parentUuid !== parentUuid)
    d.push("rootfs is no longer a snapshot of the source");
  const uts = getConfigValue(insp.cloneConfig, "lxc.uts.name");
  if (uts !== want.hostname) d.push(`hostname is ${uts ?? "(unset)"}, want ${want.hostname}`);
  const rootfs = getConfigValue(insp.cloneConfig, "lxc.rootfs.path");
  if (rootfs !== `btrfs:${lxcPath}/${want.name}/rootfs`) d.push(`lxc.rootfs.path is ${rootfs ?? "(unset)"}`);
  const running = insp.clone.state === "RUNNING";
  if (running !== want.start)
    d.push(`state is ${insp.clone.state}, want ${want.start ? "RUNNING" : "STOPPED"}`);
  return d;
}

/** Drift that update cannot repair in place: the clone must be made again. */
export function driftNeedsReplace(drift: string[]): boolean {
  return drift.some((x) => x.startsWith("rootfs") || x.startsWith("lxc.rootfs.path"));
}

export { findHwaddrs };
