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
 * host keys, dial errors), pooled-connection.ts (one connection's state: channels and their limit, idle
 * shells, closing), remote-shell.ts (the shells),
 * remote.ts (the Remote interface and command lines callers see).
 */
import { createHash } from "node:crypto";
import { constants as osConstants } from "node:os";
import type { ClientChannel } from "ssh2";
import { type Connection, describeTarget, type JumpConnection } from "../core/connection";
import { describeArgv, RemoteCommandError } from "../core/errors";
import { withProviderCredentials } from "./credentials";
import { dial, dialCount } from "./dial";
import { ConnectionGone, PooledConnection } from "./pooled-connection";
import {
  buildCommandLine,
  checked,
  type Remote,
  type RemoteStream,
  type RunOptions,
  type RunResult,
} from "./remote";
import { openShell, type RemoteShell, ShellUnavailable } from "./remote-shell";
import { LineSplitter } from "./shell-protocol";
import { trace } from "./util";

export { describeTarget } from "../core/connection";
export {
  buildCommandLine,
  checked,
  type Remote,
  type RemoteStream,
  type RunOptions,
  type RunResult,
} from "./remote";

type Pooled = PooledConnection<RemoteShell>;

const pool = new Map<string, Promise<Pooled>>();
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
      await (await p).close();
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
    await (await p).closeWhenIdle();
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
    async stream(argv) {
      conn ??= withProviderCredentials(given);
      return streamPooled(conn, target, argv);
    },
  };
}

/** stderr kept of a streaming command: its end, where tools put the error. */
const STREAM_STDERR_MAX = 64 * 1024;

/**
 * argv on an exec channel of its own, its stdin and stdout given to the caller as streams (never through a
 * remote shell: those frame whole replies). Lost before it started: dialed again once, as for run.
 */
async function streamPooled(
  conn: Connection,
  target: string,
  argv: readonly string[],
): Promise<RemoteStream> {
  const command = buildCommandLine(argv, conn.sudo);
  for (let attempt = 1; ; attempt++) {
    try {
      const pc = await connectPooled(conn, target);
      const channel = await pc.openStream(command);
      trace(`${target} stream started: ${describeArgv(argv)}`);
      let stderr = "";
      let code: number | null = null;
      channel.stderr.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString("utf8")).slice(-STREAM_STDERR_MAX);
      });
      channel.on("exit", (c: number | null, signal?: string) => {
        code = typeof c === "number" ? c : signalExitCode(signal);
      });
      const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
        channel.once("close", () => resolve({ code, stderr })),
      );
      return { stdin: channel, stdout: channel, done, close: () => channel.close() };
    } catch (e) {
      if (!(e instanceof ConnectionGone) || attempt >= 2) throw e;
      trace(`${target} connection lost before ${describeArgv(argv)} started; dialing again`);
    }
  }
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
  pc: Pooled,
  conn: Connection,
  target: string,
  argv: readonly string[],
  opts: RunOptions,
): Promise<RunResult> {
  const timeoutSec = opts.timeoutSec ?? conn.commandTimeout;
  pc.commandStarted();
  try {
    if (transportMode() === "shell") {
      const shell = await takeShell(pc, conn, target);
      // A shell already runs as the connection's user, through sudo when asked: no sudo per command.
      if (shell) return await shell.run(argv, buildCommandLine(argv, false), opts, timeoutSec);
    }
    return await runExec(pc, target, argv, buildCommandLine(argv, conn.sudo), opts, timeoutSec);
  } finally {
    pc.commandEnded();
  }
}

/** A command on a channel of its own (exec), waiting for a channel while the server refuses one. */
async function runExec(
  pc: Pooled,
  target: string,
  argv: readonly string[],
  command: string,
  opts: RunOptions,
  timeoutSec: number,
): Promise<RunResult> {
  for (let refusals = 1; ; refusals++) {
    await pc.takeSlot();
    let res: RunResult;
    try {
      res = await execOnChannel(pc, target, argv, command, opts, timeoutSec);
    } catch (e) {
      await pc.slotFailed(e, refusals); // a refused channel: try again
      continue;
    }
    pc.releaseSlot();
    return res;
  }
}

/**
 * An idle remote shell of the connection, or a new one while it has channels to spare; waits for one
 * otherwise. Undefined when remote shells cannot run on this connection (the caller uses exec).
 */
async function takeShell(pc: Pooled, conn: Connection, target: string): Promise<RemoteShell | undefined> {
  for (let refusals = 0; ; ) {
    if (pc.closed)
      throw new ConnectionGone(`on ${target}: cannot start a command; the SSH connection was lost`);
    if (pc.shellsUnavailable(conn.sudo) !== undefined) return undefined;
    const idle = pc.idleShell(conn.sudo);
    if (idle) return idle;
    // A new shell holds its slot until its channel closes (RemoteShell tells the connection).
    if (pc.tryTakeSlot()) {
      try {
        return await openShell(pc, conn, target, (argv) => runOn(pc, conn, target, argv, { timeoutSec: 30 }));
      } catch (e) {
        if (!(e instanceof ShellUnavailable)) {
          await pc.slotFailed(e, ++refusals); // a refused channel: look again
          continue;
        }
        pc.releaseSlot();
        pc.noShellsFor(conn.sudo, e.message);
        trace(`${target} no remote shell (${e.message}); one channel per command`);
        return undefined;
      }
    }
    await pc.waitForChange();
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

/** The pooled connection for conn, dialed on first use; forgotten by the pool once it closes. */
async function connectPooled(conn: Connection, target: string): Promise<Pooled> {
  const key = poolKey(conn, conn.proxy);
  let p = pool.get(key);
  if (!p) {
    const dialed: Promise<Pooled> = dialPooled(conn, target, () => {
      if (pool.get(key) === dialed) pool.delete(key);
    });
    p = dialed;
    pool.set(key, dialed);
    dialed.catch(() => pool.get(key) === dialed && pool.delete(key));
  }
  return p;
}

/** Dials conn and sets up its pooled connection (which closes every channel when the connection drops). */
async function dialPooled(conn: Connection, target: string, forget: () => void): Promise<Pooled> {
  const { client, jump } = await dial(conn, target);
  counters.connections++;
  return new PooledConnection<RemoteShell>(client, jump, target, forget);
}

function execOnChannel(
  pc: Pooled,
  target: string,
  argv: readonly string[],
  command: string,
  opts: RunOptions,
  timeoutSec: number,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    pc.openChannel(command, (err: Error | undefined, channel: ClientChannel) => {
      if (err) {
        reject(err);
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
