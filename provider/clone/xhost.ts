/**
 * Pure logic of cross-host clones (LxcSnapshotClone with a `sourceConnection` on another host): which host
 * is which, the reserved names of what is kept on each host, the config carried over, the checks made
 * before anything changes, the relay's outcome and its progress lines. No SSH, no Pulumi.
 */
import { createHash } from "node:crypto";
import type { Connection, JumpConnection } from "../core/connection";
import { getConfigValue } from "../host/lxc-config";
import { parseSubvolumeFields, type SubvolumeInfo } from "../host/subvolume";
import type { CloneInspection } from "./inspection";

/**
 * A host as a connection reaches it: user, host (case-insensitive) and port, and the jump host's. Two
 * connections with the same identity reach the same host, whatever their credentials.
 */
export function hostIdentity(
  c: Pick<Connection, "user" | "host" | "port"> & { proxy?: JumpConnection },
): string {
  const self = `${c.user}@${c.host.toLowerCase().replace(/\.$/, "")}:${c.port}`;
  return c.proxy ? `${self} via ${hostIdentity(c.proxy)}` : self;
}

/** The connection the source is reached with: `sourceConnection`, or `connection` when none is given. */
export function sourceConnectionOf<T extends { connection: Connection; sourceConnection?: Connection }>(
  i: T,
): Connection {
  return i.sourceConnection ?? i.connection;
}

/** Whether the source is on another host than the clone. */
export function isCrossHost(i: { connection: Connection; sourceConnection?: Connection }): boolean {
  return hostIdentity(sourceConnectionOf(i)) !== hostIdentity(i.connection);
}

/**
 * The target's tag in the name of the snapshot kept on the source: 12 hex digits of the SHA-256 of the
 * target host's identity and lxcPath. With the clone's name it names one clone on one host, so that each
 * clone of a source (on any number of hosts) has its own parent for its next incremental send, found again
 * by computing the same name.
 */
export function targetTag(target: Connection, lxcPath: string): string {
  return createHash("sha256")
    .update(`${hostIdentity(target)}\0${lxcPath}`)
    .digest("hex")
    .slice(0, 12);
}

/** `.plb-sent-<tag>-<name>`: the kept sent snapshot's directory in `<lxcPath>/<source>/snaps/`. */
export function sentName(tag: string, name: string): string {
  return `.plb-sent-${tag}-${name}`;
}

/** The config a cross-host clone starts from: the source's, its rootfs at the clone's `btrfs:` subvolume. */
export function crossHostConfig(sourceConfig: string, lxcPath: string, name: string): string {
  const want = `btrfs:${lxcPath}/${name}/rootfs`;
  let seen = false;
  const out = sourceConfig
    .split("\n")
    .map((line) => {
      const m = /^(\s*)lxc\.rootfs\.path(\s*=\s*).*$/.exec(line);
      if (!m) return line;
      seen = true;
      return `${m[1]}lxc.rootfs.path${m[2]}${want}`;
    })
    .join("\n");
  if (seen) return out;
  return `${out}${out === "" || out.endsWith("\n") ? "" : "\n"}lxc.rootfs.path = ${want}\n`;
}

/** What the cross-host ops print before an inspection (`key=value`, and `PREFIX FIELD=value` subvolume lines). */
export interface CrossHostFacts {
  /** xsource: the kept sent snapshot (`subvol`, `missing`, `symlink`, `other`) and its subvolume. */
  sentDir?: string;
  sent?: SubvolumeInfo & { receivedUuid: string | null };
  /** xsource: a refresh's new snapshot `.plb-next-<tag>-<name>`, left by a refresh cut off. */
  next?: SubvolumeInfo & { receivedUuid: string | null };
  /** xsource: bytes the source's tree takes (du). */
  sizeBytes?: number;
  /** xtarget: the filesystem of lxcPath and its free bytes (btrfs' estimate, or df's). */
  lxcFstype?: string;
  freeBytes?: number;
  /** xtarget: `.plb-receiving-<name>`: missing, present or symlink. */
  receiving?: string;
  /** xtarget: the kept received parent `<name>/snaps/.plb-received/rootfs`, if there. */
  received?: SubvolumeInfo & { receivedUuid: string | null };
  /** xrefresh: the clone was running and was stopped for the swap (to be started again). */
  wasRunning?: boolean;
}

/** Pure: the cross-host lines of an xsource or xtarget report (the inspection after them is parsed apart). */
export function parseCrossHostFacts(out: string): CrossHostFacts {
  const end = out.indexOf("@@hwaddrs\0");
  const head = end < 0 ? out : out.slice(0, end);
  const kv = new Map<string, string>();
  const sub = {
    xsent: new Map<string, string>(),
    xnext: new Map<string, string>(),
    received: new Map<string, string>(),
  };
  for (const line of head.split("\n")) {
    const m = /^(xsent|xnext|received) ([A-Za-z ]+)=(.*)$/.exec(line);
    if (m) sub[m[1] as keyof typeof sub].set(m[2], m[3].trim());
    else if (line.includes("=")) kv.set(line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1));
  }
  const num = (k: string) => {
    const v = kv.get(k);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  const subvol = (m: Map<string, string>) => {
    const r = m.get("Received UUID");
    return { ...parseSubvolumeFields(m), receivedUuid: r && r !== "-" ? r : null };
  };
  const f: CrossHostFacts = {};
  if (kv.has("xsent_dir")) f.sentDir = kv.get("xsent_dir");
  if (f.sentDir === "subvol") f.sent = subvol(sub.xsent);
  if (kv.get("xnext_dir") === "subvol") f.next = subvol(sub.xnext);
  if (num("xsize") !== undefined) f.sizeBytes = num("xsize");
  if (kv.has("lxc_fstype")) f.lxcFstype = kv.get("lxc_fstype");
  if (num("free_bytes") !== undefined) f.freeBytes = num("free_bytes");
  if (kv.has("receiving")) f.receiving = kv.get("receiving");
  if (kv.get("received") === "1") f.received = subvol(sub.received);
  if (kv.get("was_running") === "1") f.wasRunning = true;
  return f;
}

/**
 * The parent of an incremental refresh: the UUID of the snapshot kept on the source (as `.plb-sent-…`, or as
 * `.plb-next-…` when a refresh was cut off after the target took it) that the target's kept received
 * subvolume is the receive of; undefined when there is none in common (the refresh then sends in full).
 */
export function commonParent(facts: { source: CrossHostFacts; target: CrossHostFacts }): string | undefined {
  const have = facts.target.received?.receivedUuid;
  if (!have) return undefined;
  return [facts.source.sent, facts.source.next].some((s) => s?.uuid === have) ? have : undefined;
}

/** xsent's report: the new sent snapshot's subvolume, and its inode flags (NUL-terminated "FLAGS ./PATH"). */
export function parseSentReport(out: string): { sent: SubvolumeInfo; flags: string } {
  const at = out.indexOf("@@flags\0");
  if (at < 0) throw new Error("unrecognised report of the sent snapshot");
  const m = new Map<string, string>();
  for (const line of out.slice(0, at).split("\n")) {
    const x = /^xsent ([A-Za-z ]+)=(.*)$/.exec(line);
    if (x) m.set(x[1], x[2].trim());
  }
  const flags = out.slice(at + "@@flags\0".length);
  if (flags !== "" && !flags.endsWith("\0"))
    throw new Error("truncated inode flag list of the sent snapshot");
  return { sent: parseSubvolumeFields(m), flags };
}

/** Space a receive of `size` bytes is given as needed: the size, 5% more, and 64 MiB for metadata. */
export function spaceNeeded(size: number): number {
  return size + Math.ceil(size / 20) + 64 * 2 ** 20;
}

/**
 * Why the target cannot take the copy, checked before anything changes on either host, or undefined. A
 * container by the clone's name is fine when it is this clone (adoptable) or an unfinished one of ours
 * (`making`); `adoptable` says which.
 */
export function targetProblem(
  t: CloneInspection,
  facts: CrossHostFacts,
  o: { lxcPath: string; name: string; sourceSize?: number; sentUuid?: string },
): string | undefined {
  if (facts.lxcFstype !== "btrfs")
    return `the target's ${o.lxcPath} is on ${facts.lxcFstype ?? "an unknown filesystem"}, not btrfs; a cross-host clone needs btrfs on both hosts`;
  if (facts.receiving === "symlink")
    return `${o.lxcPath}/.plb-receiving-${o.name} on the target is a symlink; remove it (what it points at is left alone)`;
  if (t.clone.dir === "present" && !t.making && adoptProblemXhost(t, facts, o) !== undefined)
    return adoptProblemXhost(t, facts, o);
  if (t.clone.dir === "present" && !t.making) return undefined;
  if (o.sourceSize !== undefined && facts.freeBytes !== undefined) {
    const need = spaceNeeded(o.sourceSize);
    if (facts.freeBytes < need)
      return `the target has ${mib(facts.freeBytes)} free in ${o.lxcPath}, and the source's tree takes ${mib(o.sourceSize)} (${mib(need)} needed with room for metadata); free space on the target`;
  }
  return undefined;
}

/**
 * Why an existing container on the target named like the clone is not this clone, or undefined: it must
 * be a snapshot of the kept received parent, which is the receive of the snapshot kept on the source, with
 * its config's rootfs at its own subvolume.
 */
export function adoptProblemXhost(
  t: CloneInspection,
  facts: CrossHostFacts,
  o: { lxcPath: string; name: string; sentUuid?: string },
): string | undefined {
  const notOurs = `the target already has a container named ${o.name} that is not this clone; choose another name or remove it`;
  const received = facts.received;
  if (!received || !t.clone.subvolume || t.clone.subvolume.parentUuid !== received.uuid) return notOurs;
  if (!o.sentUuid || received.receivedUuid !== o.sentUuid) return notOurs;
  const want = `btrfs:${o.lxcPath}/${o.name}/rootfs`;
  if (getConfigValue(t.cloneConfig, "lxc.rootfs.path") !== want)
    return `${o.name} on the target is a copy of the source but its config does not say lxc.rootfs.path = ${want}; remove it or fix its config`;
  return undefined;
}

/** Why a relay's result cannot be used, or undefined: both ends exited 0 and every byte read was written. */
export function relayProblem(r: {
  sendCode: number | null;
  sendStderr: string;
  receiveCode: number | null;
  receiveStderr: string;
  bytesRead: number;
  bytesWritten: number;
  error?: string;
}): string | undefined {
  const tail = (s: string) => s.trim().split("\n").slice(-3).join(" | ").slice(-400);
  const end = (what: string, code: number | null, stderr: string) =>
    `${what} ${code === null ? "was cut off" : `exited with code ${code}`}${stderr.trim() ? `: ${tail(stderr)}` : ""}`;
  // An end's own failure first, then a broken pipe (after which we closed the ends: cut off), then the rest.
  if (r.sendCode !== 0 && r.sendCode !== null)
    return end("btrfs send on the source", r.sendCode, r.sendStderr);
  // The stream ended early (receive: a short read or an EOF within a command, or no stream at all; which
  // one depends on where the stream was cut), send gave no exit status and the
  // relay had no error of its own: the source's channel closed under it (its connection lost, its sshd or
  // btrfs send killed). The source is where to look; the receive's failure only follows from it.
  if (
    r.sendCode === null &&
    !r.error &&
    r.receiveCode !== 0 &&
    r.receiveCode !== null &&
    /short read from stream|unexpected EOF in stream|empty stream is not considered valid/.test(
      r.receiveStderr,
    )
  )
    return `${end("btrfs send on the source", null, r.sendStderr)} (its connection was lost, or it was killed), and btrfs receive on the target then failed: ${tail(r.receiveStderr)}`;
  if (r.receiveCode !== 0 && r.receiveCode !== null) {
    // ENOSPC: the target filled up during the copy (free space is checked before, but is an estimate, and
    // others write there too). Say what to do.
    const full = /No space left on device/.test(r.receiveStderr)
      ? "; the target's filesystem is full: free space on the target and run again"
      : "";
    return end("btrfs receive on the target", r.receiveCode, r.receiveStderr) + full;
  }
  if (r.error) return `the relay failed: ${r.error}`;
  if (r.sendCode === null) return end("btrfs send on the source", null, r.sendStderr);
  if (r.receiveCode === null) return end("btrfs receive on the target", null, r.receiveStderr);
  if (r.bytesRead !== r.bytesWritten)
    return `the relay read ${r.bytesRead} bytes from the source but wrote ${r.bytesWritten} to the target`;
  return undefined;
}

/** `12.3 MiB`. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** A progress line: bytes so far, and the rate over the whole transfer and since the last line. */
export function progressLine(bytes: number, ms: number, lastBytes: number, lastMs: number): string {
  const rate = (b: number, t: number) => (t > 0 ? `${mib((b * 1000) / t)}/s` : "-");
  return `relayed ${mib(bytes)} in ${(ms / 1000).toFixed(1)} s (${rate(bytes, ms)}; last ${((ms - lastMs) / 1000).toFixed(1)} s: ${rate(bytes - lastBytes, ms - lastMs)})`;
}

/** The MACs of a config the clone must not keep: all of the source's, so that the clone's are all fresh. */
export function sourceMacs(sourceConfig: string): string[] {
  const out: string[] = [];
  for (const line of sourceConfig.split("\n")) {
    const m = /^\s*lxc\.net\.\d+\.hwaddr\s*=\s*(\S+)/.exec(line);
    if (m) out.push(m[1].toLowerCase());
  }
  return out;
}
