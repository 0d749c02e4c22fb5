/**
 * A long-lived shell on a channel of a pooled connection (shell-loop.sh), running one command at a time,
 * framed by shell-protocol.ts: a command costs a request and a reply on an open channel instead of a new
 * channel, session and login shell.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ClientChannel } from "ssh2";
import type { Connection } from "../core/connection";
import { RemoteCommandError } from "../core/errors";
import { ConnectionGone } from "./pooled-connection";
import { buildCommandLine, type RunOptions, type RunResult } from "./remote";
import { encodeRequest, LineSplitter, READY, ReplyDecoder } from "./shell-protocol";
import { trace } from "./util";

/**
 * What a remote shell needs of the pooled connection it runs on, and all it may do to it (the connection,
 * pooled-connection.ts, owns the state behind these: channel slots, idle shells, kills under way).
 */
export interface ShellConnection {
  /** The SSH connection is gone. */
  readonly closed: boolean;
  /** Opens a channel running `command` on the slot taken for this shell; a failure comes typed (see there). */
  openChannel(command: string, cb: (err: Error | undefined, channel: ClientChannel) => void): void;
  /** The shell is ready for another command. */
  shellIdle(shell: RemoteShell): void;
  /** The shell's channel closed: it is no longer idle, and its channel slot is free. */
  shellClosed(shell: RemoteShell): void;
  /** A kill of a timed-out command is under way: closing the connection waits for it. */
  trackKill(done: Promise<void>): void;
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
 * "ID PGID" in $1/p); nothing if that request is no longer running, or the file holds no plausible group.
 */
const KILL_GROUP =
  'read -r id p <"$1/p" || exit 0; [ "$id" = "$2" ] || exit 0; case $p in "" | *[!0-9]* | 0 | 1) exit 0 ;; esac; kill -KILL "-$p" 2>/dev/null || :';

/** The remote shell cannot run on this host (the connection then runs one channel per command). */
export class ShellUnavailable extends Error {}

/** Opens a channel running shell-loop.sh (under sudo -n when the connection asks for sudo). */
export function openShell(
  pc: ShellConnection,
  conn: Connection,
  target: string,
  /** Runs a command on the same connection (another shell or a channel): the kill of a timed-out group. */
  runKill: (argv: string[]) => Promise<RunResult>,
): Promise<RemoteShell> {
  const command = buildCommandLine(["sh", "-c", shellLoop(), "plb-shell"], conn.sudo);
  return new Promise((resolve, reject) => {
    pc.openChannel(command, (err: Error | undefined, channel: ClientChannel) => {
      if (err) {
        reject(err);
        return;
      }
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
          const done = runKill(argv).then(
            (r) => trace(`${target} killed the process group of a timed-out command: exit ${r.code}`),
            (e: Error) =>
              trace(`${target} could not kill the process group of a timed-out command: ${e.message}`),
          );
          pc.trackKill(done);
        };
        const shell = new RemoteShell(pc, conn.sudo, channel, target, kill);
        resolve(shell);
        shell.start(head.subarray(m[0].length));
      };
      const onErr = (chunk: Buffer) => {
        errText = (errText + chunk.toString("utf8")).slice(-2000);
      };
      const onClose = () => {
        clearTimeout(timer);
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
export class RemoteShell {
  private current?: ShellRequest;
  private closed = false;
  private errLines: LineSplitter;

  constructor(
    private readonly pc: ShellConnection,
    /** Runs under sudo: it serves only the commands of callers that ask for sudo. */
    readonly sudo: boolean,
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
    this.pc.shellIdle(this);
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
    this.pc.shellClosed(this);
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
