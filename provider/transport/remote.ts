/**
 * What callers see of a host: `Remote.run(argv)` and the result of a command, the command line a run
 * sends (quoted POSIX-style, locale pinned), and the error for a failed command. No SSH here: the SSH
 * implementation is ssh.ts; tests use fakes of the same interface.
 */
import type { Readable, Writable } from "node:stream";
import { RemoteCommandError } from "../core/errors";
import { quoteArgv } from "./quote";

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

/**
 * A command whose stdin and stdout are streams (Remote.stream): what it prints is read from `stdout`, what
 * it reads is written to `stdin`, both with back-pressure; `done` resolves once it has ended.
 */
export interface RemoteStream {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Its exit code (128 + the signal's number if killed; null if unknown) and the end of its stderr. */
  readonly done: Promise<{ code: number | null; stderr: string }>;
  /** Closes the channel (the command's stdin ends and its output has nowhere to go). */
  close(): void;
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
  /** Starts argv on a channel of its own whose stdin and stdout are streams (absent in test fakes). */
  stream?(argv: readonly string[]): Promise<RemoteStream>;
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
