/**
 * Test helpers for the local fleet of real hosts built by `scripts/fleet/up.sh` (`npm run fleet:up`).
 *
 * Each host is a network namespace + private mount namespace on this machine, with a real sshd and
 * real LXC containers; `inventory.json` in the fleet dir describes it. These helpers run as root and
 * use Node built-ins only.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { repoRoot } from "./repo";

/** One SSH identity of the fleet (see the `users` section of the inventory). */
export interface FleetUser {
  /** Login name on every host. */
  user: string;
  /** OpenSSH private key file (mode 0600). */
  privateKeyPath?: string;
  /** File holding the passphrase of `privateKeyPath` (no trailing newline). */
  passphrasePath?: string;
  /** File holding the login password (no trailing newline). */
  passwordPath?: string;
  /** The user may use sudo. */
  sudo?: boolean;
  /** sudo asks for the user's password (otherwise NOPASSWD). */
  sudoNeedsPassword?: boolean;
}

/** A container that `up.sh` creates on a host (stopped, `dir:` rootfs). */
export interface FleetContainer {
  name: string;
  /**
   * `busybox`: `lxc-create -t busybox`; `debian`: debootstrap minbase via `lxc-create -t local`;
   * `systemd`: the same with systemd and systemd-sysv, booted once (see `booted`).
   */
  kind: "busybox" | "debian" | "systemd";
  /** Can be started with `lxc-start` (Debian minbase has no init). */
  startable: boolean;
  /** Was booted once by up.sh with its own init (systemd), its journal rotated, then stopped. */
  booted: boolean;
}

/** One fleet host. */
export interface FleetHost {
  name: string;
  /** IPv4 address of the host's sshd (port 22). */
  address: string;
  port: number;
  /** Network namespace name (`ip netns`). */
  netns: string;
  /** Root-namespace end of the host's veth (a port of the bridge). */
  vethRoot: string;
  /** Host-side end of the veth. */
  vethHost: string;
  /** Filesystem of the host's `lxcPath`. */
  fs: "btrfs" | "ext4";
  lxcPath: string;
  /** Loop-mounted image file behind `lxcPath`, and its pristine copy (`up.sh --reset`). */
  image: string;
  pristineImage: string;
  /** Pid file of the long-lived process that owns the host's namespaces. */
  holderPidFile: string;
  sshdPidFile: string;
  sshdConfig: string;
  /** sshd log (LogLevel VERBOSE), see {@link countAccepted}. */
  sshdLog: string;
  /** Host public keys as `type base64`. */
  hostKeys: string[];
  containers: FleetContainer[];
}

/** The fleet's PostgreSQL server: loopback only, TLS with a self-signed certificate, one role and database. */
export interface FleetPostgres {
  /** `postgres://USER@HOST:PORT/DB?sslmode=verify-full&sslrootcert=...`, no password (PGPASSWORD holds it). */
  url: string;
  host: string;
  port: number;
  database: string;
  user: string;
  /** Root-only file holding the role's password (no trailing newline). */
  passwordPath: string;
  /** The server's certificate, also the clients' root certificate. */
  rootCertPath: string;
  dataDir: string;
  /** The server's log. */
  log: string;
}

/** The parsed `inventory.json` written by `scripts/fleet/up.sh`. */
export interface Inventory {
  version: 1;
  fleetDir: string;
  /** known_hosts with plain `10.213.0.1x` names for every host key. */
  knownHostsPath: string;
  /** Same entries, hashed (`ssh-keygen -H`). */
  hashedKnownHostsPath: string;
  cacheDir: string;
  debianTarball: string;
  bridge: { name: string; address: string; cidr: string };
  /** The fleet's PostgreSQL server, the shared Pulumi state backend (scripts/fleet/postgres.sh). */
  postgres: FleetPostgres;
  users: {
    /** root, key login. */
    root: FleetUser;
    /** plbadmin, key login, passwordless sudo. */
    admin: FleetUser;
    /** plbadmin with a passphrase-protected key. */
    encrypted: FleetUser;
    /** plbadmin with an RSA key in PEM format. */
    rsa: FleetUser;
    /** plbpass, password login, sudo asks for the password. */
    password: FleetUser;
  };
  hosts: FleetHost[];
}

/**
 * Name globs of the containers that the integration and e2e tests and the benchmarks make on the fleet's
 * hosts, besides the ones `up.sh` creates: a rollout over the whole fleet (the demo, examples/fleet)
 * excludes them so that it does not convert another run's containers.
 */
export const TEST_CONTAINER_GLOBS = ["*-clone", "it-*", "ct-*", "e2e-*", "bench-*", "live-*"];

/** A host given by name (`"h1"`) or as an inventory entry. */
export type HostRef = string | FleetHost;

/** Result of a process run by {@link hostExec} or {@link run}. */
export interface ExecResult {
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout decoded as UTF-8. */
  stdout: string;
  stderr: string;
  /** stdout as raw bytes. */
  stdoutBytes: Buffer;
}

/** Options of {@link hostExec} and {@link run}. */
export interface ExecOptions {
  /** Written to the process's stdin (stdin is closed either way). */
  input?: string | Buffer;
  /** Kill the process (SIGKILL) and reject after this many ms. Default: no limit. */
  timeoutMs?: number;
  /** Working directory, on the host for {@link hostExec}. Default `/`. */
  cwd?: string;
  /** Environment. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Reject when the exit code is not 0 (the error message includes stderr). */
  check?: boolean;
}

/** The fleet dir: `$PLB_FLEET_DIR` or `/var/tmp/pulumi-lxc-btrfs/fleet`. */
export function fleetDir(): string {
  return process.env["PLB_FLEET_DIR"] || "/var/tmp/pulumi-lxc-btrfs/fleet";
}

/**
 * Reads and checks `<fleetDir>/inventory.json`.
 * @throws Error telling to run `npm run fleet:up` when the fleet is not up.
 */
export function loadInventory(): Inventory {
  const file = path.join(fleetDir(), "inventory.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new Error(
      `fleet inventory ${file} not found: the test fleet is not up. Run \`sudo npm run fleet:up\`.`,
    );
  }
  const inv = JSON.parse(text) as Inventory;
  if (inv.version !== 1 || !Array.isArray(inv.hosts)) {
    throw new Error(
      `${file}: unsupported inventory format; run \`sudo npm run fleet:up\` with this checkout.`,
    );
  }
  return inv;
}

/** Resolves a host name to its inventory entry (throws for unknown names). */
export function getHost(host: HostRef, inv: Inventory = loadInventory()): FleetHost {
  if (typeof host !== "string") return host;
  const found = inv.hosts.find((h) => h.name === host);
  if (!found)
    throw new Error(`no fleet host named ${host} (have: ${inv.hosts.map((h) => h.name).join(", ")})`);
  return found;
}

/** Pid of the process that owns the host's namespaces (changes when the host is reset). */
export function holderPid(host: HostRef): number {
  const h = getHost(host);
  const pid = Number(fs.readFileSync(h.holderPidFile, "utf8").trim());
  if (!Number.isInteger(pid) || !fs.existsSync(`/proc/${pid}`)) {
    throw new Error(`fleet host ${h.name} is not running; run \`sudo npm run fleet:up\``);
  }
  return pid;
}

/** Runs a program (argv, no shell) and collects its output. */
export function run(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: "pipe" });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, opts.timeoutMs);
    }
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.stdin.on("error", () => {}); // the child may exit without reading its input
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      const res: ExecResult = {
        code,
        signal,
        stdout: stdoutBytes.toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        stdoutBytes,
      };
      const what = [file, ...args].join(" ");
      if (timedOut) reject(new Error(`timed out after ${opts.timeoutMs} ms: ${what}`));
      else if (opts.check && code !== 0) {
        reject(new Error(`exit ${code ?? signal}: ${what}\n${res.stderr.trim()}`));
      } else resolve(res);
    });
    child.stdin.end(opts.input ?? "");
  });
}

/**
 * Runs argv "on" the host without SSH, as root: `nsenter` into the host's mount, network and UTS
 * namespaces (no shell; wrap in `["sh", "-c", script]` when you want one).
 */
export function hostExec(
  host: HostRef,
  argv: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  if (argv.length === 0) return Promise.reject(new Error("hostExec: empty argv"));
  const pid = holderPid(host);
  const ns = ["--target", String(pid), "--mount", "--net", "--uts", `--wd=${opts.cwd ?? "/"}`, "--"];
  return run("nsenter", [...ns, ...argv], { ...opts, cwd: undefined });
}

/** Absolute path of a script in `scripts/fleet/` of this checkout. */
export function fleetScript(name: string): string {
  return path.join(repoRoot(), "scripts", "fleet", name);
}

/** Faults of `scripts/fleet/fault.sh`; `latency` takes the delay in ms as extra argument. */
export type FaultAction =
  | "cut"
  | "restore"
  | "latency"
  | "clear"
  | "sshd-stop"
  | "sshd-start"
  | "sshd-max-sessions"
  | "fill"
  | "unfill";

/**
 * Injects (or removes) a fault on a host via `scripts/fleet/fault.sh` and resolves with its output.
 * cut/restore: drop all packets on the host's link; latency ms/clear: delay tcp/22 each way;
 * sshd-stop/sshd-start: kill sshd and its sessions / start it again; sshd-max-sessions n|default: restart
 * sshd with that MaxSessions (default: the stock 10); fill/unfill: fill the host's
 * /var/lib/lxc until ENOSPC / free it. Rejects when the script fails.
 */
export async function fault(
  host: HostRef,
  action: FaultAction,
  ...args: Array<string | number>
): Promise<string> {
  const h = getHost(host);
  const res = await run("bash", [fleetScript("fault.sh"), h.name, action, ...args.map(String)], {
    check: true,
    timeoutMs: 120_000,
  });
  return res.stdout;
}

/** Number of successful SSH logins ("Accepted <method> for ...") in the host's sshd log so far. */
export function countAccepted(host: HostRef): number {
  const h = getHost(host);
  let text: string;
  try {
    text = fs.readFileSync(h.sshdLog, "utf8");
  } catch {
    return 0;
  }
  return text.match(/^Accepted \S+ for \S+ from /gm)?.length ?? 0;
}

/** Arguments for the real `ssh` client: key, fleet known_hosts, strict checking, batch mode. */
export function sshArgs(
  host: HostRef,
  who: keyof Inventory["users"] = "root",
  opts: { connectTimeout?: number; knownHosts?: string } = {},
): string[] {
  const inv = loadInventory();
  const h = getHost(host, inv);
  const u = inv.users[who];
  const args = [
    "-o",
    `UserKnownHostsFile=${opts.knownHosts ?? inv.knownHostsPath}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${opts.connectTimeout ?? 10}`,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "LogLevel=ERROR",
    "-p",
    String(h.port),
  ];
  if (u.privateKeyPath) args.push("-i", u.privateKeyPath);
  args.push(`${u.user}@${h.address}`);
  return args;
}

/** Options of {@link manifest}. */
export interface ManifestOptions {
  /** Also record allocated 512-byte blocks (shows sparseness; depends on the filesystem). */
  blocks?: boolean;
}

// Bytes outside printable ASCII, backslash and tab are written as \xNN: lines stay one per entry
// and non-UTF-8 names survive.
function esc(latin1: string): string {
  let s = "";
  for (let i = 0; i < latin1.length; i++) {
    const c = latin1.charCodeAt(i);
    if (c === 0x5c) s += "\\\\";
    else if (c < 0x20 || c > 0x7e) s += `\\x${c.toString(16).padStart(2, "0")}`;
    else s += latin1[i];
  }
  return s;
}

// getfattr writes special bytes of names as \ooo (octal).
function unOctal(latin1: string): string {
  return latin1.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

function splitNul(buf: Buffer): string[] {
  const parts = buf.toString("latin1").split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}

// file type bits of st_mode (S_IFMT) -> manifest type letter
const TYPE_BY_BITS = new Map<number, string>([
  [0o140000, "s"],
  [0o120000, "l"],
  [0o100000, "f"],
  [0o060000, "b"],
  [0o040000, "d"],
  [0o020000, "c"],
  [0o010000, "p"],
]);

/**
 * Deterministic manifest of the tree at `dir` on the host: one line per entry (the top directory is
 * `.`), sorted by path, with type, permission bits, uid, gid, size (not for directories: their size
 * is a filesystem artefact), mtime in ns, link count and hardlink group (files linked together get
 * the same number, numbered in path order), symlink target, device numbers, all xattrs (ACLs and the
 * btrfs compression property included), inode flags (lsattr letters: C, i, a, ...) of files and
 * directories, and the SHA-256 of regular files. Inode numbers, ctime and the device id are left out,
 * so a copy into another subvolume of the same content yields the same manifest. Paths and targets
 * are escaped (`\\`, `\xNN`), so newlines and non-UTF-8 bytes are safe.
 */
export async function manifest(host: HostRef, dir: string, opts: ManifestOptions = {}): Promise<string> {
  const root = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
  const env = { ...process.env, LC_ALL: "C" };
  const fields = ["%n", "%f", "%u", "%g", "%s", "%.9Y", "%i", "%h", "%Hr", "%Lr", "%d", "%b"];
  const statFmt = `${fields.join("\\0")}\\0`;
  const [stats, links, hashes, xattrs, flags] = await Promise.all([
    hostExec(host, ["find", root, "-exec", "stat", "--printf", statFmt, "{}", "+"], { env, check: true }),
    hostExec(host, ["find", root, "-type", "l", "-printf", "%p\\0%l\\0"], { env, check: true }),
    hostExec(host, ["find", root, "-type", "f", "-exec", "sha256sum", "-z", "{}", "+"], { env, check: true }),
    // getfattr exits 1 when some file has no xattrs support; its output is still complete.
    hostExec(
      host,
      ["find", root, "-exec", "getfattr", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", "{}", "+"],
      {
        env,
      },
    ),
    // Inode flags (lsattr letters) of files and directories, as NUL-separated "FLAGS PATH" records: lsattr
    // prints lines, so paths holding a newline are read one at a time.
    hostExec(
      host,
      [
        "sh",
        "-c",
        `find "$1" \\( -type f -o -type d \\) ! -path '*\n*' -exec lsattr -d {} + | tr '\\n' '\\0' &&
         find "$1" \\( -type f -o -type d \\) -path '*\n*' -exec sh -c 'for f; do l=$(lsattr -d "$f") && printf "%s %s\\0" "\${l%% *}" "$f"; done' - {} +`,
        "-",
        root,
      ],
      { env, check: true },
    ),
  ]);
  const rel = (p: string): string => {
    if (p === root) return ".";
    const prefix = root === "/" ? "/" : `${root}/`;
    if (!p.startsWith(prefix)) throw new Error(`manifest: unexpected path ${esc(p)} outside ${root}`);
    return p.slice(prefix.length);
  };

  const target = new Map<string, string>();
  const lp = splitNul(links.stdoutBytes);
  for (let i = 0; i + 1 < lp.length; i += 2) target.set(lp[i], lp[i + 1]);

  const sha = new Map<string, string>();
  for (const rec of splitNul(hashes.stdoutBytes)) {
    const m = /^([0-9a-f]{64}) [ *]([\s\S]*)$/.exec(rec);
    if (!m) throw new Error(`manifest: cannot parse sha256sum output ${esc(rec)}`);
    sha.set(m[2], m[1]);
  }

  const inodeFlags = new Map<string, string>();
  for (const rec of splitNul(flags.stdoutBytes)) {
    const sp = rec.indexOf(" ");
    inodeFlags.set(rec.slice(sp + 1), rec.slice(0, sp).replace(/-/g, "") || "-");
  }

  const attrs = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of xattrs.stdoutBytes.toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      current = [];
      attrs.set(unOctal(line.slice("# file: ".length)), current);
    } else if (line !== "" && current) {
      const eq = line.indexOf("=");
      const name = unOctal(eq < 0 ? line : line.slice(0, eq));
      current.push(`${esc(name)}=${eq < 0 ? "" : line.slice(eq + 1)}`);
    }
  }

  const sp = splitNul(stats.stdoutBytes);
  if (sp.length % fields.length !== 0) throw new Error("manifest: truncated stat output");
  interface Entry {
    path: string;
    cols: string[];
    key: string | null;
  }
  const entries: Entry[] = [];
  for (let i = 0; i < sp.length; i += fields.length) {
    const [name, rawMode, uid, gid, size, mtime, ino, nlink, major, minor, devId, blocks] = sp.slice(
      i,
      i + fields.length,
    );
    const mode = Number.parseInt(rawMode, 16);
    const type = TYPE_BY_BITS.get(mode & 0o170000) ?? "?";
    const isDir = type === "d";
    const cols = [
      type,
      `mode=${(mode & 0o7777).toString(8).padStart(4, "0")}`,
      `uid=${uid}`,
      `gid=${gid}`,
      `size=${isDir ? "-" : size}`,
      `mtime=${mtime}`,
      `nlink=${isDir ? "-" : nlink}`,
      `link=${type === "l" ? esc(target.get(name) ?? "?") : "-"}`,
      `rdev=${type === "c" || type === "b" ? `${major}:${minor}` : "-"}`,
    ];
    if (opts.blocks) cols.push(`blocks=${blocks}`);
    cols.push(`xattrs=${(attrs.get(name) ?? []).sort().join(",") || "-"}`);
    cols.push(`flags=${type === "f" || isDir ? (inodeFlags.get(name) ?? "?") : "-"}`);
    cols.push(`sha256=${type === "f" ? (sha.get(name) ?? "?") : "-"}`);
    entries.push({ path: esc(rel(name)), cols, key: !isDir && Number(nlink) > 1 ? `${devId}:${ino}` : null });
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const groups = new Map<string, number>();
  const lines = entries.map((e) => {
    let group = "-";
    if (e.key !== null) {
      if (!groups.has(e.key)) groups.set(e.key, groups.size + 1);
      group = String(groups.get(e.key));
    }
    // the hardlink group goes right after nlink
    const cols = [...e.cols.slice(0, 7), `hl=${group}`, ...e.cols.slice(7)];
    return `${e.path}\t${cols.join("\t")}`;
  });
  return `${lines.join("\n")}\n`;
}
