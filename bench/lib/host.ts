/**
 * Host-side helpers for the benchmark: shell on a fleet host (no SSH, via nsenter), timings taken on the
 * host itself with `date +%s%N`, BTRFS space usage, and bench- container lifecycle.
 */
import { type FleetHost, hostExec } from "../../test/support/fleet";

export const LXC = "/var/lib/lxc";
/** Every container this benchmark makes starts with this; cleanup removes exactly these. */
export const PREFIX = "bench-";

/** Runs a POSIX sh script on the host with positional args; rejects with stderr unless it exits 0. */
export async function sh(host: FleetHost, script: string, ...args: string[]): Promise<string> {
  const r = await hostExec(host, ["sh", "-c", script, "sh", ...args], {
    env: { ...process.env, LC_ALL: "C" },
  });
  if (r.code !== 0)
    throw new Error(`${host.name}: exit ${r.code}: ${script.slice(0, 200)}\n${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Runs a script on the host that calls `mark` at the points to time; returns the intervals between
 * consecutive marks in ms, measured on the host (no nsenter or SSH overhead). A mark is taken before the
 * script starts. `code` is the script's exit status (it runs with `set -e` only if it says so).
 */
export async function timedOnHost(
  host: FleetHost,
  script: string,
  ...args: string[]
): Promise<{ intervals: number[]; code: number | null; stderr: string }> {
  const wrapped = `mark() { printf '@@mark %s\\n' "$(date +%s%N)"; }\nmark\n${script}`;
  const r = await hostExec(host, ["sh", "-c", wrapped, "sh", ...args], {
    env: { ...process.env, LC_ALL: "C" },
  });
  const marks = [...r.stdout.matchAll(/^@@mark (\d+)$/gm)].map((m) => BigInt(m[1]));
  const intervals = marks.slice(1).map((t, i) => Number(t - marks[i]) / 1e6);
  return { intervals, code: r.code, stderr: r.stderr };
}

/**
 * Commit, wait for deleted subvolumes to be cleaned, commit again. Deleted subvolumes are freed by a
 * background cleaner that otherwise wakes at the next periodic commit (up to 30 s later);
 * `btrfs filesystem sync` (BTRFS_IOC_SYNC) commits and wakes it, so `subvolume sync` returns promptly.
 */
const SETTLE = `btrfs filesystem sync ${LXC} >/dev/null; btrfs subvolume sync ${LXC} >/dev/null; btrfs filesystem sync ${LXC} >/dev/null`;

/** Waits until everything is on disk and deleted subvolumes are gone, so the next timing starts quiet. */
export async function settle(host: FleetHost): Promise<void> {
  await sh(host, SETTLE);
}

export interface SpaceUsage {
  data: number;
  metadata: number;
}

/** Data and metadata bytes used on the host's /var/lib/lxc after everything is on disk. */
export async function spaceUsage(host: FleetHost): Promise<SpaceUsage> {
  const out = await sh(host, `${SETTLE}; btrfs filesystem df -b ${LXC}`);
  const used = (kind: string) => {
    const m = new RegExp(`^${kind}, [^:]+: total=\\d+, used=(\\d+)$`, "m").exec(out);
    if (!m) throw new Error(`${host.name}: cannot parse btrfs filesystem df for ${kind}:\n${out}`);
    return Number(m[1]);
  };
  return { data: used("Data"), metadata: used("Metadata") };
}

/** Stops and removes one container, its subvolumes (deepest first) included. Absent is fine. */
export async function destroy(host: FleetHost, name: string): Promise<void> {
  if (!name.startsWith(PREFIX)) throw new Error(`refusing to destroy ${name}: not a ${PREFIX} container`);
  await sh(
    host,
    'lxc-stop -k -n "$1" >/dev/null 2>&1; d=/var/lib/lxc/$1; [ -d "$d" ] || exit 0; find "$d" -depth -type d -inum 256 -exec btrfs subvolume delete {} + >/dev/null 2>&1; rm -rf "$d"',
    name,
  );
}

/** Removes every bench- container on the host; returns their names. */
export async function destroyAll(host: FleetHost, prefix = PREFIX): Promise<string[]> {
  if (!prefix.startsWith(PREFIX)) throw new Error(`refusing to clean ${prefix}*: not under ${PREFIX}`);
  const names = (
    await sh(host, 'cd /var/lib/lxc && for d in "$1"*; do [ -e "$d" ] && echo "$d"; done; true', prefix)
  )
    .split("\n")
    .filter(Boolean);
  for (const n of names) await destroy(host, n);
  await settle(host);
  return names;
}

/**
 * A fresh container NAME from template TPL by reflink copy (no data blocks copied), with its config
 * renamed and its rootfs line set to a plain `dir:` rootfs.
 */
export async function cloneTemplate(host: FleetHost, tpl: string, name: string): Promise<void> {
  if (!name.startsWith(PREFIX)) throw new Error(`${name}: bench containers start with ${PREFIX}`);
  await sh(
    host,
    `set -e; cd /var/lib/lxc; [ ! -e "$2" ] || { echo "$2 exists" >&2; exit 1; }
cp -a --reflink=always "$1" "$2"
sed -i -e "s|/var/lib/lxc/$1/|/var/lib/lxc/$2/|g" -e "s|^lxc.uts.name = .*|lxc.uts.name = $2|" \
  -e "s|^lxc.rootfs.path = .*|lxc.rootfs.path = dir:/var/lib/lxc/$2/rootfs|" "$2/config"`,
    tpl,
    name,
  );
}

/** Several containers from one template in one host call. */
export async function cloneTemplateMany(host: FleetHost, tpl: string, names: string[]): Promise<void> {
  for (const n of names)
    if (!n.startsWith(PREFIX)) throw new Error(`${n}: bench containers start with ${PREFIX}`);
  await sh(
    host,
    `set -e; cd /var/lib/lxc; tpl=$1; shift
for n in "$@"; do
  [ ! -e "$n" ] || { echo "$n exists" >&2; exit 1; }
  cp -a --reflink=always "$tpl" "$n"
  sed -i -e "s|/var/lib/lxc/$tpl/|/var/lib/lxc/$n/|g" -e "s|^lxc.uts.name = .*|lxc.uts.name = $n|" \
    -e "s|^lxc.rootfs.path = .*|lxc.rootfs.path = dir:/var/lib/lxc/$n/rootfs|" "$n/config"
done`,
    tpl,
    ...names,
  );
}

/** A busybox container with a plain dir: rootfs, made the way users do (offline template). */
export async function createBusybox(host: FleetHost, name: string): Promise<void> {
  await destroy(host, name);
  await sh(
    host,
    'lxc-create -n "$1" -t busybox >/dev/null 2>&1 || { lxc-create -l ERROR -n "$1" -t busybox; exit 1; }; grep -q "^lxc.net.0.type" "/var/lib/lxc/$1/config" || printf "lxc.net.0.type = empty\\n" >>"/var/lib/lxc/$1/config"',
    name,
  );
}

/** Entries below rootfs (the top directory not counted), and the bytes of regular files. */
export async function treeSize(host: FleetHost, name: string): Promise<{ entries: number; bytes: number }> {
  const out = await sh(
    host,
    `find "/var/lib/lxc/$1/rootfs" -mindepth 1 -printf '%y %s\\n' | awk '{n++; if ($1 == "f") b += $2} END {printf "%d %.0f\\n", n, b}'`,
    name,
  );
  const [entries, bytes] = out.trim().split(" ").map(Number);
  return { entries, bytes };
}
