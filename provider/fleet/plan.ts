/**
 * Fleet rollout planning, pure: which containers on which hosts, in which wave, after which others.
 * The component (rollout.ts) only turns this plan into resources with dependsOn edges.
 */

import { UserError } from "../core/errors";
import { globMatch } from "../core/glob";
import type { BackingStore } from "../host/lxc-config";
import { classifyBackingStore } from "../host/lxc-config";

export interface DiscoveredContainer {
  /** The name; for a name we cannot manage (see `problem`), a printable form with `\xNN` escapes. */
  name: string;
  fstype: string;
  rootfs: "dir" | "symlink" | "missing";
  rootfsIsSubvolume: boolean;
  configBackingStore: BackingStore | "missing";
  state: string;
  /** Why this container cannot be managed as it is (its name), with what to do; unset when it can. */
  problem?: string;
}

/** Why a name that LXC allows is refused by our schema, and what to do about it. */
export const ODD_NAME_PROBLEM =
  "its name is not one this provider accepts (1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'); rename it with lxc-copy -R to manage it";

/**
 * A directory name as the host returned it in hex, in a printable and unambiguous form: printable ASCII
 * stays, a backslash is doubled, every other byte (tab, newline, non-UTF-8) becomes `\xNN`.
 */
export function printableName(hex: string): string {
  let out = "";
  for (let i = 0; i + 1 < hex.length; i += 2) {
    const b = Number.parseInt(hex.slice(i, i + 2), 16);
    if (b === 0x5c) out += "\\\\";
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\x${hex.slice(i, i + 2).toLowerCase()}`;
  }
  return out;
}

/** Parses discover.sh output; fails closed on a record it cannot read. */
export function parseDiscovery(out: string): DiscoveredContainer[] {
  const nl = out.indexOf("\n");
  const head = out.slice(0, nl);
  if (!head.startsWith("fstype=")) throw new Error("unrecognised discovery output");
  return out
    .slice(nl + 1)
    .split("\0")
    .filter(Boolean)
    .map((rec): DiscoveredContainer => {
      const f = rec.split("\t");
      if (f[0] === "odd" && f.length === 2 && /^([0-9a-f]{2})+$/.test(f[1])) {
        return {
          name: printableName(f[1]),
          fstype: "unknown",
          rootfs: "missing",
          rootfsIsSubvolume: false,
          configBackingStore: "missing",
          state: "UNKNOWN",
          problem: ODD_NAME_PROBLEM,
        };
      }
      if (f[0] !== "ok" || f.length !== 7)
        throw new Error(`unrecognised discovery record ${JSON.stringify(rec.slice(0, 100))}`);
      const [, name, fstype, rootfs, ino, state, line] = f;
      return {
        name,
        fstype,
        rootfs: rootfs as DiscoveredContainer["rootfs"],
        rootfsIsSubvolume: fstype === "btrfs" && rootfs === "dir" && ino === "256",
        configBackingStore: line ? classifyBackingStore(line) : ("missing" as const),
        state,
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Names kept by include (default: all) minus exclude, in order. */
export function selectContainers(names: string[], include?: string[], exclude?: string[]): string[] {
  return names.filter(
    (n) =>
      (!include || include.length === 0 || include.some((p) => globMatch(p, n))) &&
      !(exclude ?? []).some((p) => globMatch(p, n)),
  );
}

export interface RolloutHostPlanInput {
  name: string;
  containers: string[];
}

export interface PlannedConversion {
  host: string;
  container: string;
  wave: number;
  /** Keys (`host/container`) of conversions that must finish first. */
  after: string[];
}

export function conversionKey(host: string, container: string): string {
  return `${host}/${container}`;
}

/**
 * Each host's wave: 0 for the canary hosts (the first `canary` hosts, or the named ones), 1 for the others;
 * 0 for all when there is no canary. Throws a UserError for a canary host that is not among the hosts.
 */
export function hostWaves(names: string[], canary: number | string[] | undefined): (host: string) => 0 | 1 {
  const set = new Set(Array.isArray(canary) ? canary : names.slice(0, canary ?? 0));
  for (const c of set)
    if (!names.includes(c))
      throw new UserError(
        `canary host ${c} is not among the hosts (${names.join(", ")}); name one of them, or give canary as a number of hosts`,
      );
  return (h) => (set.size > 0 && !set.has(h) ? 1 : 0);
}

/**
 * Waves: the canary hosts (the first `canary` hosts, or the named ones) form wave 0, every other host
 * wave 1, which starts only once all of wave 0 has succeeded. Within a host at most
 * `maxConcurrentPerHost` conversions run at once: conversion i waits for conversion i - k.
 * Returned in that order: wave 0, then wave 1, hosts as listed. Throws a UserError (no stack trace)
 * for options the user must fix; the caller names the rollout.
 */
export function planRollout(
  hosts: RolloutHostPlanInput[],
  opts: { canary?: number | string[]; maxConcurrentPerHost?: number },
): PlannedConversion[] {
  const k = opts.maxConcurrentPerHost ?? 1;
  if (!Number.isInteger(k) || k < 1)
    throw new UserError(`maxConcurrentPerHost is ${k}; set it to a whole number of at least 1`);
  const names = hosts.map((h) => h.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup)
    throw new UserError(`host ${dup} is listed twice in hosts; give each host one entry and a unique name`);
  for (const h of hosts) {
    const twice = h.containers.find((c, i) => h.containers.indexOf(c) !== i);
    if (twice)
      throw new UserError(`container ${twice} is listed twice for host ${h.name}; list each container once`);
  }
  const waveOf = hostWaves(names, opts.canary);
  const wave0Keys = hosts
    .filter((h) => waveOf(h.name) === 0 && names.some((n) => waveOf(n) === 1))
    .flatMap((h) => h.containers.map((c) => conversionKey(h.name, c)));
  // Wave 0 first: every conversion comes after those it waits for, so the component can wire dependsOn
  // in this order (a named canary host listed after the others must still gate them).
  const out: PlannedConversion[] = [];
  for (const wave of [0, 1]) {
    for (const h of hosts) {
      if (waveOf(h.name) !== wave) continue;
      h.containers.forEach((c, i) => {
        const after: string[] = [];
        if (i >= k) after.push(conversionKey(h.name, h.containers[i - k]));
        if (wave === 1) after.push(...wave0Keys);
        out.push({ host: h.name, container: c, wave, after });
      });
    }
  }
  return out;
}

export interface CopyPlanInput {
  from: { host: string; container: string };
  /** Host names, or "all": every host but the source's (and but those listed in `except`). */
  to: string[] | "all";
  /** The copy's name on every target (default: the source container's). */
  name?: string;
}

export interface PlannedCopy {
  /** Which of the copies given this is one of (its index). */
  index: number;
  /** The target host, the source host and container, the copy's name there. */
  host: string;
  fromHost: string;
  container: string;
  name: string;
  wave: number;
  /** Keys that must finish first: conversions (`host/container`) and other copies (`copy:host/name`). */
  after: string[];
}

/**
 * The names the rollout makes itself on each host, which that host's discovery must leave out: its clones
 * (on their host) and its copies (on every host they may go to: the listed ones, or with "all" every host
 * but the source's). Without this, a copy made by the last `up` is found again as a container of its host,
 * and declared twice.
 */
export function ownNames(
  hosts: readonly string[],
  clones: readonly { host: string; name: string }[],
  copies: readonly { from: { host: string; container: string }; to: string[] | "all"; name?: string }[],
): Map<string, Set<string>> {
  const out = new Map(hosts.map((h) => [h, new Set<string>()]));
  for (const c of clones) out.get(c.host)?.add(c.name);
  for (const c of copies)
    for (const t of c.to === "all" ? hosts.filter((h) => h !== c.from.host) : c.to)
      out.get(t)?.add(c.name ?? c.from.container);
  return out;
}

export function copyKey(host: string, name: string): string {
  return `copy:${host}/${name}`;
}

/**
 * Copies of one container to other hosts (cross-host clones), in the rollout's waves: each waits for its
 * source's conversion when the rollout converts it; a copy to a wave-1 host also waits for every
 * conversion of wave 0; and at most `maxConcurrentPerHost` copies at a time arrive at one host (copy i to a
 * host waits for copy i - k to it). `unreachable` hosts (discovery failed) are left out of "all". Throws a
 * UserError for a copy the user must fix; the caller names the rollout.
 */
export function planCopies(
  hosts: (RolloutHostPlanInput & { lxcPath?: string })[],
  conversions: PlannedConversion[],
  copies: CopyPlanInput[],
  opts: { canary?: number | string[]; maxConcurrentPerHost?: number; unreachable?: string[] },
): PlannedCopy[] {
  const k = opts.maxConcurrentPerHost ?? 1;
  const names = hosts.map((h) => h.name);
  const waveOf = hostWaves(names, opts.canary);
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const converted = new Set(conversions.map((c) => conversionKey(c.host, c.container)));
  const wave0 = conversions
    .filter((c) => c.wave === 0 && waveOf(c.host) === 0)
    .map((c) => conversionKey(c.host, c.container));
  const hasCanary = names.some((h) => waveOf(h) === 1);
  const perTarget = new Map<string, string[]>();
  const seen = new Set<string>();
  const out: PlannedCopy[] = [];
  for (const [index, c] of copies.entries()) {
    const src = byName.get(c.from.host);
    if (!src)
      throw new UserError(
        `copy of ${c.from.container} names source host ${c.from.host}, which is not among the hosts`,
      );
    const name = c.name ?? c.from.container;
    const targets =
      c.to === "all" ? names.filter((h) => h !== c.from.host && !(opts.unreachable ?? []).includes(h)) : c.to;
    for (const t of targets) {
      const target = byName.get(t);
      if (!target)
        throw new UserError(
          `copy of ${c.from.container} names target host ${t}, which is not among the hosts`,
        );
      if (t === c.from.host)
        throw new UserError(
          `copy of ${c.from.container} to ${t}: that is its own host; declare a clone (clones) for a copy on the same host`,
        );
      if ((target.lxcPath ?? "/var/lib/lxc") !== (src.lxcPath ?? "/var/lib/lxc"))
        throw new UserError(
          `copy of ${c.from.container} from ${c.from.host} to ${t}: the hosts' lxcPath differ (${src.lxcPath ?? "/var/lib/lxc"}, ${target.lxcPath ?? "/var/lib/lxc"}); a copy keeps its container's lxcPath`,
        );
      if (target.containers.includes(name))
        throw new UserError(
          `copy ${name} to ${t}: ${t} already has a container ${name} in this rollout; give the copy another name`,
        );
      const key = copyKey(t, name);
      if (seen.has(key))
        throw new UserError(`two copies are named ${name} on ${t}; give each copy on a host its own name`);
      seen.add(key);
      const after: string[] = [];
      const source = conversionKey(c.from.host, c.from.container);
      if (converted.has(source)) after.push(source);
      const wave = waveOf(t);
      if (wave === 1 && hasCanary) after.push(...wave0.filter((w) => w !== source));
      const queue = perTarget.get(t) ?? [];
      if (queue.length >= k) after.push(queue[queue.length - k]);
      queue.push(key);
      perTarget.set(t, queue);
      out.push({ index, host: t, fromHost: c.from.host, container: c.from.container, name, wave, after });
    }
  }
  return out;
}
