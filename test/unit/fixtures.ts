/** Where the unit tests find the real-output fixtures captured by test/fixtures/capture.sh. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../support/repo";

/** The repository root (tests run compiled from dist/test/unit). */
export const ROOT = repoRoot();

/** A fixture's text exactly as a provider would receive it from SSH (UTF-8, NULs kept). */
export function fixture(name: string): string {
  return readFileSync(join(ROOT, "test", "fixtures", name), "utf8");
}

/** A fixture's bytes as received, for output framed by byte counts. */
export function fixtureBytes(name: string): Buffer {
  return readFileSync(join(ROOT, "test", "fixtures", name));
}

/** The temporary directory the capture run used; the fixtures name paths under it. */
export const CAPTURE = "/tmp/plb-capture.tuqxOG";
/** lxcPath of the containers on the capture run's loop-mounted btrfs. */
export const CAP_LXC = `${CAPTURE}/mnt/lxc`;
/** lxcPath of the capture run's container on ext4. */
export const CAP_EXT_LXC = `${CAPTURE}/ext/lxc`;

/**
 * The config lxc-create -t busybox wrote for a container of the capture run, rebuilt independently from the
 * two captured template configs (with and without -f def.conf, which adds lxc.net.1 and a hwaddr).
 */
export function busyboxConfig(lxcPath: string, name: string, store: "dir" | "btrfs", mac?: string): string {
  if (mac) {
    return fixture("lxc-config-busybox-hwaddr.txt")
      .replace(`dir:${CAPTURE}/cfg/cap2/rootfs`, `${store}:${lxcPath}/${name}/rootfs`)
      .replace('"cap2"', `"${name}"`)
      .replace("00:16:3e:e2:98:bc", mac);
  }
  return fixture("lxc-config-busybox.txt")
    .replace(`dir:${CAPTURE}/cfg/cap1/rootfs`, `${store}:${lxcPath}/${name}/rootfs`)
    .replace('"cap1"', `"${name}"`);
}

/** A deterministic PRNG (mulberry32), so random property tests are reproducible from their seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * lxcPath of the capture run of `capture.sh rounds` (another run, so other paths): the command sequences of
 * a conversion and of clones as the providers send them.
 */
export const ROUNDS_LXC = "/tmp/plb-capture.ym700g/mnt/lxc";

/** lxcPath of the capture run of `capture.sh clone-rounds`: the clones' part of the rounds, captured again. */
export const CLONE_ROUNDS_LXC = "/tmp/plb-capture.nsWmiR/mnt/lxc";

/** lxcPath of the capture run of `capture.sh snapshot`: snapshot.sh's inspections, makes and delete. */
export const SNAP_LXC = "/tmp/plb-capture.QIfIKO/mnt/lxc";

/** The capture run's snapshot clone cl of the subvolume container sv: their subvolume UUIDs, MACs and configs. */
export const SV_UUID = "451b3e71-7255-7642-9e24-3d0cf12faf54";
export const CL_UUID = "d557aa90-1888-a143-9253-252d5036c78b";
export const SV_MAC = "00:16:3e:1d:8b:5f";
export const CL_MAC = "00:16:3e:32:4f:ee";
export const HWADDRS: [string, string][] = [
  ["cl", CL_MAC],
  ["d1", "00:16:3e:c0:33:b9"],
  ["j1", "00:16:3e:ce:e9:b1"],
  ["n1", "00:16:3e:4d:46:9a"],
  ["sv", SV_MAC],
];
export const SV_CONFIG = busyboxConfig(CAP_LXC, "sv", "btrfs", SV_MAC);
/** What lxc-copy (LXC 5.0.2) made of sv's config: blank lines dropped, new MAC, rootfs and uts.name moved to the end. */
export const CL_CONFIG = `${SV_CONFIG.split("\n")
  .filter((l) => l !== "" && !l.startsWith("lxc.rootfs.path") && !l.startsWith("lxc.uts.name"))
  .map((l) => l.replace(SV_MAC, CL_MAC))
  .join("\n")}\nlxc.rootfs.path = btrfs:${CAP_LXC}/cl/rootfs\nlxc.uts.name = cl\n`;
