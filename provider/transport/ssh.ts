/**
 * The one module that talks to hosts. Every remote command goes through `Remote.run(argv)`: quoted
 * POSIX-style, run with LC_ALL=C (and `sudo -n` for non-root users), bounded by a timeout, returning exit
 * code, stdout and stderr.
 *
 * Connections are pooled per provider process: one SSH connection per (user, host, port, credentials, jump
 * host), shared by every concurrent operation as separate channels, closed after it has been idle a while.
 * Host keys are verified before authentication completes, by default against `~/.ssh/known_hosts`.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import type { ClientChannel, ConnectConfig } from "ssh2";
import { type FromConfig, withProviderCredentials } from "./credentials";
import { describeArgv, RemoteCommandError, UserError } from "../core/errors";
import { describeVerdict, type HostKeyPolicy, type HostKeyVerdict, verifyHostKey } from "./hostkeys";
import { quoteArgv } from "./quote";
import type { Connection, JumpConnection } from "./connection";

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
  active: number;
  /** Channels this connection may have open at once: MAX_CHANNELS until the server refuses one. */
  limit: number;
  waiters: (() => void)[];
  idleTimer?: NodeJS.Timeout;
  closed: boolean;
  /** Set by closeConnection while commands still run: close after the last one. */
  closeWhenIdle?: boolean;
  /** Channels in use; closed when the connection drops, so their commands fail instead of hanging. */
  channels: Set<ClientChannel>;
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
    if (pc.active === 0) shutdown(pc);
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

async function runPooled(
  conn: Connection,
  target: string,
  argv: readonly string[],
  opts: RunOptions,
): Promise<RunResult> {
  const command = buildCommandLine(argv, conn.sudo);
  const started = Date.now();
  try {
    for (let refused = 0; ; refused++) {
      const pc = await acquire(conn, target);
      let others = 0;
      try {
        return await execOnChannel(pc, target, argv, command, opts, opts.timeoutSec ?? conn.commandTimeout);
      } catch (e) {
        // A refused channel is back-pressure, not a failure: the server's session limit (MaxSessions) is
        // lower than ours, or it has not yet freed channels we closed. Learn the limit and wait for a
        // channel of ours to be released; with none of ours open, pause briefly and try again.
        if (!(e instanceof ChannelRefused)) throw e;
        if (refused >= REFUSED_RETRIES) throw e.cause;
        others = pc.active - 1;
        pc.limit = Math.max(1, Math.min(pc.limit, others));
        trace(`${target} channel refused with ${others} other(s) open; limit now ${pc.limit}`);
      } finally {
        release(pc);
      }
      if (others === 0) await sleep(REFUSED_PAUSE_MS);
    }
  } finally {
    trace(`${target} ${Date.now() - started}ms ${describeArgv(argv)}`);
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

async function acquire(conn: Connection, target: string): Promise<PooledConnection> {
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
  while (pc.active >= pc.limit) await new Promise<void>((resolve) => pc.waiters.push(resolve));
  pc.active++;
  return pc;
}

function release(pc: PooledConnection): void {
  pc.active--;
  const next = pc.waiters.shift();
  if (next) next();
  if (pc.active === 0 && pc.waiters.length === 0 && pc.closeWhenIdle) {
    shutdown(pc);
    return;
  }
  if (pc.active === 0 && pc.waiters.length === 0 && !pc.closed) {
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
        limit: MAX_CHANNELS,
        waiters: [],
        closed: false,
        channels: new Set(),
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
    pc.client.exec(command, (err: Error | undefined, channel: ClientChannel) => {
      if (err) {
        const failure = new UserError(
          `on ${target}: cannot start a command (${err.message}); the connection was lost or refused a session`,
        );
        // "Channel open failure" on a connection that is still up: the server said no to one more session.
        if (/Channel open failure/i.test(err.message) && !pc.closed)
          reject(new ChannelRefused(err.message, { cause: failure }));
        else reject(failure);
        return;
      }
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let partial = "";
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
        if (opts.onStdoutLine) {
          partial += chunk.toString("utf8");
          const lines = partial.split("\n");
          partial = lines.pop() ?? "";
          for (const l of lines) opts.onStdoutLine(l);
        }
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
