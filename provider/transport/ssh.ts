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
 *
 * This file is the pool and the routing of each command; the parts are beside it: dial.ts (connecting,
 * host keys, dial errors), pooled-connection.ts (channels and their limit), remote-shell.ts (the shells),
 * remote.ts (the Remote interface and command lines callers see).
 */
import { createHash } from "node:crypto";
import { constants as osConstants } from "node:os";
import type { ClientChannel } from "ssh2";
import { describeArgv, RemoteCommandError } from "../core/errors";
import { type Connection, describeTarget, type JumpConnection } from "./connection";
import { withProviderCredentials } from "./credentials";
import { dial, dialCount } from "./dial";
import {
  ChannelRefused,
  ConnectionGone,
  channelOpenError,
  IDLE_CLOSE_MS,
  learnLimit,
  MAX_CHANNELS,
  openChannel,
  type PooledConnection,
  REFUSED_PAUSE_MS,
  REFUSED_RETRIES,
  releaseSlot,
  sleep,
  takeSlot,
} from "./pooled-connection";
import { buildCommandLine, checked, type Remote, type RunOptions, type RunResult, trace } from "./remote";
import { openShell, type RemoteShell, ShellUnavailable } from "./remote-shell";
import { LineSplitter } from "./shell-protocol";

export { buildCommandLine, checked, type Remote, type RunOptions, type RunResult, trace } from "./remote";
export { describeTarget } from "./connection";

const pool = new Map<string, Promise<PooledConnection>>();
const counters = { connections: 0 };

/** How many TCP+SSH connections this process opened (tests and benchmarks read this). */
export function poolStats(): { dials: number; connections: number; open: number } {
  return { dials: dialCount(), connections: counters.connections, open: pool.size };
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
        return await openShell(pc, conn, target, (argv) => runOn(pc, conn, target, argv, { timeoutSec: 30 }));
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
    p = dialPooled(conn, target);
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

/** Dials conn and sets up its pooled connection: every channel is closed when the connection drops. */
async function dialPooled(conn: Connection, target: string): Promise<PooledConnection> {
  const { client, jump } = await dial(conn, target);
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
      // A command killed by a signal gets 128 + its number, as a shell reports it (and as the remote
      // shells' replies carry it), so both transports give the same code.
      channel.on("exit", (c: number | null, signal?: string) => {
        code = typeof c === "number" ? c : signalExitCode(signal);
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

/** 128 + the number of the signal ssh2 reports by name ("SIGKILL"), as a shell gives it; null if unknown. */
export function signalExitCode(name: string | undefined): number | null {
  const n = name ? osConstants.signals[name as keyof typeof osConstants.signals] : undefined;
  return typeof n === "number" ? 128 + n : null;
}
