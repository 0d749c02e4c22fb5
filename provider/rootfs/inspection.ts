/**
 * Parsers for what the inspect scripts print, pure. They fail closed: output we do not recognise is an
 * error, never a guess (btrfs-progs 6.2, the version tested, has no JSON output).
 */
import { CONTAINER_NAME } from "../core/inputs";
import { type BackingStore, classifyBackingStore, findRootfsLines } from "../host/lxc-config";
import { parseSubvolumeFields, type SubvolumeInfo, unescapeMountinfo } from "../host/subvolume";

export interface Journal {
  op: "convert" | "revert" | "restore";
  /** A restore's snapshot name (snaps/<name>). */
  snapshot?: string;
  /** precopying and catching-up: the two phases of a live conversion before its verification. */
  phase: "copying" | "precopying" | "catching-up" | "swapping" | "swapped";
  wasRunning: boolean;
}

export interface RootfsInspection {
  btrfsVersion: string;
  lxcVersion: string;
  hasLxcCopy: boolean;
  hasGetfattr: boolean;
  containerDir: "present" | "missing";
  fstype?: string;
  availBytes?: number;
  rootfs?: "dir" | "symlink" | "other" | "missing";
  rootfsIsSubvolume: boolean;
  /** lsattr's flags of the rootfs directory itself ("" when unknown). */
  rootfsFlags: string;
  exists: Record<string, boolean>;
  state: string;
  subvolume?: SubvolumeInfo;
  files?: number;
  bytes?: number;
  nested: string[];
  mounts: string[];
  journal?: Journal;
  /** The config text, or null when missing or unreadable. */
  config: string | null;
}

const SECTIONS = ["@@nested", "@@mounts", "@@journal", "@@config"] as const;

export function parseRootfsInspection(out: string): RootfsInspection {
  const first = out.indexOf("@@nested\0");
  const head = first < 0 ? out : out.slice(0, first);
  const kv = new Map<string, string>();
  const sub = new Map<string, string>();
  for (const line of head.split("\n")) {
    if (!line) continue;
    const m = /^subvol ([A-Za-z ]+)=(.*)$/.exec(line);
    if (m) {
      sub.set(m[1], m[2].trim());
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw new Error(`unrecognised inspection output line: ${JSON.stringify(line.slice(0, 100))}`);
    kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const need = (k: string) => {
    const v = kv.get(k);
    if (v === undefined) throw new Error(`inspection output lacks ${k}`);
    return v;
  };
  const insp: RootfsInspection = {
    btrfsVersion: kv.get("btrfs_version") ?? "",
    lxcVersion: kv.get("lxc_version") ?? "",
    hasLxcCopy: kv.get("has_lxc_copy") === "1",
    hasGetfattr: kv.get("has_getfattr") === "1",
    containerDir: need("container_dir") === "present" ? "present" : "missing",
    rootfsIsSubvolume: false,
    rootfsFlags: "",
    exists: {},
    state: kv.get("state") ?? "UNKNOWN",
    nested: [],
    mounts: [],
    config: null,
  };
  if (insp.containerDir === "missing") return insp;
  insp.fstype = need("fstype");
  insp.availBytes = Number(need("avail_bytes"));
  insp.rootfs = need("rootfs") as RootfsInspection["rootfs"];
  insp.rootfsIsSubvolume = insp.fstype === "btrfs" && insp.rootfs === "dir" && kv.get("rootfs_ino") === "256";
  insp.rootfsFlags = kv.get("rootfs_flags") ?? "";
  for (const [k, v] of kv) if (k.startsWith("exists_")) insp.exists[k.slice(7)] = v === "1";
  if (kv.has("files")) insp.files = Number(kv.get("files"));
  if (kv.has("bytes")) insp.bytes = Number(kv.get("bytes"));
  if (insp.rootfsIsSubvolume) insp.subvolume = parseSubvolumeFields(sub);
  const sections = splitSections(out.slice(first));
  insp.nested = sections["@@nested"].filter(Boolean);
  insp.mounts = sections["@@mounts"].filter(Boolean).map(unescapeMountinfo);
  insp.journal = parseJournal(sections["@@journal"].join(""));
  const cfg = sections["@@config"].join("\0");
  insp.config = cfg === "@@unreadable" ? null : cfg;
  return insp;
}

function splitSections(rest: string): Record<(typeof SECTIONS)[number], string[]> {
  const items = rest.split("\0");
  const out = {} as Record<(typeof SECTIONS)[number], string[]>;
  let current: (typeof SECTIONS)[number] | undefined;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if ((SECTIONS as readonly string[]).includes(item) && (current === undefined || current !== "@@config")) {
      current = item as (typeof SECTIONS)[number];
      out[current] = [];
      continue;
    }
    if (!current) throw new Error("inspection output lacks its sections");
    out[current].push(item);
  }
  for (const s of SECTIONS) if (!out[s]) throw new Error(`inspection output lacks section ${s}`);
  return out;
}

export function parseJournal(text: string): Journal | undefined {
  if (!text.trim()) return undefined;
  const m = new Map(
    text
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
  );
  const op = m.get("op");
  const phase = m.get("phase");
  if (
    (op !== "convert" && op !== "revert" && op !== "restore") ||
    !["copying", "precopying", "catching-up", "swapping", "swapped"].includes(phase as string) ||
    (op === "restore" && !["copying", "swapping", "swapped"].includes(phase as string))
  ) {
    throw new Error(`unrecognised journal ${JSON.stringify(text.slice(0, 200))}`);
  }
  const journal: Journal = { op, phase: phase as Journal["phase"], wasRunning: m.get("was_running") === "1" };
  if (op === "restore") {
    const snapshot = m.get("snapshot") ?? "";
    if (!CONTAINER_NAME.test(snapshot) || snapshot.includes(".."))
      throw new Error(`unrecognised journal ${JSON.stringify(text.slice(0, 200))}: bad snapshot name`);
    journal.snapshot = snapshot;
  }
  return journal;
}

/** The backing store the config names, for outputs; "missing" when there is no usable line. */
export function configBackingStore(config: string | null): BackingStore | "missing" {
  if (config === null) return "missing";
  const lines = findRootfsLines(config).filter((l) => l.key === "lxc.rootfs.path");
  return lines.length === 1 ? classifyBackingStore(lines[0].value) : "missing";
}
