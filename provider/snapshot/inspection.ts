/** What snapshot.sh's `inspect` (and the end of `make` and `delete`) prints, parsed. Pure; fails closed. */
import { splitSections } from "../host/sections";
import { parseSubvolumeFields, type SubvolumeInfo } from "../host/subvolume";

/** What is at a path, as the script names it without following a symlink. */
export type PathKind = "missing" | "symlink" | "dir" | "file" | "other";

export interface SnapshotSubvolume {
  uuid: string;
  parentUuid: string | null;
  generation: number;
  id: number;
  /** "Creation time" of `btrfs subvolume show`, as ISO 8601. */
  createdAt: string;
  /** The subvolume's flags say readonly. */
  readOnly: boolean;
}

export interface SnapshotInspection {
  hasLxcFreeze: boolean;
  /** The container's directory under lxcPath. */
  containerDir: PathKind;
  fstype?: string;
  /** The container's state as lxc-info says it ("" when it fails). */
  state?: string;
  /** The container's rootfs subvolume, when its rootfs is one. */
  rootfs?: SubvolumeInfo;
  /** `<container>/snaps`. */
  snaps?: PathKind;
  /** A build left by a make cut short (`snaps/.plb-making-<name>`), and whether it froze the container. */
  making?: PathKind;
  makingFrozen: boolean;
  /** `snaps/<name>`, its `rootfs` ("subvol" when it is a subvolume) and `config`. */
  snapDir?: PathKind;
  snapRootfs?: PathKind | "subvol";
  snapConfig?: PathKind;
  /** The snapshot's subvolume, when `snaps/<name>/rootfs` is one. */
  snapshot?: SnapshotSubvolume;
  /** The snapshot's `ts` file (LXC's "YYYY:MM:DD HH:MM:SS"). */
  ts: string;
  /** The nested subvolumes the snapshot holds (its `nested` file), relative to its rootfs. */
  snapNested: string[];
  /** The container's config. */
  config: string;
  /** Nested subvolumes inside the container's rootfs (only the full inspection walks the tree). */
  nested: string[];
  /** Set by make: how long the container was frozen (ns), and its state when the snapshot was taken. */
  frozenNs?: number;
  stateAtSnapshot?: string;
  /** Set by make and delete: they thawed a container a cut-short build had frozen / removed that build. */
  thawed: boolean;
  droppedBuild: boolean;
  /** Set by delete: "1" when it removed the snapshot, "none" when there was none. */
  deleted?: string;
}

const SECTIONS = ["@@config", "@@snap_show", "@@snap_ts", "@@snap_nested", "@@nested"];
const KINDS = new Set(["missing", "symlink", "dir", "file", "other"]);

function kind(v: string | undefined, extra: string[] = []): PathKind | undefined {
  if (v === undefined) return undefined;
  if (!KINDS.has(v) && !extra.includes(v)) throw new Error(`unrecognised path kind ${JSON.stringify(v)}`);
  return v as PathKind;
}

/** `btrfs subvolume show`'s "Creation time: 2026-12-07 15:40:01 +0000" as ISO 8601 (UTC). */
export function parseCreationTime(s: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s.trim());
  if (!m) throw new Error(`unrecognised creation time ${JSON.stringify(s)}`);
  return new Date(`${m[1]}T${m[2]}${m[3]}${m[4]}:${m[5]}`).toISOString();
}

/** The fields of `btrfs subvolume show` (btrfs-progs 5.x-6.x text) a snapshot's outputs need. */
export function parseSubvolumeShow(text: string): SnapshotSubvolume {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s+([A-Za-z ]+):\s*(.*)$/.exec(line);
    if (m && !fields.has(m[1])) fields.set(m[1], m[2].trim());
  }
  const base = parseSubvolumeFields(fields);
  const created = fields.get("Creation time");
  const flags = fields.get("Flags");
  if (created === undefined || flags === undefined) {
    throw new Error("unrecognised `btrfs subvolume show` output: no Creation time or Flags");
  }
  return {
    uuid: base.uuid,
    parentUuid: base.parentUuid,
    generation: base.generation,
    id: base.id,
    createdAt: parseCreationTime(created),
    readOnly: flags.split(/[\s,|]+/).includes("readonly"),
  };
}

export function parseSnapshotInspection(out: string): SnapshotInspection {
  const first = out.indexOf("@@config\0");
  if (first < 0) throw new Error("unrecognised snapshot inspection output");
  const kv = new Map<string, string>();
  const ct = new Map<string, string>();
  for (const line of out.slice(0, first).split("\n")) {
    if (!line) continue;
    const m = /^ct ([A-Za-z ]+)=(.*)$/.exec(line);
    if (m) {
      ct.set(m[1], m[2].trim());
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw new Error(`unrecognised snapshot inspection line ${JSON.stringify(line.slice(0, 100))}`);
    kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const sections = splitSections(out.slice(first), SECTIONS);
  const text = sections.text;
  const show = text("@@snap_show");
  const frozen = kv.get("frozen_ns");
  return {
    hasLxcFreeze: kv.get("has_lxc_freeze") === "1",
    containerDir: kind(kv.get("ct_dir")) ?? "missing",
    fstype: kv.get("ct_fstype"),
    state: kv.get("ct_state"),
    rootfs: kv.get("ct_subvol") === "1" ? parseSubvolumeFields(ct) : undefined,
    snaps: kind(kv.get("snaps")),
    making: kind(kv.get("making")),
    makingFrozen: kv.get("making_frozen") === "1",
    snapDir: kind(kv.get("snap_dir")),
    snapRootfs: kind(kv.get("snap_rootfs"), ["subvol"]),
    snapConfig: kind(kv.get("snap_config")),
    snapshot: show.trim() ? parseSubvolumeShow(show) : undefined,
    ts: text("@@snap_ts"),
    snapNested: text("@@snap_nested").split("\n").filter(Boolean),
    config: text("@@config"),
    nested: sections.items("@@nested").filter(Boolean),
    frozenNs: frozen === undefined ? undefined : Number(frozen),
    stateAtSnapshot: kv.get("state"),
    thawed: kv.get("thawed") === "1",
    droppedBuild: kv.get("dropped_build") === "1",
    deleted: kv.get("deleted"),
  };
}
