/**
 * Helpers shared by the integration and e2e tests that work on fleet hosts: shell scripts on a host,
 * container cleanup, expected failures and polling.
 */
import { type FleetHost, hostExec } from "./fleet";

/** Runs `script` with `sh -c` on the host, `args` as `$1`, `$2`, ...; its stdout, or throws on a non-zero exit. */
export async function hostSh(host: FleetHost, script: string, ...args: string[]): Promise<string> {
  const r = await hostExec(host, ["sh", "-c", script, "sh", ...args]);
  if (r.code !== 0) throw new Error(`${host.name}: ${script}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Removes containers from the host, whatever state they are in: stops them (`lxc-stop -k`), deletes
 * every subvolume below the container directory (nested ones first), clears immutable and append-only
 * flags on what is left (rm cannot remove those), then removes the directory itself.
 */
export async function destroyContainers(host: FleetHost, ...names: string[]): Promise<void> {
  for (const n of names) {
    await hostSh(
      host,
      'lxc-stop -k -n "$1" >/dev/null 2>&1; d=/var/lib/lxc/$1; [ -d "$d" ] || exit 0; find "$d" -mindepth 1 -depth -type d -inum 256 -exec btrfs subvolume delete {} + >/dev/null 2>&1; find "$d" \\( -type f -o -type d \\) -exec chattr -i -a {} + 2>/dev/null; rm -rf "$d"',
      n,
    );
  }
}

/** Config lines that give a container no network, so that `lxc-start` needs no bridge. */
export const NO_NETWORK = "lxc.net.0.type = empty\n";

/**
 * A fresh busybox container NAME on the host, made the way users make one (`lxc-create -t busybox`, a
 * `dir:` rootfs) after destroying any container of that name, with `extraConfig` appended to its config.
 */
export async function makeBusybox(host: FleetHost, name: string, extraConfig = ""): Promise<void> {
  await hostSh(
    host,
    'lxc-destroy -n "$1" >/dev/null 2>&1; lxc-create -n "$1" -t busybox >/dev/null 2>&1 && printf "%s" "$2" >>"/var/lib/lxc/$1/config"',
    name,
    extraConfig,
  );
}

/**
 * Containers NAMES on the host that are already converted (a subvolume rootfs with a btrfs: config): btrfs
 * snapshots of one busybox container made with `lxc-create -B btrfs` under the name TEMPLATE, which is
 * removed again. Seconds for hundreds, where converting each would take minutes.
 */
export async function makeConvertedContainers(
  host: FleetHost,
  template: string,
  names: string[],
): Promise<void> {
  await hostSh(
    host,
    `set -e; cd /var/lib/lxc; t=$1; shift
lxc-destroy -n $t >/dev/null 2>&1 || true
lxc-create -n $t -t busybox -B btrfs >/dev/null 2>&1
for n in "$@"; do
  mkdir "$n"; btrfs subvolume snapshot $t/rootfs "$n/rootfs" >/dev/null
  sed "s#/var/lib/lxc/$t/#/var/lib/lxc/$n/#; s#^lxc.uts.name = .*#lxc.uts.name = $n#" $t/config >"$n/config"
done
lxc-destroy -n $t >/dev/null`,
    template,
    ...names,
  );
}

/** The message of the error `p` rejects with; throws "expected a rejection" if it resolves instead. */
export async function rejectionOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a rejection");
}

/** Polls `cond` every 50 ms until it holds; throws "timed out waiting for WHAT" after `ms`. */
export async function waitFor(what: string, cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Where the remote scripts' failpoints live: `/run/plb-hold/NAME.POINT` (prelude.sh `hold`). */
export const HOLD = "/run/plb-hold";

/**
 * The failpoint NAME.POINT on the host: `set` makes the scripts wait there, `reached` waits (2 minutes at
 * most) until one does, `release` lets it go on.
 */
export function failpoint(host: FleetHost, name: string, point: string) {
  const file = `${HOLD}/${name}.${point}`;
  return {
    set: () => hostSh(host, 'mkdir -p "$1" && rm -f "$2.reached" && : >"$2"', HOLD, file),
    reached: () =>
      waitFor(
        `${file}.reached`,
        async () => (await hostSh(host, '[ -e "$1.reached" ] && echo y || true', file)) === "y\n",
        120_000,
      ),
    release: () => hostSh(host, 'rm -f "$1" "$1.reached"', file),
  };
}
