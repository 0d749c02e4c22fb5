/**
 * The long-lived remote shells of a pooled connection (shell-loop.sh) against the fleet's real sshd: one
 * session serves many commands; a timed-out command's whole process group is killed on the host and the
 * shell is reused; the same through sudo; stdin bytes and progress lines pass; and a host where the loop
 * cannot start (sudo wanting a password) keeps one channel per command with the same errors.
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { type ConnectionArgs, connectionSchema } from "../../provider/core/connection";
import { closeAllConnections, openRemote, poolStats } from "../../provider/transport/ssh";
import { type FleetHost, loadInventory } from "../support/fleet";
import { hostSh, rejectionOf } from "../support/host";

const inv = loadInventory();
// h4: the fault matrices cut and restart h1, which would fail these for reasons of their own.
const host = inv.hosts.find((h) => h.name === "h4") as FleetHost;
const key = (name: "root" | "admin") => readFileSync(inv.users[name].privateKeyPath as string, "utf8");

function conn(extra: Partial<ConnectionArgs> = {}) {
  return connectionSchema.parse({
    host: host.address,
    user: "root",
    privateKey: key("root"),
    knownHostsPath: inv.knownHostsPath,
    ...extra,
  });
}

/** The shell that ran a command is its parent: `sh -c 'echo $PPID'` names the remote shell serving it. */
const SHELL_PID = ["sh", "-c", 'echo "$PPID"'];

describe("remote shells per pooled connection (real OpenSSH server)", function () {
  this.timeout(120_000);
  afterEach(() => closeAllConnections());

  for (const who of ["root", "admin (sudo)"] as const) {
    const c = () =>
      who === "root" ? conn() : conn({ user: inv.users.admin.user, privateKey: key("admin"), sudo: true });

    it(`${who}: 60 sequential commands use one session; a timed-out command's process group is killed and the shell serves the next`, async () => {
      const r = openRemote(c());
      const shells = new Set<string>();
      for (let i = 0; i < 60; i++) shells.add((await r.check(SHELL_PID)).stdout);
      expect(shells.size).to.equal(1);

      const tag = `plb-rs-timeout-${who === "root" ? "r" : "s"}-${process.pid}`;
      const msg = await rejectionOf(
        r.run(["sh", "-c", 'sleep 300 & sleep 301; echo "$0"', tag], { timeoutSec: 1 }),
      );
      expect(msg).to.equal(
        `on ${r.target}: \`${tag}\` was killed or timed out\n` +
          "hint: no result within 1s (connection.commandTimeout)",
      );
      // The group (the script and both sleeps) is gone from the host: no process has the tag or a sleep of it.
      let left = "";
      for (let i = 0; i < 50; i++) {
        left = await hostSh(host, 'pgrep -f "$1|sleep 30[01]" | grep -v "^$$\\$" || true', tag);
        if (left === "") break;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(left).to.equal("");
      expect((await r.check(["id", "-u"])).stdout).to.equal("0\n");
      // The kill ran on a second shell; the timed-out command's shell took its reply and serves again:
      // two commands at once find exactly those two idle shells.
      const both = await Promise.all([0, 1].map(() => r.check(["sh", "-c", 'sleep 0.5; echo "$PPID"'])));
      const after = new Set(both.map((o) => o.stdout));
      expect(after.size).to.equal(2);
      expect(after.has([...shells][0])).to.equal(true);
    });
  }

  it("passes stdin bytes exactly and streams progress lines while the command runs", async () => {
    const r = openRemote(conn());
    const stdin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const res = await r.check(["sh", "-c", "od -An -tx1 | tr -d ' \\n' | wc -c"], { stdin });
    expect(res.stdout.trim()).to.equal("512");
    const seen: { line: string; at: number }[] = [];
    const t0 = Date.now();
    const out = await r.check(["sh", "-c", "echo one; sleep 1; echo two"], {
      onStdoutLine: (line) => seen.push({ line, at: Date.now() - t0 }),
    });
    expect(out.stdout).to.equal("one\ntwo\n");
    expect(seen.map((s) => s.line)).to.deep.equal(["one", "two"]);
    expect(seen[0].at).to.be.below(800); // "one" arrived before the command ended
  });

  it("runs concurrent commands on at most 8 shells of one connection", async () => {
    const dials = poolStats().connections;
    const r = openRemote(conn());
    const outs = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        r.check(["sh", "-c", 'sleep 0.2; echo "$1 $PPID"', "n", String(i)]),
      ),
    );
    expect(outs.map((o) => o.stdout.split(" ")[0])).to.deep.equal(
      Array.from({ length: 40 }, (_, i) => `${i}`),
    );
    expect(poolStats().connections - dials).to.equal(1);
    const shells = new Set(outs.map((o) => o.stdout.split(" ")[1]));
    expect(shells.size).to.be.within(2, 8);
  });

  it("a command killed by a signal gets 128 + its number on both transports", async () => {
    const codes: Record<string, (number | null)[]> = {};
    for (const mode of ["shell", "exec"]) {
      process.env.LXC_BTRFS_TRANSPORT = mode;
      try {
        const r = openRemote(conn());
        codes[mode] = [
          (await r.run(["sh", "-c", "kill -TERM $$"])).code,
          (await r.run(["sh", "-c", "kill -KILL $$"])).code,
          (await r.run(["sh", "-c", "exit 3"])).code,
        ];
      } finally {
        delete process.env.LXC_BTRFS_TRANSPORT;
      }
    }
    expect(codes).to.deep.equal({ shell: [143, 137, 3], exec: [143, 137, 3] });
  });

  it("keeps one channel per command where the shell cannot start: sudo that wants a password", async () => {
    const password = readFileSync(inv.users.password.passwordPath as string, "utf8").trim();
    const r = openRemote(
      conn({ user: inv.users.password.user, privateKey: undefined, password, sudo: true }),
    );
    for (let i = 0; i < 2; i++) {
      expect(await rejectionOf(r.check(["id", "-u"]))).to.equal(
        `on ${inv.users.password.user}@${host.address}:22: \`id -u\` exited with code 1: sudo: a password is required\n` +
          "hint: the user needs passwordless sudo (NOPASSWD in sudoers) for connection.sudo",
      );
    }
  });
});
