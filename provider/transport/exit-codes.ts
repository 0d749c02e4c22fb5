/**
 * Exit codes with a meaning, shared by the remote scripts and the TypeScript that reads them. The shell
 * side defines the same names and values as `EXIT_<NAME>=<code>` lines in prelude.sh; a unit test keeps
 * the two equal.
 */
export const ExitCode = {
  /** `fail` in a script: a check refused to go on; the reason is on stderr. */
  REFUSED: 3,
  /** clone.sh make: a directory has the clone's name already; nothing was made. */
  NAME_TAKEN: 4,
} as const;

/** Pure: the prelude's shell assignments for ExitCode, e.g. `EXIT_REFUSED=3`, in declaration order. */
export function exitCodeAssignments(): string[] {
  return Object.entries(ExitCode).map(([name, code]) => `EXIT_${name}=${code}`);
}
