/**
 * Helpers of the cross-host clone tests (test/integration/xhost*.test.ts): the fleet's connections, the
 * inputs of a copy from one host to another, the names kept on each host, and a look at host state.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { type CloneInputs, cloneArgsSchema } from "../../provider/clone/inputs";
import { sentName, targetTag } from "../../provider/clone/xhost";
import { connectionSchema } from "../../provider/core/connection";
import { type FleetHost, loadInventory } from "./fleet";
import { hostSh, waitFor } from "./host";

export const inv = loadInventory();
export const host = (n: string) => inv.hosts.find((h) => h.name === n) as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath as string, "utf8");
/** The connection to a fleet host as root (key login, the fleet's known_hosts). */
export const connTo = (h: FleetHost) => ({
  host: h.address,
  privateKey: key,
  knownHostsPath: inv.knownHostsPath,
});
export const L = "/var/lib/lxc";

/** The inputs of a copy of `source` on `from` (h1) to `to` (h2) as `name`. */
export function args(
  source: string,
  name: string,
  extra: Partial<CloneInputs> = {},
  to = host("h2"),
  from = host("h1"),
): CloneInputs {
  return cloneArgsSchema.parse({
    connection: connTo(to),
    sourceConnection: connTo(from),
    source,
    name,
    ...extra,
  });
}

/** The target's tag in the names kept on the source (see provider/clone/xhost.ts). */
export const tagOf = (h: FleetHost) => targetTag(connectionSchema.parse(connTo(h)), L);
/** The directory of the sent snapshot kept on the source for the clone `name` on `to`. */
export const sentDir = (src: string, name: string, to = host("h2")) =>
  `${L}/${src}/snaps/${sentName(tagOf(to), name)}`;

/** `btrfs subvolume show` fields of a path on a host, and `ro` (`ro=true` or `ro=false`). */
export async function subvol(h: FleetHost, path: string): Promise<Record<string, string>> {
  const out = await hostSh(h, 'btrfs subvolume show "$1"', path);
  const f: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^\s*([A-Za-z ]+):\s*(.*)$/.exec(line);
    if (m) f[m[1]] = m[2].trim();
  }
  f.ro = (await hostSh(h, 'btrfs property get -ts "$1" ro', path)).trim();
  return f;
}

/** Whether the path exists on the host (a dangling symlink does). */
export const exists = async (h: FleetHost, path: string) =>
  (await hostSh(h, '[ -e "$1" ] || [ -L "$1" ] && echo yes || echo no', path)).trim() === "yes";

/** sha256sum of a file on the host. */
export const sum = (h: FleetHost, f: string) => hostSh(h, 'sha256sum <"$1"', f);

/**
 * A provider method (create, update) in a node process of its own (a provider process), so that it can be
 * SIGKILLed. `done` says how it ended: "succeeded", or "failed (CODE or SIGNAL)".
 */
export function providerCall(
  method: "create" | "update",
  params: unknown[],
): { kill: () => void; done: Promise<string> } {
  const mod = path.resolve(__dirname, "../../provider/clone/provider.js");
  const code = `require(${JSON.stringify(mod)}).${method}(...JSON.parse(process.argv[1])).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); })`;
  const child = spawn(process.execPath, ["-e", code, JSON.stringify(params)], { stdio: "ignore" });
  const done = new Promise<string>((resolve) =>
    child.on("exit", (c, sig) => resolve(c === 0 ? "succeeded" : `failed (${c ?? sig})`)),
  );
  return { kill: () => child.kill("SIGKILL"), done };
}

/** A create in a provider process of its own (providerCall). */
export const providerChild = (inputs: CloneInputs) => providerCall("create", [inputs]);

/** Waits until the file a receive is writing on the host has grown past `mib` MiB (2 minutes at most). */
export const receivedPast = (h: FleetHost, file: string, mib: number) =>
  waitFor(
    `${file} to grow`,
    async () =>
      Number((await hostSh(h, 'stat -c %s "$1" 2>/dev/null || echo 0', file)).trim()) > mib * 2 ** 20,
    120_000,
  );

/** Whether a manifest line is one the identity rewrite changes: /etc/hostname, /etc/hosts, and /etc itself. */
export const rewritten = (line: string) => /^(etc|etc\/hostname|etc\/hosts)\t/.test(line);
