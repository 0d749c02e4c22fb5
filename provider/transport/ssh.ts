/**
 * The one module that talks to hosts. Every remote command goes through `Remote.run(argv)`: quoted
 * POSIX-style, run with LC_ALL=C (and `sudo -n` for non-root users), bounded by a timeout, returning exit
 * code, stdout and stderr.
 *
 * Connections are pooled per provider process: one SSH connection per (user, host, port, credentials, jump
 * host), shared by every concurrent operation, closed after it has been idle a while. On each connection a
 * few long-lived remote shells (shell-loop.sh, one SSH channel each) run the commands, one at a time per
 * shell, framed by shell-protocol.ts: a command costs a request and a reply on an open channel instead of a
 * new channel, session and login shell. Where such a shell cannot start (no setsid on the host, sudo that
 * wants a password, LXC_BTRFS_TRANSPORT=exec), each command gets a channel of its own (exec), as before.
 * Host keys are verified before authentication completes, by default against `~/.ssh/known_hosts`.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { ClientChannel, ConnectConfig } from "ssh2";
import { type FromConfig, withProviderCredentials } from "./credentials";
import { describeArgv, RemoteCommandError, UserError } from "../core/errors";
import { describeVerdict, type HostKeyPolicy, type HostKeyVerdict, verifyHostKey } from "./hostkeys";
import { quoteArgv } from "./quote";
import type { Connection, JumpConnection } from "./connection";
import { encodeRequest, LineSplitter, READY, ReplyDecoder } from "./shell-protocol";

export interface RunOptions {
  /** Bytes written to the command's stdin. */
  stdin?: string | Buffer;
  /** Seconds before the command is abandoned; defaults to connection.commandTimeout. */
  timeoutSec?: number;
  /** Called with each complete stdout line as it arrives (progress reporting). */
  onStdoutLine?: (line: string) => void;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as received, for output framed by byte counts (see batch.ts). */
  stdoutBytes?: Buffer;
}

export interface Remote {
  /** `user@host:port` (and the jump host), for messages. Never contains secrets. */
  readonly target: string;
  /** Identifies the pooled connection (user, host, jump host, a hash of the credentials): no secret. */
  readonly key: string;
  /** Runs argv; resolves with any exit code. */
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs argv; rejects with a RemoteCommandError naming host, command, code and stderr unless it exits 0. */
  check(argv: readonly string[], opts?: RunOptions & { hint?: string }): Promise<RunResult>;
}

/**
 * Channels (sessions) opened at once on one connection, at most. OpenSSH allows 10 by default (MaxSessions)
 * and some servers fewer; a server that refuses a channel teaches the connection its real limit, and the
 * command waits for a channel instead of failing (see runPooled).
 */
const MAX_CHANNELS = 8;
/** A refused channel with none of ours open (the server still closing old ones): retry this often. */
const REFUSED_RETRIES = 100;
const REFUSED_PAUSE_MS = 50;
const IDLE_CLOSE_MS = 15_000;

interface PooledConnection {
  client: import("ssh2").Client;
  jump?: import("ssh2").Client;
  /** Channels open or being opened: exec channels in use and remote shells. */
  active: number;
  /** Commands in progress (the connection is idle at 0). */
  busy: number;
  /** Channels this connection may have open at once: MAX_CHANNELS until the server refuses one. */
  limit: number;
  waiters: (() => void)[];
  idleTimer?: NodeJS.Timeout;
  closed: boolean;
  /** Set by closeConnection while commands still run: close after the last one. */
  closeWhenIdle?: boolean;
  /** Channels in use; closed when the connection drops, so their commands fail instead of hanging. */
  channels: Set<ClientChannel>;
  /** Kills of timed-out commands' process groups still under way: closing the connection waits for them. */
  kills: Set<Promise<void>>;
  /**
   * Remote shells ready for a command, by whether they run under sudo: callers with and without
   * connection.sudo share a connection, never a shell.
   */
  idleShells: { plain: RemoteShell[]; sudo: RemoteShell[] };
  /** Why remote shells (plain, or under sudo) cannot run on this connection, once known: then exec. */
  noShells: { plain?: string; sudo?: string };
}

const pool = new Map<string, Promise<PooledConnection>>();
const counters = { dials: 0, connections: 0 };

/** How many TCP+SSH connections this process opened (tests and benchmarks read this). */
export function poolStats(): { dials: number; connections: number; open: number } {
  return { ...counters, open: pool.size };
}

/** Closes every pooled connection (tests; the provider process otherwise just exits). */
export async function closeAllConnections(): Promise<void> {
  const all = [...pool.values()];
  pool.clear();
  for (const p of all) {
    try {
      const c = await p;
      await killsDone(c);
      shutdown(c);
    } catch {
      // a failed dial has nothing to close
    }
  }
}

/**
 * Closes the pooled connection for `conn` once no command is using it (program-time callers such as
 * discovery use this so an open socket does not keep the program alive; other hosts are not touched).
 */
export async function closeConnection(given: Connection): Promise<void> {
  const conn = withProviderCredentials(given);
  const key = poolKey(conn, conn.proxy);
  const p = pool.get(key);
  if (!p) return;
  pool.delete(key);
  try {
    const pc = await p;
    await killsDone(pc);
    if (pc.busy === 0) shutdown(pc);
    else pc.closeWhenIdle = true;
  } catch {
    // a failed dial has nothing to close
  }
}

export function describeTarget(
  conn: Pick<Connection, "user" | "host" | "port"> & { proxy?: JumpConnection },
): string {
  const t = `${conn.user}@${conn.host}:${conn.port}`;
  return conn.proxy ? `${t} (via ${conn.proxy.user}@${conn.proxy.host}:${conn.proxy.port})` : t;
}

/**
 * A handle on a host; dials lazily on the first command and reuses the pooled connection after that. A
 * connection without credentials of its own gets those of the stack config (see credentials.ts).
 */
export function openRemote(given: Connection): Remote {
  const target = describeTarget(given);
  let conn: Connection | undefined; // decided on the first command, so that a config error fails that command
  const run = async (argv: readonly string[], opts: RunOptions = {}) => {
    conn ??= withProviderCredentials(given);
    return runPooled(conn, target, argv, opts);
  };
  return {
    target,
    // The same given connection always resolves to the same credentials: it names the pooled connection.
    key: poolKey(given, given.proxy),
    run,
    async check(argv, opts = {}) {
      return checked(target, argv, await run(argv, opts), opts.hint);
    },
  };
}

/** `res` if it exited 0; else a RemoteCommandError naming host, command, code, stderr and a hint. */
export function checked(target: string, argv: readonly string[], res: RunResult, hint?: string): RunResult {
  if (res.code !== 0)
    throw new RemoteCommandError(target, argv, res.code, res.stderr, hint ?? hintFor(res.stderr));
  return res;
}

function hintFor(stderr: string): string | undefined {
  if (/sudo: a (terminal|password) is required|sudo: .*password/i.test(stderr)) {
    return "the user needs passwordless sudo (NOPASSWD in sudoers) for connection.sudo";
  }
  if (/command not found|not found$/m.test(stderr)) {
    return "install the missing tool on the host (Debian: apt-get install btrfs-progs lxc)";
  }
  return undefined;
}

/** The shell command line for argv: locale pinned so parsers see C output; sudo -n when asked. */
export function buildCommandLine(argv: readonly string[], sudo: boolean): string {
  const inner = quoteArgv(["env", "LC_ALL=C", "LANG=C", ...argv]);
  return sudo ? `exec sudo -n -- ${inner}` : `exec ${inner}`;
}

/**
 * How commands run (LXC_BTRFS_TRANSPORT): in the connection's remote shells (default), or each on a
 * channel of its own ("exec"; "exec-nagle" also leaves Nagle's algorithm on for connections dialed
 * meanwhile, as 0.2.0 did: the benchmark's baseline). Read per command, so a benchmark can alternate.
 */
function transportMode(): "shell" | "exec" {
  return process.env.LXC_BTRFS_TRANSPORT?.startsWith("exec") ? "exec" : "shell";
}

async function runPooled(
  conn: Connection,
  target: string,
  argv: readonly string[],
  opts: RunOptions,
): Promise<RunResult> {
  const started = Date.now();
  // Quoted before anything is sent: an argument that cannot be passed fails here, on no connection.
  buildCommandLine(argv, false);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await runOn(await connectPooled(conn, target), conn, target, argv, opts);
      } catch (e) {
        // Lost before the command was sent: nothing ran, so it may go on a new connection once.
        if (!(e instanceof ConnectionGone) || attempt >= 2) throw e;
        trace(`${target} connection lost before ${describeArgv(argv)} started; dialing again`);
      }
    }
  } finally {
    trace(`${target} ${Date.now() - started}ms ${describeArgv(argv)}`);
  }
}

/** Runs argv on the pooled connection pc: in a remote shell, or on a channel of its own. */
async function runOn(
  pc: PooledConnection,
  conn: Connection,
  target: string,
  argv: readonly string[],
  opts: RunOptions,
): Promise<RunResult> {
  const timeoutSec = opts.timeoutSec ?? conn.commandTimeout;
  pc.busy++;
  try {
    if (transportMode() === "shell") {
      const shell = await takeShell(pc, conn, target);
      // A shell already runs as the connection's user, through sudo when asked: no sudo per command.
      if (shell) return await shell.run(argv, buildCommandLine(argv, false), opts, timeoutSec);
    }
    return await runExec(pc, target, argv, buildCommandLine(argv, conn.sudo), opts, timeoutSec);
  } finally {
    pc.busy--;
    idleCheck(pc);
  }
}

/** A command on a channel of its own (exec), waiting for a channel while the server refuses one. */
async function runExec(
  pc: PooledConnection,
  target: string,
  argv: readonly string[],
  command: string,
  opts: RunOptions,
  timeoutSec: number,
): Promise<RunResult> {
  for (let refused = 0; ; refused++) {
    await takeSlot(pc);
    let others = 0;
    try {
      return await execOnChannel(pc, target, argv, command, opts, timeoutSec);
    } catch (e) {
      // A refused channel is back-pressure, not a failure: the server's session limit (MaxSessions) is
      // lower than ours, or it has not yet freed channels we closed. Learn the limit and wait for a
      // channel of ours to be released; with none of ours open, pause briefly and try again.
      if (!(e instanceof ChannelRefused)) throw e;
      if (refused >= REFUSED_RETRIES) throw e.cause;
      others = pc.active - 1;
      learnLimit(pc, others, target);
    } finally {
      releaseSlot(pc);
    }
    if (others === 0) await sleep(REFUSED_PAUSE_MS);
  }
}

function learnLimit(pc: PooledConnection, others: number, target: string): void {
  pc.limit = Math.max(1, Math.min(pc.limit, others));
  trace(`${target} channel refused with ${others} other(s) open; limit now ${pc.limit}`);
}

/**
 * An idle remote shell of the connection, or a new one while it has channels to spare; waits for one
 * otherwise. Undefined when remote shells cannot run on this connection (the caller uses exec).
 */
async function takeShell(
  pc: PooledConnection,
  conn: Connection,
  target: string,
): Promise<RemoteShell | undefined> {
  const kind = conn.sudo ? "sudo" : "plain";
  for (let refused = 0; ; ) {
    if (pc.closed)
      throw new ConnectionGone(`on ${target}: cannot start a command; the SSH connection was lost`);
    if (pc.noShells[kind] !== undefined) return undefined;
    const idle = pc.idleShells[kind].pop();
    if (idle) return idle;
    if (pc.active < pc.limit) {
      pc.active++; // the shell holds this channel until it closes
      try {
        return await openShell(pc, conn, target);
      } catch (e) {
        releaseSlot(pc);
        if (e instanceof ShellUnavailable) {
          pc.noShells[kind] = e.message;
          trace(`${target} no remote shell (${e.message}); one channel per command`);
          return undefined;
        }
        if (!(e instanceof ChannelRefused)) throw e;
        if (++refused >= REFUSED_RETRIES) throw e.cause;
        learnLimit(pc, pc.active, target);
        if (pc.active === 0) await sleep(REFUSED_PAUSE_MS);
        continue;
      }
    }
    await new Promise<void>((resolve) => pc.waiters.push(resolve));
  }
}

/** With LXC_BTRFS_TRACE set, one line on stderr (no secrets: targets and shortened argv only). */
export function trace(msg: string): void {
  if (process.env.LXC_BTRFS_TRACE) console.error(`[lxc-btrfs trace] ${msg}`);
}

/** The server refused to open a channel (session) on a live connection. */
class ChannelRefused extends Error {}

function poolKey(conn: Connection | JumpConnection, proxy?: JumpConnection): string {
  // Credentials and the host key policy are part of the identity: a connection verified against one
  // policy must never serve a caller that asked for another. Hashed, so the key holds no secret.
  const cred = createHash("sha256")
    .update(
      JSON.stringify([
        conn.password,
        conn.privateKey,
        conn.privateKeyPath,
        conn.privateKeyPassword,
        conn.agentSocketPath,
        conn.hostKey,
        conn.knownHostsPath,
        conn.insecureSkipHostKeyCheck,
      ]),
    )
    .digest("hex")
    .slice(0, 16);
  const self = `${conn.user}@${conn.host}:${conn.port}#${cred}`;
  return proxy ? `${self} via ${poolKey(proxy)}` : self;
}

/** The pooled connection for conn (dialed on first use), kept from closing while a command uses it. */
async function connectPooled(conn: Connection, target: string): Promise<PooledConnection> {
  const key = poolKey(conn, conn.proxy);
  let p = pool.get(key);
  if (!p) {
    p = dialWithRetries(conn, target);
    pool.set(key, p);
    p.then(
      (c) => c.client.on("close", () => pool.get(key) === p && pool.delete(key)),
      () => pool.delete(key),
    );
  }
  const pc = await p;
  if (pc.idleTimer) clearTimeout(pc.idleTimer);
  pc.idleTimer = undefined;
  return pc;
}

/** Waits for a channel to spare (closing an idle remote shell for one if need be), and takes it. */
async function takeSlot(pc: PooledConnection): Promise<void> {
  while (pc.active >= pc.limit) {
    (pc.idleShells.plain.pop() ?? pc.idleShells.sudo.pop())?.close();
    await new Promise<void>((resolve) => pc.waiters.push(resolve));
  }
  pc.active++;
}

function releaseSlot(pc: PooledConnection): void {
  pc.active--;
  wake(pc);
}

/** Lets the first command waiting for a channel or a shell look again. */
function wake(pc: PooledConnection): void {
  pc.waiters.shift()?.();
}

/** With no command in progress: close now if asked to, or after IDLE_CLOSE_MS. */
function idleCheck(pc: PooledConnection): void {
  if (pc.busy !== 0 || pc.waiters.length !== 0) return;
  if (pc.closeWhenIdle) {
    shutdown(pc);
    return;
  }
  if (!pc.closed) {
    if (pc.idleTimer) clearTimeout(pc.idleTimer);
    pc.idleTimer = setTimeout(() => {
      for (const [k, v] of pool) {
        v.then(
          (c) => c === pc && pool.delete(k),
          () => undefined,
        );
      }
      shutdown(pc);
    }, IDLE_CLOSE_MS);
    pc.idleTimer.unref();
  }
}

/** Waits (10 s at most) for the kills of timed-out commands under way, so that closing does not stop them. */
async function killsDone(pc: PooledConnection): Promise<void> {
  if (pc.kills.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(pc.kills),
    new Promise((r) => {
      timer = setTimeout(r, 10_000);
    }),
  ]);
  clearTimeout(timer);
}

function shutdown(pc: PooledConnection): void {
  pc.closed = true;
  if (pc.idleTimer) clearTimeout(pc.idleTimer);
  pc.client.end();
  pc.jump?.end();
}

class PermanentDialError extends UserError {}

async function dialWithRetries(conn: Connection, target: string): Promise<PooledConnection> {
  let lastErr: unknown;
  for (let attempt = 1; attempt <= conn.dialErrorLimit; attempt++) {
    try {
      let jump: import("ssh2").Client | undefined;
      let sock: NodeJS.ReadableStream | undefined;
      if (conn.proxy) {
        jump = await dialOnce(conn.proxy, describeTarget(conn.proxy));
        sock = await forward(jump, conn.host, conn.port, target);
      }
      const client = await dialOnce(conn, target, sock);
      counters.connections++;
      const pc: PooledConnection = {
        client,
        jump,
        active: 0,
        busy: 0,
        limit: MAX_CHANNELS,
        waiters: [],
        closed: false,
        channels: new Set(),
        kills: new Set(),
        idleShells: { plain: [], sudo: [] },
        noShells: {},
      };
      client.on("close", () => {
        pc.closed = true;
        jump?.end();
        for (const ch of pc.channels) ch.close();
      });
      return pc;
    } catch (e) {
      lastErr = e;
      if (e instanceof PermanentDialError || attempt === conn.dialErrorLimit) break;
      // Short, growing pauses: the whole dial stays well inside dialErrorLimit x perDialTimeout.
      await sleep(Math.min(250 * 2 ** (attempt - 1), 2000, (conn.perDialTimeout * 1000) / 4));
    }
  }
  if (lastErr instanceof UserError) throw lastErr;
  throw new UserError(`cannot connect to ${target}: ${(lastErr as Error)?.message ?? lastErr}`);
}

function forward(
  jump: import("ssh2").Client,
  host: string,
  port: number,
  target: string,
): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => {
    jump.forwardOut("127.0.0.1", 0, host, port, (err, stream) => {
      if (err) reject(new UserError(`cannot reach ${target} through the jump host: ${err.message}`));
      else resolve(stream);
    });
  });
}

function hostKeyPolicy(conn: JumpConnection): { policy: HostKeyPolicy; source: string } {
  if (conn.hostKey)
    return { policy: { kind: "pinned", expected: conn.hostKey }, source: "connection.hostKey" };
  if (conn.insecureSkipHostKeyCheck) return { policy: { kind: "insecure" }, source: "" };
  const path = conn.knownHostsPath ?? `${homedir()}/.ssh/known_hosts`;
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // A missing file trusts nothing: the verdict says "unknown host" and names the file.
  }
  return { policy: { kind: "knownHosts", path, text }, source: path };
}

function readPrivateKey(conn: JumpConnection, target: string): string | undefined {
  if (conn.privateKey) return conn.privateKey;
  if (!conn.privateKeyPath) return undefined;
  try {
    return readFileSync(conn.privateKeyPath, "utf8");
  } catch (e) {
    throw new PermanentDialError(
      `cannot read connection.privateKeyPath ${conn.privateKeyPath} for ${target}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
}

async function dialOnce(
  conn: JumpConnection,
  target: string,
  sock?: NodeJS.ReadableStream,
): Promise<import("ssh2").Client> {
  const { NodeSSH } = require("node-ssh") as typeof import("node-ssh");
  counters.dials++;
  const { policy, source } = hostKeyPolicy(conn);
  let verdict: HostKeyVerdict = { ok: true };
  const config: import("node-ssh").Config = {
    host: conn.host.replace(/^\[(.*)\]$/, "$1"),
    port: conn.port,
    username: conn.user,
    password: conn.password,
    privateKey: readPrivateKey(conn, target),
    passphrase: conn.privateKeyPassword,
    agent: conn.agentSocketPath,
    readyTimeout: Math.round(conn.perDialTimeout * 1000),
    keepaliveInterval: 5000,
    keepaliveCountMax: 3,
    sock: sock as ConnectConfig["sock"],
    hostVerifier: (key: Buffer) => {
      verdict = verifyHostKey(policy, conn.host, conn.port, key);
      return verdict.ok;
    },
  };
  const ssh = new NodeSSH();
  try {
    await ssh.connect(config);
  } catch (e) {
    const v = verdict as HostKeyVerdict;
    if (!v.ok) throw new PermanentDialError(describeVerdict(v, target, source));
    throw classifyDialError(e as Error & { level?: string; code?: string }, target, conn);
  }
  const client = ssh.connection;
  if (!client) throw new UserError(`cannot connect to ${target}: connection closed during setup`);
  client.on("error", () => undefined); // errors surface on the channels in use; never crash the process
  // Requests and replies are small messages answered at once: do not hold them back for ACKs (Nagle).
  if (process.env.LXC_BTRFS_TRANSPORT !== "exec-nagle") client.setNoDelay(true);
  return client;
}

function classifyDialError(
  e: Error & { level?: string; code?: string },
  target: string,
  conn: JumpConnection,
): Error {
  const msg = e.message ?? String(e);
  if (e.level === "client-authentication" || /authentication methods failed/i.test(msg)) {
    return new PermanentDialError(
      `cannot log in to ${target}: the server rejected the credentials given (${describeAuth(conn)}). ` +
        `Check the user, and that the key is in the user's authorized_keys.`,
    );
  }
  if (/passphrase|Encrypted private key|bad decrypt|Cannot parse privateKey/i.test(msg)) {
    return new PermanentDialError(
      `cannot use the private key for ${target}: it is encrypted or unreadable; set ${(conn as FromConfig).credentialsFrom === "config" ? "stack config lxc-btrfs:privateKeyPassword" : "connection.privateKeyPassword"} or check the key`,
    );
  }
  if (/Timed out while waiting for handshake/i.test(msg)) {
    return new UserError(
      `cannot connect to ${target}: no SSH handshake within ${conn.perDialTimeout}s (host down or link cut?)`,
    );
  }
  const hint = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(`${e.code} ${msg}`)
    ? " (is the host up and sshd listening on that port?)"
    : "";
  return new UserError(
    `cannot connect to ${target}: ${e.code ? `${e.code} ` : ""}${msg.replace(/^connect /, "")}${hint}`,
  );
}

function describeAuth(conn: JumpConnection & FromConfig): string {
  if (conn.credentialsFrom === "config")
    return conn.privateKey ? "stack config lxc-btrfs:privateKey" : "stack config lxc-btrfs:password";
  if (conn.privateKey) return "connection.privateKey";
  if (conn.privateKeyPath) return "connection.privateKeyPath";
  if (conn.password) return "connection.password";
  if (conn.agentSocketPath) return "connection.agentSocketPath";
  return "none: set connection.privateKey, privateKeyPath, password or agentSocketPath, or stack config lxc-btrfs:privateKey";
}

function execOnChannel(
  pc: PooledConnection,
  target: string,
  argv: readonly string[],
  command: string,
  opts: RunOptions,
  timeoutSec: number,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    openChannel(pc, command, (err: Error | undefined, channel: ClientChannel) => {
      if (err) {
        reject(channelOpenError(pc, target, err));
        return;
      }
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      const lines = opts.onStdoutLine ? new LineSplitter(opts.onStdoutLine) : undefined;
      let code: number | null = null;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        channel.signal("KILL");
        channel.close();
      }, timeoutSec * 1000);
      pc.channels.add(channel);
      channel.on("data", (chunk: Buffer) => {
        out.push(chunk);
        lines?.push(chunk);
      });
      channel.stderr.on("data", (chunk: Buffer) => errs.push(chunk));
      channel.on("exit", (c: number | null) => {
        code = typeof c === "number" ? c : null;
      });
      channel.on("close", () => {
        clearTimeout(timer);
        pc.channels.delete(channel);
        const stderr = Buffer.concat(errs).toString("utf8");
        const fail = (hint: string) => reject(new RemoteCommandError(target, argv, null, stderr, hint));
        if (timedOut) {
          fail(`no result within ${timeoutSec}s (connection.commandTimeout)`);
        } else if (code === null && pc.closed) {
          fail("the SSH connection was lost while the command ran");
        } else {
          const bytes = Buffer.concat(out);
          resolve({ code, stdout: bytes.toString("utf8"), stderr, stdoutBytes: bytes });
        }
      });
      if (opts.stdin !== undefined) channel.end(opts.stdin);
      else channel.end();
    });
  });
}

/** The connection was lost before a command was sent: nothing of it ran. */
class ConnectionGone extends UserError {}

/** pc.client.exec, with a connection already gone reported through the callback like any failure. */
function openChannel(
  pc: PooledConnection,
  command: string,
  cb: (err: Error | undefined, channel: ClientChannel) => void,
): void {
  try {
    pc.client.exec(command, cb);
  } catch (e) {
    cb(e as Error, undefined as unknown as ClientChannel);
  }
}

function channelOpenError(pc: PooledConnection, target: string, err: Error): Error {
  const message = `on ${target}: cannot start a command (${err.message}); the connection was lost or refused a session`;
  const failure = pc.closed ? new ConnectionGone(message) : new UserError(message);
  // "Channel open failure" on a connection that is still up: the server said no to one more session.
  if (/Channel open failure/i.test(err.message) && !pc.closed)
    return new ChannelRefused(err.message, { cause: failure });
  return failure;
}

/** The loop each remote shell runs (shell-loop.sh, beside this file in the source tree and in dist/). */
let loopText: string | undefined;
function shellLoop(): string {
  loopText ??= readFileSync(join(__dirname, "shell-loop.sh"), "utf8");
  return loopText;
}

/** How long a new remote shell may take to say it is ready. */
const SHELL_START_MS = 20_000;
/** After a timed-out command's process group was sent SIGKILL: how long to wait for its reply. */
const KILL_GRACE_MS = 5_000;

/**
 * Kills the process group of request $2 of the remote shell whose directory is $1 (shell-loop.sh notes
 * "ID PGID" in $1/p), or that process if it leads no group; nothing if that request is no longer running.
 */
const KILL_GROUP =
  'read -r id p <"$1/p" || exit 0; [ "$id" = "$2" ] || exit 0; kill -KILL "-$p" 2>/dev/null || kill -KILL "$p"';

/** The remote shell cannot run on this host (the connection then runs one channel per command). */
class ShellUnavailable extends Error {}

/** Opens a channel running shell-loop.sh (under sudo -n when the connection asks for sudo). */
function openShell(pc: PooledConnection, conn: Connection, target: string): Promise<RemoteShell> {
  const command = buildCommandLine(["sh", "-c", shellLoop(), "plb-shell"], conn.sudo);
  return new Promise((resolve, reject) => {
    openChannel(pc, command, (err: Error | undefined, channel: ClientChannel) => {
      if (err) {
        reject(channelOpenError(pc, target, err));
        return;
      }
      pc.channels.add(channel);
      let head = Buffer.alloc(0);
      let errText = "";
      let ready = false;
      const timer = setTimeout(() => channel.close(), SHELL_START_MS);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const m = READY.exec(head.toString("latin1"));
        if (!m) {
          if (head.includes(0x0a) || head.length > 64) channel.close(); // not our loop: unavailable
          return;
        }
        ready = true;
        clearTimeout(timer);
        channel.removeListener("data", onData);
        channel.stderr.removeListener("data", onErr);
        channel.removeListener("close", onClose);
        // A timed-out command's process group is killed by a command of its own (through another shell
        // or channel of the connection, as root under sudo when the connection uses sudo).
        const dir = m[2];
        const kill = (id: string) => {
          const argv = ["sh", "-c", KILL_GROUP, "plb-kill", dir, id];
          const done = runOn(pc, conn, target, argv, { timeoutSec: 30 }).then(
            (r) => trace(`${target} killed the process group of a timed-out command: exit ${r.code}`),
            (e: Error) =>
              trace(`${target} could not kill the process group of a timed-out command: ${e.message}`),
          );
          pc.kills.add(done);
          done.finally(() => pc.kills.delete(done));
        };
        const shell = new RemoteShell(pc, pc.idleShells[conn.sudo ? "sudo" : "plain"], channel, target, kill);
        resolve(shell);
        shell.start(head.subarray(m[0].length));
      };
      const onErr = (chunk: Buffer) => {
        errText = (errText + chunk.toString("utf8")).slice(-2000);
      };
      const onClose = () => {
        clearTimeout(timer);
        pc.channels.delete(channel);
        if (ready) return;
        if (pc.closed)
          reject(new ConnectionGone(`on ${target}: cannot start a command; the SSH connection was lost`));
        else reject(new ShellUnavailable(errText.trim().split("\n")[0] || "the remote shell did not start"));
      };
      channel.on("data", onData);
      channel.stderr.on("data", onErr);
      channel.on("close", onClose);
    });
  });
}

interface ShellRequest {
  argv: readonly string[];
  decoder: ReplyDecoder;
  resolve: (r: RunResult) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
  grace?: NodeJS.Timeout;
  timedOut: boolean;
  id: string;
  killSent?: boolean;
}

/**
 * One long-lived shell on a channel of a pooled connection, running one command at a time. It returns to
 * the connection's idle shells when a reply ends; it is discarded when its channel closes, when a reply
 * is malformed, or when a timed-out command's group does not end within KILL_GRACE_MS of its SIGKILL.
 */
class RemoteShell {
  private current?: ShellRequest;
  private closed = false;
  private errLines: LineSplitter;

  constructor(
    private readonly pc: PooledConnection,
    /** The connection's idle shells of this shell's kind. */
    private readonly idle: RemoteShell[],
    private readonly channel: ClientChannel,
    private readonly target: string,
    private readonly kill: (id: string) => void,
  ) {
    // The loop's stderr carries only its own failures.
    this.errLines = new LineSplitter((line) => trace(`${target} remote shell: ${line.slice(0, 200)}`));
  }

  start(rest: Buffer): void {
    this.channel.on("data", (chunk: Buffer) => this.onData(chunk));
    this.channel.stderr.on("data", (chunk: Buffer) => this.errLines.push(chunk));
    this.channel.on("close", () => this.onClose());
    if (rest.length) this.onData(rest);
  }

  run(
    argv: readonly string[],
    commandLine: string,
    opts: RunOptions,
    timeoutSec: number,
  ): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const id = randomBytes(16).toString("hex");
      const lines = opts.onStdoutLine ? new LineSplitter(opts.onStdoutLine) : undefined;
      let request: Buffer;
      try {
        request = encodeRequest(id, commandLine, opts.stdin);
      } catch (e) {
        this.release();
        reject(e);
        return;
      }
      this.current = {
        id,
        argv,
        decoder: new ReplyDecoder(id, lines && ((c) => lines.push(c))),
        resolve,
        reject,
        timer: setTimeout(() => this.onTimeout(timeoutSec), timeoutSec * 1000),
        timedOut: false,
      };
      this.channel.write(request);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
  }

  private onData(chunk: Buffer): void {
    const req = this.current;
    if (!req) {
      trace(`${this.target} remote shell: output with no command running; discarding the shell`);
      this.close();
      return;
    }
    let reply: ReturnType<ReplyDecoder["push"]>;
    try {
      reply = req.decoder.push(chunk);
    } catch (e) {
      this.current = undefined;
      this.settle(req, new RemoteCommandError(this.target, req.argv, null, "", `${(e as Error).message}`));
      this.close();
      return;
    }
    if (!reply) return;
    this.current = undefined;
    this.settle(req, {
      code: reply.code,
      stdout: reply.stdout.toString("utf8"),
      stderr: reply.stderr.toString("utf8"),
      stdoutBytes: reply.stdout,
    });
    if (reply.rest.length) this.close();
    else this.release();
  }

  /** Resolves or rejects a request unless its timeout already rejected it. */
  private settle(req: ShellRequest, outcome: RunResult | Error): void {
    clearTimeout(req.timer);
    if (req.grace) clearTimeout(req.grace);
    if (req.timedOut) return;
    if (outcome instanceof Error) req.reject(outcome);
    else req.resolve(outcome);
  }

  /** Back to the connection's idle shells, for the next command. */
  private release(): void {
    if (this.closed || this.pc.closed) {
      this.close();
      return;
    }
    this.idle.push(this);
    wake(this.pc);
  }

  private onTimeout(timeoutSec: number): void {
    const req = this.current;
    if (!req) return;
    req.timedOut = true;
    req.reject(
      new RemoteCommandError(
        this.target,
        req.argv,
        null,
        "",
        `no result within ${timeoutSec}s (connection.commandTimeout)`,
      ),
    );
    // Kill the command's process group on the host; its reply then ends and frees this shell. Without
    // a reply soon after, the shell is discarded. SIGUSR1 reaches the loop at once unless it runs under
    // sudo; the kill command, through another shell, works under sudo too.
    this.channel.signal("USR1");
    this.killCurrent();
    req.grace = setTimeout(() => this.close(), KILL_GRACE_MS);
  }

  private killCurrent(): void {
    const req = this.current;
    if (!req || req.killSent) return;
    req.killSent = true;
    this.kill(req.id);
  }

  private onClose(): void {
    this.closed = true;
    this.pc.channels.delete(this.channel);
    const at = this.idle.indexOf(this);
    if (at >= 0) this.idle.splice(at, 1);
    releaseSlot(this.pc);
    const req = this.current;
    this.current = undefined;
    if (!req) return;
    // The connection's own close may follow the channel's by a moment: look once it had the chance.
    setTimeout(() => {
      this.settle(
        req,
        new RemoteCommandError(
          this.target,
          req.argv,
          null,
          "",
          this.pc.closed
            ? "the SSH connection was lost while the command ran"
            : "the remote shell running it ended before the command did",
        ),
      );
    }, 50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
