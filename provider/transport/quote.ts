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

/**
 * Safe words the shell reads as syntax, not as a command name, in command position (POSIX reserved words
 * plus bash's; `!`, `{` and `}` are quoted anyway).
 */
const RESERVED = new Set([
  "case",
  "coproc",
  "do",
  "done",
  "elif",
  "else",
  "esac",
  "fi",
  "for",
  "function",
  "if",
  "in",
  "select",
  "then",
  "time",
  "until",
  "while",
]);

/** Joins an argv array into one command line for `/bin/sh`, quoting every element. */
export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error("cannot run an empty command");
  return argv
    .map((arg, i) => {
      const q = quoteArg(arg);
      // In command position an unquoted `NAME=value` is an assignment and `if` a keyword: quote them so
      // the shell runs argv[0] as the command, like every other word is taken literally.
      if (i === 0 && q === arg && (RESERVED.has(arg) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(arg)))
        return `'${arg}'`;
      return q;
    })
    .join(" ");
}
