/**
 * One pooled SSH connection, the one owner of its state: its channels (how many may be open at once,
 * learned from the server's refusals, and the commands waiting for one), its idle remote shells, the
 * commands in progress (it closes once idle), and the kills of timed-out commands still under way. ssh.ts
 * routes commands through its methods; a remote shell sees it through remote-shell.ts's ShellConnection.
 */
import type { Client, ClientChannel } from "ssh2";
import { UserError } from "../core/errors";
import { sleep, trace } from "./util";

/**
 * Channels (sessions) opened at once on one connection, at most. OpenSSH allows 10 by default (MaxSessions)
 * and some servers fewer; a server that refuses a channel teaches the connection its real limit, and the
 * command waits for a channel instead of failing (see slotFailed).
 */
export const MAX_CHANNELS = 8;
/** A refused channel with none of ours open (the server still closing old ones): retry this often. */
export const REFUSED_RETRIES = 100;
export const REFUSED_PAUSE_MS = 50;
export const IDLE_CLOSE_MS = 15_000;

/** The server refused to open a channel (session) on a live connection. */
export class ChannelRefused extends Error {}

/** The connection was lost before a command was sent: nothing of it ran. */
export class ConnectionGone extends UserError {}

/** A remote shell as the connection keeps it: under sudo or not (callers with and without share no shell). */
export interface PoolShell {
  readonly sudo: boolean;
  close(): void;
}

type Kind = "plain" | "sudo";
const kind = (sudo: boolean): Kind => (sudo ? "sudo" : "plain");

export class PooledConnection<Shell extends PoolShell> {
  /** Channels open or being opened: exec channels in use and remote shells. */
  private active = 0;
  /** Channels this connection may have open at once: MAX_CHANNELS until the server refuses one. */
  private limit = MAX_CHANNELS;
  /** Commands in progress (the connection is idle at 0). */
  private busy = 0;
  /** Commands waiting for a channel slot or an idle shell. */
  private readonly waiters: (() => void)[] = [];
  private idleTimer?: NodeJS.Timeout;
  private gone = false;
  /** closeWhenIdle was asked while commands still ran: close after the last one. */
  private closeAfterLast = false;
  /** Channels in use; closed when the connection drops, so their commands fail instead of hanging. */
  private readonly channels = new Set<ClientChannel>();
  /** Kills of timed-out commands' process groups still under way: closing waits for them. */
  private readonly kills = new Set<Promise<void>>();
  private readonly idleShells: Record<Kind, Shell[]> = { plain: [], sudo: [] };
  /** Why remote shells (plain, or under sudo) cannot run on this connection, once known: then exec. */
  private readonly noShells: Partial<Record<Kind, string>> = {};

  constructor(
    private readonly client: Client,
    private readonly jump: Client | undefined,
    /** `user@host:port`, for trace lines and messages. */
    readonly target: string,
    /** Called once the connection closes (lost, idle, or closed by us): the pool forgets it. */
    private readonly forget: () => void,
  ) {
    client.on("close", () => {
      this.gone = true;
      this.forget();
      jump?.end();
      for (const ch of this.channels) ch.close();
    });
  }

  /** The SSH connection is gone: lost, or closed by us. */
  get closed(): boolean {
    return this.gone;
  }

  // ---- Commands in progress, and closing ----------------------------------------------------------------

  /** A command starts here: the connection stays open until it ends. */
  commandStarted(): void {
    this.busy++;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** A command ended. With none in progress or waiting: close now if asked to, or after IDLE_CLOSE_MS. */
  commandEnded(): void {
    this.busy--;
    if (this.busy !== 0 || this.waiters.length !== 0) return;
    if (this.closeAfterLast) {
      this.shutdown();
      return;
    }
    if (this.gone) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.shutdown(), IDLE_CLOSE_MS);
    this.idleTimer.unref();
  }

  /** Closes once no command uses the connection (now, if none does), after the kills under way. */
  async closeWhenIdle(): Promise<void> {
    await this.killsDone();
    if (this.busy === 0) this.shutdown();
    else this.closeAfterLast = true;
  }

  /** Closes now, after the kills under way. */
  async close(): Promise<void> {
    await this.killsDone();
    this.shutdown();
  }

  /** A kill of a timed-out command's process group is under way: closing waits for it. */
  trackKill(done: Promise<void>): void {
    this.kills.add(done);
    done.finally(() => this.kills.delete(done));
  }

  /** Waits (10 s at most) for the kills under way, so that closing does not stop them. */
  private async killsDone(): Promise<void> {
    if (this.kills.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.kills),
      new Promise((r) => {
        timer = setTimeout(r, 10_000);
      }),
    ]);
    clearTimeout(timer);
  }

  private shutdown(): void {
    this.gone = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.forget();
    this.client.end();
    this.jump?.end();
  }

  // ---- Channel slots --------------------------------------------------------------------------------------

  /** Waits for a channel slot to spare (closing an idle remote shell for one if need be), and takes it. */
  async takeSlot(): Promise<void> {
    while (this.active >= this.limit) {
      (this.idleShells.plain.pop() ?? this.idleShells.sudo.pop())?.close();
      await this.waitForChange();
    }
    this.active++;
  }

  /** Takes a channel slot if one is free now. */
  tryTakeSlot(): boolean {
    if (this.active >= this.limit) return false;
    this.active++;
    return true;
  }

  releaseSlot(): void {
    this.active--;
    this.wake();
  }

  /**
   * A channel opened on a slot we hold failed with `e`; the slot is given back. A refusal is back-pressure,
   * not a failure: the server's session limit (MaxSessions) is lower than ours, or it has not yet freed
   * channels we closed. The connection learns the limit from the others of ours open; with none open, it
   * pauses briefly; then the caller tries again. Anything else, or the `refusals`-th refusal in a row once
   * that reaches REFUSED_RETRIES, is thrown (a refusal as the failure it wraps).
   */
  async slotFailed(e: unknown, refusals: number): Promise<void> {
    const others = this.active - 1;
    this.releaseSlot();
    if (!(e instanceof ChannelRefused)) throw e;
    if (refusals >= REFUSED_RETRIES) throw e.cause;
    this.limit = Math.max(1, Math.min(this.limit, others));
    trace(`${this.target} channel refused with ${others} other(s) open; limit now ${this.limit}`);
    if (others === 0) await sleep(REFUSED_PAUSE_MS);
  }

  /** Resolves when a slot was freed or a shell became idle: the caller looks again. */
  waitForChange(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Lets the first command waiting for a channel or a shell look again. */
  private wake(): void {
    this.waiters.shift()?.();
  }

  /**
   * Opens a channel running `command` (on a slot the caller holds), tracked until it closes. A failure comes
   * through `cb` as callers report it: ConnectionGone once the connection is lost, ChannelRefused for a
   * session the server refused on a live connection, else a UserError naming the host.
   */
  openChannel(command: string, cb: (err: Error | undefined, channel: ClientChannel) => void): void {
    const opened = (err: Error | undefined, channel: ClientChannel) => {
      if (err) {
        cb(this.channelOpenError(err), channel);
        return;
      }
      this.channels.add(channel);
      channel.on("close", () => this.channels.delete(channel));
      cb(undefined, channel);
    };
    try {
      this.client.exec(command, opened);
    } catch (e) {
      opened(e as Error, undefined as unknown as ClientChannel);
    }
  }

  /**
   * An exec channel running `command` whose stdin (writing to it) and stdout (reading from it) the caller
   * streams, with SSH flow control as back-pressure: for data that does not fit a RunResult (btrfs send and
   * receive). It counts as a command in progress and holds a channel slot until it closes; a refused channel
   * is waited for as for any command.
   */
  async openStream(command: string): Promise<ClientChannel> {
    this.commandStarted();
    try {
      for (let refusals = 1; ; refusals++) {
        await this.takeSlot();
        try {
          const channel = await new Promise<ClientChannel>((resolve, reject) =>
            this.openChannel(command, (err, ch) => (err ? reject(err) : resolve(ch))),
          );
          channel.once("close", () => {
            this.releaseSlot();
            this.commandEnded();
          });
          return channel;
        } catch (e) {
          await this.slotFailed(e, refusals); // a refused channel: try again
        }
      }
    } catch (e) {
      this.commandEnded();
      throw e;
    }
  }

  private channelOpenError(err: Error): Error {
    const message = `on ${this.target}: cannot start a command (${err.message}); the connection was lost or refused a session`;
    const failure = this.gone ? new ConnectionGone(message) : new UserError(message);
    // "Channel open failure" on a connection that is still up: the server said no to one more session.
    if (/Channel open failure/i.test(err.message) && !this.gone)
      return new ChannelRefused(err.message, { cause: failure });
    return failure;
  }

  // ---- Remote shells --------------------------------------------------------------------------------------

  /** An idle remote shell of that kind, taken for a command; none if there is none now. */
  idleShell(sudo: boolean): Shell | undefined {
    return this.idleShells[kind(sudo)].pop();
  }

  /** Why remote shells of that kind cannot run on this connection, once known (commands then use exec). */
  shellsUnavailable(sudo: boolean): string | undefined {
    return this.noShells[kind(sudo)];
  }

  noShellsFor(sudo: boolean, why: string): void {
    this.noShells[kind(sudo)] = why;
  }

  /** A shell is ready for another command: among the idle shells of its kind. */
  shellIdle(shell: Shell): void {
    this.idleShells[kind(shell.sudo)].push(shell);
    this.wake();
  }

  /** A shell's channel closed: it leaves the idle shells and gives its channel slot back. */
  shellClosed(shell: Shell): void {
    const idle = this.idleShells[kind(shell.sudo)];
    const at = idle.indexOf(shell);
    if (at >= 0) idle.splice(at, 1);
    this.releaseSlot();
  }
}
