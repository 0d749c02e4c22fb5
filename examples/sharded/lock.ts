// The lock of a shard's stack, as the runner reports it. A self-managed backend (a directory, an object
// store, PostgreSQL) holds one lock per running update of a stack; a second `pulumi up` of the same stack
// fails with the CLI's own text, which names lock files, not what to do. This turns that text into the
// shard's error: who holds the lock since when, and how to clear a stale one. Pure, no I/O.

/** One lock as the CLI describes it: `created by USER@HOST (pid PID) at TIME`. */
export interface StackLock {
  user: string;
  host: string;
  pid: number;
  since: string;
}

const LOCKED = /the stack is currently locked by \d+ lock\(s\)/;
const HOLDER = /: created by (\S+)@(\S+) \(pid (\d+)\) at (\S+)$/;

/** The locks named in the CLI's "the stack is currently locked" error, or undefined for any other text. */
export function parseStackLocks(text: string): StackLock[] | undefined {
  const at = text.search(LOCKED);
  if (at < 0) return undefined;
  const locks: StackLock[] = [];
  for (const line of text.slice(at).split("\n").slice(1)) {
    const m = HOLDER.exec(line.trimEnd());
    if (!m) break;
    locks.push({ user: m[1], host: m[2], pid: Number(m[3]), since: m[4] });
  }
  return locks;
}

/** The shard's error for a stack another update holds. */
export function lockedMessage(project: string, stack: string, locks: StackLock[]): string {
  const holders = locks.map((l) => `${l.user}@${l.host}, pid ${l.pid}, since ${l.since}`).join("; ");
  return (
    `stack ${stack} (project ${project}) is locked by another update` +
    (holders ? ` (${holders})` : "") +
    ": nothing was done in this shard. Wait for that update to end, then run again. If it is not running " +
    "any more (its runner or pulumi crashed or was killed), clear the stale lock with " +
    `\`pulumi cancel --yes --stack organization/${project}/${stack}\` against the same backend ` +
    "(PULUMI_BACKEND_URL), then run again."
  );
}
