/** What clone.sh's `inspect` prints about a source and its clone, parsed. Pure; fails closed. */
import { splitSections } from "../host/sections";
import { parseSubvolumeFields, type SubvolumeInfo } from "../host/subvolume";

export interface SideInfo {
  dir: "present" | "missing";
  fstype?: string;
  state?: string;
  isSubvolume: boolean;
  subvolume?: SubvolumeInfo;
}

export interface CloneInspection {
  /** A create of this clone started (make) and has not finished (finish): what is there is ours, unfinished. */
  making: boolean;
  hasLxcCopy: boolean;
  hasLxcClone: boolean;
  source: SideInfo;
  clone: SideInfo;
  /** [container, mac] for every hwaddr line under lxcPath (empty in the inspection that ends finish). */
  hwaddrs: [string, string][];
  sourceConfig: string;
  cloneConfig: string;
  cloneHostname: string;
  cloneHosts: string;
  /**
   * Nested subvolumes of the source rootfs, relative paths. Only the inspection of the `inspect` op looks
   * (it walks the source tree); the ones that end make and finish leave this empty, as they leave out the
   * source's fstype and state, the clone's fstype and, after finish, the MACs, the source's config and the
   * clone's identity files: what the provider does not read after those ops (clone.sh op_inspect).
   */
  nested: string[];
}

const SECTIONS = [
  "@@hwaddrs",
  "@@source_config",
  "@@clone_config",
  "@@clone_hostname",
  "@@clone_hosts",
  "@@nested",
];

export function parseCloneInspection(out: string): CloneInspection {
  const first = out.indexOf("@@hwaddrs\0");
  if (first < 0) throw new Error("unrecognised clone inspection output");
  const kv = new Map<string, string>();
  const sub = { source: new Map<string, string>(), clone: new Map<string, string>() };
  for (const line of out.slice(0, first).split("\n")) {
    if (!line) continue;
    const m = /^(source|clone) ([A-Za-z ]+)=(.*)$/.exec(line);
    if (m) {
      sub[m[1] as "source" | "clone"].set(m[2], m[3].trim());
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`unrecognised clone inspection line ${JSON.stringify(line.slice(0, 100))}`);
    kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const side = (s: "source" | "clone"): SideInfo => {
    const info: SideInfo = {
      dir: kv.get(`${s}_dir`) === "present" ? "present" : "missing",
      isSubvolume: kv.get(`${s}_subvol`) === "1",
    };
    if (info.dir === "present") {
      info.fstype = kv.get(`${s}_fstype`);
      info.state = kv.get(`${s}_state`);
      if (info.isSubvolume) info.subvolume = parseSubvolumeFields(sub[s]);
    }
    return info;
  };
  const sections = splitSections(out.slice(first), SECTIONS);
  const text = sections.text;
  return {
    making: kv.get("making") === "1",
    hasLxcCopy: kv.get("has_lxc_copy") === "1",
    hasLxcClone: kv.get("has_lxc_clone") === "1",
    source: side("source"),
    clone: side("clone"),
    // "NAME MAC" lines, one item of newline-separated lines (or, as older scripts print it, an item each).
    hwaddrs: sections
      .items("@@hwaddrs")
      .flatMap((x) => x.split("\n"))
      .filter(Boolean)
      .map((x) => {
        const sp = x.indexOf(" ");
        return [x.slice(0, sp), x.slice(sp + 1).toLowerCase()] as [string, string];
      }),
    sourceConfig: text("@@source_config"),
    cloneConfig: text("@@clone_config"),
    cloneHostname: text("@@clone_hostname").trim(),
    cloneHosts: text("@@clone_hosts"),
    nested: sections.items("@@nested").filter(Boolean),
  };
}
