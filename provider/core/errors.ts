/**
 * Errors a user sees. `UserError` carries a complete, human message (what failed, where, what to do)
 * and is reported without a stack trace: a bad input or a host in the wrong state is not a bug.
 */
export class UserError extends Error {
  /** `cause`: the error this one adds context to (kept for callers; the engine shows only the message). */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UserError";
    // The engine prints `stack` when present; for user mistakes the message is the whole story.
    this.stack = message;
  }
}

/** A remote command that exited non-zero. The message never contains secrets: argv holds none. */
export class RemoteCommandError extends UserError {
  constructor(
    readonly target: string,
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
    hint?: string,
  ) {
    super(formatRemoteError(target, argv, code, stderr, hint));
    this.name = "RemoteCommandError";
  }
}

const MAX_STDERR = 600;

/** Keeps the end of stderr (where tools put the actual error) within a readable size. */
export function trimStderr(stderr: string): string {
  const s = stderr.trim();
  return s.length <= MAX_STDERR ? s : `...${s.slice(s.length - MAX_STDERR)}`;
}

/** Shortens long arguments (inline scripts) so the message names the command without flooding. */
export function describeArgv(argv: readonly string[]): string {
  // Our inline scripts run as `sh -c SCRIPT NAME ARGS...`: NAME and ARGS say what it was.
  if (argv[0] === "sh" && argv[1] === "-c" && argv.length >= 4) argv = argv.slice(3);
  return argv
    .map((a) => (a.length > 80 || a.includes("\n") ? `${firstLine(a).slice(0, 40)}...` : a))
    .join(" ");
}

function firstLine(s: string): string {
  const i = s.indexOf("\n");
  return i < 0 ? s : s.slice(0, i);
}

function formatRemoteError(
  target: string,
  argv: readonly string[],
  code: number | null,
  stderr: string,
  hint?: string,
): string {
  const status = code === null ? "was killed or timed out" : `exited with code ${code}`;
  const err = trimStderr(stderr);
  let msg = `on ${target}: \`${describeArgv(argv)}\` ${status}`;
  if (err) msg += `: ${err}`;
  if (hint) msg += `\nhint: ${hint}`;
  return msg;
}
