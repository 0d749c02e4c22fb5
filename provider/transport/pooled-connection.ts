/**
 * One pooled SSH connection and its channels: how many may be open at once (learned from the server's
 * refusals), the commands waiting for one, and opening a channel with a lost connection or a refused
 * session reported as such.
 */
import type { ClientChannel } from "ssh2";
import { UserError } from "../core/errors";
import type { RemoteShell } from "./remote-shell";
import { trace } from "./remote";

/**
 * Channels (sessions) opened at once on one connection, at most. OpenSSH allows 10 by default (MaxSessions)
 * and some servers fewer; a server that refuses a channel teaches the connection its real limit, and the
 * command waits for a channel instead of failing (see runPooled).
 */
export const MAX_CHANNELS = 8;
/** A refused channel with none of ours open (the server still closing old ones): retry this often. */
export const REFUSED_RETRIES = 100;
export const REFUSED_PAUSE_MS = 50;
export const IDLE_CLOSE_MS = 15_000;

export interface PooledConnection {
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

/** The server refused to open a channel (session) on a live connection. */
export class ChannelRefused extends Error {}

/** Waits for a channel to spare (closing an idle remote shell for one if need be), and takes it. */
export async function takeSlot(pc: PooledConnection): Promise<void> {
  while (pc.active >= pc.limit) {
    (pc.idleShells.plain.pop() ?? pc.idleShells.sudo.pop())?.close();
    await new Promise<void>((resolve) => pc.waiters.push(resolve));
  }
  pc.active++;
}

export function releaseSlot(pc: PooledConnection): void {
  pc.active--;
  wake(pc);
}

/** Lets the first command waiting for a channel or a shell look again. */
export function wake(pc: PooledConnection): void {
  pc.waiters.shift()?.();
}

export function learnLimit(pc: PooledConnection, others: number, target: string): void {
  pc.limit = Math.max(1, Math.min(pc.limit, others));
  trace(`${target} channel refused with ${others} other(s) open; limit now ${pc.limit}`);
}

/** The connection was lost before a command was sent: nothing of it ran. */
export class ConnectionGone extends UserError {}

/** pc.client.exec, with a connection already gone reported through the callback like any failure. */
export function openChannel(
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

export function channelOpenError(pc: PooledConnection, target: string, err: Error): Error {
  const message = `on ${target}: cannot start a command (${err.message}); the connection was lost or refused a session`;
  const failure = pc.closed ? new ConnectionGone(message) : new UserError(message);
  // "Channel open failure" on a connection that is still up: the server said no to one more session.
  if (/Channel open failure/i.test(err.message) && !pc.closed)
    return new ChannelRefused(err.message, { cause: failure });
  return failure;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
