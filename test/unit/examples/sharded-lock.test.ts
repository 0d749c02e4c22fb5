/**
 * examples/sharded/lock.ts on the real Pulumi CLI's error for a locked stack (v3.276.0, PostgreSQL backend:
 * a `pulumi up` killed with SIGKILL left its lock, the next `pulumi up` of the stack printed this).
 */
import { expect } from "chai";
import { lockedMessage, parseStackLocks } from "../../../examples/sharded/lock";

const LOCK_URL =
  "postgres://****:****@127.0.0.1:55432/plbstate/.pulumi/locks/organization/lxc-btrfs-sharded/shard-a/" +
  "722ff6ff-8d0e-4ba7-9617-fffbe85be07f.json?sslmode=verify-full&sslrootcert=/var/tmp/pulumi-lxc-btrfs/fleet/postgres/server.crt";
const CLI_ERROR =
  "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete " +
  "the lock file with `pulumi cancel`.\n" +
  `  ${LOCK_URL}: created by root@vm (pid 14889) at 2026-12-07T15:52:56Z\n`;

describe("examples/sharded: the CLI's stack lock error, told per shard", () => {
  it("reads every lock holder of the CLI's error, inside the Automation API's CommandError text", () => {
    const wrapped = `code: 255\n stdout: \n stderr: ${CLI_ERROR}\n err?: Error: exit status 255\n`;
    expect(parseStackLocks(wrapped)).to.deep.equal([
      { user: "root", host: "vm", pid: 14889, since: "2026-12-07T15:52:56Z" },
    ]);
    const two = CLI_ERROR.replace("1 lock(s)", "2 lock(s)").replace(
      /\n$/,
      `\n  ${LOCK_URL.replace("722ff6ff", "0badf00d")}: created by ops@ci-7 (pid 7) at 2026-12-07T16:00:00Z\n`,
    );
    expect(parseStackLocks(two)).to.deep.equal([
      { user: "root", host: "vm", pid: 14889, since: "2026-12-07T15:52:56Z" },
      { user: "ops", host: "ci-7", pid: 7, since: "2026-12-07T16:00:00Z" },
    ]);
  });

  it("is undefined for any other error", () => {
    expect(parseStackLocks("error: update failed")).to.equal(undefined);
    expect(parseStackLocks("")).to.equal(undefined);
  });

  it("names the stack, the holder and the command that clears a stale lock", () => {
    const locks = parseStackLocks(CLI_ERROR) ?? [];
    expect(lockedMessage("lxc-btrfs-sharded", "shard-a", locks)).to.equal(
      "stack shard-a (project lxc-btrfs-sharded) is locked by another update (root@vm, pid 14889, since " +
        "2026-12-07T15:52:56Z): nothing was done in this shard. Wait for that update to end, then run again. " +
        "If it is not running any more (its runner or pulumi crashed or was killed), clear the stale lock with " +
        "`pulumi cancel --yes --stack organization/lxc-btrfs-sharded/shard-a` against the same backend " +
        "(PULUMI_BACKEND_URL), then run again.",
    );
    expect(lockedMessage("p", "s", [])).to.match(
      /^stack s \(project p\) is locked by another update: nothing/,
    );
  });
});
