/**
 * LXC container config text, pure. We read and rewrite exactly one kind of line, `lxc.rootfs.path`, and
 * leave every other byte alone. On LXC >= 2.1 the prefix of that value picks the storage driver: a subvolume
 * only snapshots when the config says `btrfs:` (lxc.container.conf(5)).
 */

export type BackingStore = "btrfs" | "dir" | "overlay" | "bare" | "other";

export interface RootfsLine {
  /** Index of the line in `text.split("\n")`. */
  index: number;
  key: string;
  value: string;
}

const ROOTFS_LINE = /^\s*(lxc\.rootfs\.path|lxc\.rootfs)\s*=\s*(.*?)\s*$/;

/** Every rootfs line, including the legacy `lxc.rootfs` key that LXC 3.0 dropped. */
export function findRootfsLines(text: string): RootfsLine[] {
  const out: RootfsLine[] = [];
  text.split("\n").forEach((line, index) => {
    const m = ROOTFS_LINE.exec(line);
    if (m) out.push({ index, key: m[1], value: unquote(m[2]) });
  });
  return out;
}

/**
 * LXC strips one pair of matching quotes around a value (`lxc.uts.name = "c1"` is c1; the busybox
 * template writes it that way), so we read values the same way.
 */
export function unquote(value: string): string {
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value[value.length - 1] === value[0]) {
    return value.slice(1, -1);
  }
  return value;
}

export function classifyBackingStore(value: string): BackingStore {
  if (value.startsWith("btrfs:")) return "btrfs";
  if (value.startsWith("dir:")) return "dir";
  if (value.startsWith("overlay:") || value.startsWith("overlayfs:")) return "overlay";
  if (value.startsWith("/")) return "bare";
  return "other";
}

/** The filesystem path a `dir:`, `btrfs:` or bare value points at; undefined for other drivers. */
export function rootfsPathOf(value: string): string | undefined {
  const store = classifyBackingStore(value);
  if (store === "btrfs" || store === "dir") return value.slice(value.indexOf(":") + 1);
  if (store === "bare") return value;
  return undefined;
}

/** Replaces the value of the rootfs line at `index`, keeping every other byte of the file. */
export function rewriteRootfsLine(text: string, index: number, value: string): string {
  const lines = text.split("\n");
  // A CRLF file keeps its CR on the rewritten line too.
  lines[index] = `lxc.rootfs.path = ${value}${lines[index].endsWith("\r") ? "\r" : ""}`;
  return lines.join("\n");
}

export type RootfsConfigVerdict =
  | { ok: true; line: RootfsLine; store: BackingStore }
  | { ok: false; problem: string };

/** Checks that the config has exactly one modern rootfs line that points at `expectedPath`. */
export function checkRootfsConfig(text: string, expectedPath: string): RootfsConfigVerdict {
  const lines = findRootfsLines(text);
  const legacy = lines.filter((l) => l.key === "lxc.rootfs");
  if (legacy.length > 0) {
    return {
      ok: false,
      problem:
        "the config uses the legacy key lxc.rootfs (LXC < 3.0); convert it with lxc-update-config -c <config> and run again",
    };
  }
  if (lines.length === 0) return { ok: false, problem: "the config has no lxc.rootfs.path line" };
  if (lines.length > 1) {
    return {
      ok: false,
      problem: `the config has ${lines.length} lxc.rootfs.path lines (lines ${lines.map((l) => l.index + 1).join(", ")}); keep exactly one and run again`,
    };
  }
  const line = lines[0];
  const store = classifyBackingStore(line.value);
  const path = rootfsPathOf(line.value);
  if (path === undefined) {
    return {
      ok: false,
      problem: `lxc.rootfs.path = ${line.value} uses a backing store this resource does not convert`,
    };
  }
  if (path.replace(/\/+$/, "") !== expectedPath) {
    return {
      ok: false,
      problem: `lxc.rootfs.path points at ${path}, not at ${expectedPath}; only the standard layout is supported`,
    };
  }
  return { ok: true, line, store };
}

/** Values of every `lxc.net.N.hwaddr` line, in file order. */
export function findHwaddrs(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*lxc\.net\.\d+\.hwaddr\s*=\s*(\S+)\s*$/.exec(line);
    if (m) out.push(m[1].toLowerCase());
  }
  return out;
}

/** The value of a single-valued key, or undefined. */
export function getConfigValue(text: string, key: string): string | undefined {
  const re = new RegExp(`^\\s*${key.replace(/\./g, "\\.")}\\s*=\\s*(.*?)\\s*$`);
  let value: string | undefined;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (m) value = unquote(m[1]);
  }
  return value;
}
