/**
 * POSIX shell quoting. Every byte sent to a remote `/bin/sh` (which may be dash) goes through here.
 *
 * We quote with single quotes and write an embedded `'` as `'\''`. Unlike bash's `$'...'`
 * (google/zx's choice), this is understood by every POSIX shell.
 */

/** Characters that never need quoting in a POSIX shell word. */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument so that `/bin/sh` reads it back as exactly the same bytes. */
export function quoteArg(arg: string): string {
  if (arg.includes("\0")) {
    // A NUL byte cannot be passed in argv at all; refuse rather than truncate silently.
    throw new Error("an argument contains a NUL byte, which cannot be passed to a command");
  }
  if (arg !== "" && SAFE_WORD.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Joins an argv array into one command line for `/bin/sh`, quoting every element. */
export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error("cannot run an empty command");
  return argv.map(quoteArg).join(" ");
}
