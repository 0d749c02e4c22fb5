/**
 * The SSH transport against the fleet's real OpenSSH servers: auth methods, host key checks, sudo,
 * jump hosts, faults, quoting through a real remote /bin/sh, and connection reuse.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { type ConnectionArgs, connectionSchema } from "../../provider/core/connection";
import { closeAllConnections, openRemote, poolStats } from "../../provider/transport/ssh";
import { countAccepted, type FleetHost, fault, loadInventory } from "../support/fleet";
import { rejectionOf } from "../support/host";

const inv = loadInventory();
const [h1, h2] = inv.hosts;
const key = (name: "root" | "admin") => readFileSync(inv.users[name].privateKeyPath!, "utf8");

function conn(host: FleetHost, extra: Partial<ConnectionArgs> = {}) {
  return connectionSchema.parse({
    host: host.address,
    user: "root",
    privateKey: key("root"),
    knownHostsPath: inv.knownHostsPath,
    ...extra,
  });
}

describe("ssh transport (real OpenSSH servers)", function () {
  this.timeout(120_000);
  afterEach(() => closeAllConnections());

  it("runs a command as root with key auth, LC_ALL=C, and returns code, stdout and stderr", async () => {
    const r = openRemote(conn(h1));
    const res = await r.run(["sh", "-c", 'echo "$LC_ALL"; id -u; echo err >&2; exit 7']);
    expect({ code: res.code, stdout: res.stdout, stderr: res.stderr }).to.deep.equal({
      code: 7,
      stdout: "C\n0\n",
      stderr: "err\n",
    });
    expect(res.stdoutBytes).to.deep.equal(Buffer.from("C\n0\n"));
    expect(r.target).to.equal(`root@${h1.address}:22`);
  });

  it("round-trips random strings byte for byte through the remote /bin/sh", async () => {
    const r = openRemote(conn(h1));
    const alphabet = ` \t\n'"\\$\`;&|<>(){}[]*?~!#%^=,.:-_/aZ09éß€😀\u0001\u007f`;
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const samples = ["", "-n", "--", "$(id)", "`id`", "a;b", "a\nb", "*", "'", '"\'"', "é"];
    for (let i = 0; i < 150; i++) {
      const len = Math.floor(rand() * 24);
      let s = "";
      for (let j = 0; j < len; j++) s += [...alphabet][Math.floor(rand() * [...alphabet].length)];
      samples.push(s);
    }
    const results = await Promise.all(samples.map((s) => r.run(["printf", "%s", s])));
    results.forEach((res, i) => {
      expect(res.stdout, JSON.stringify(samples[i])).to.equal(samples[i]);
    });
  });

  it("runs privileged commands through sudo -n for a non-root user", async () => {
    const r = openRemote(conn(h1, { user: inv.users.admin.user, privateKey: key("admin"), sudo: true }));
    const res = await r.check(["id", "-u"]);
    expect(res.stdout).to.equal("0\n");
  });

  it("logs in with a password, and reports a sudo that wants a password with a hint", async () => {
    const password = readFileSync(inv.users.password.passwordPath!, "utf8").trim();
    const plain = openRemote(conn(h1, { user: inv.users.password.user, privateKey: undefined, password }));
    expect((await plain.check(["id", "-un"])).stdout).to.equal(`${inv.users.password.user}\n`);
    const r = openRemote(
      conn(h1, { user: inv.users.password.user, privateKey: undefined, password, sudo: true }),
    );
    const msg = await rejectionOf(r.check(["id", "-u"]));
    expect(msg).to.equal(
      `on ${inv.users.password.user}@${h1.address}:22: \`id -u\` exited with code 1: sudo: a password is required\n` +
        "hint: the user needs passwordless sudo (NOPASSWD in sudoers) for connection.sudo",
    );
    expect(msg).to.not.include(password);
  });

  it("uses an encrypted key with its passphrase, and an ssh-agent", async () => {
    const passphrase = readFileSync(inv.users.encrypted.passphrasePath!, "utf8").trim();
    const enc = readFileSync(inv.users.encrypted.privateKeyPath!, "utf8");
    const r = openRemote(
      conn(h1, { user: inv.users.encrypted.user, privateKey: enc, privateKeyPassword: passphrase }),
    );
    expect((await r.check(["id", "-un"])).stdout).to.equal(`${inv.users.encrypted.user}\n`);
    const noPass = openRemote(
      conn(h2, { user: inv.users.encrypted.user, privateKey: enc, dialErrorLimit: 1 }),
    );
    expect(await rejectionOf(noPass.check(["true"]))).to.equal(
      `cannot use the private key for ${inv.users.encrypted.user}@${h2.address}:22: it is encrypted or unreadable; set connection.privateKeyPassword or check the key`,
    );

    const dir = mkdtempSync(join(tmpdir(), "plb-agent-"));
    const sock = join(dir, "agent.sock");
    const agent = execFileSync("ssh-agent", ["-a", sock], { encoding: "utf8" });
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent)?.[1];
    try {
      execFileSync("ssh-add", [inv.users.root.privateKeyPath!], {
        env: { ...process.env, SSH_AUTH_SOCK: sock },
        stdio: "ignore",
      });
      const viaAgent = openRemote(conn(h2, { privateKey: undefined, agentSocketPath: sock }));
      expect((await viaAgent.check(["id", "-un"])).stdout).to.equal("root\n");
    } finally {
      if (pid) process.kill(Number(pid));
    }
  });

  it("reaches a host through a jump host", async () => {
    const r = openRemote(
      conn(h2, {
        proxy: {
          host: h1.address,
          user: "root",
          privateKey: key("root"),
          knownHostsPath: inv.knownHostsPath,
        },
      }),
    );
    expect(r.target).to.equal(`root@${h2.address}:22 (via root@${h1.address}:22)`);
    const res = await r.check(["hostname", "-I"]);
    expect(res.stdout).to.include(h2.address);
  });

  it("refuses a wrong host key before running anything, naming host, expected and presented keys", async () => {
    const before = countAccepted(h1);
    const other = h2.hostKeys.find((k) => k.startsWith("ssh-ed25519")) as string;
    const expected = execFileSync("ssh-keygen", ["-lf", "-"], { input: other, encoding: "utf8" }).split(
      " ",
    )[1];
    const presented = execFileSync("ssh-keygen", ["-lf", "-"], {
      input: h1.hostKeys.find((k) => k.startsWith("ssh-ed25519")),
      encoding: "utf8",
    }).split(" ")[1];
    const started = Date.now();
    const msg = await rejectionOf(
      openRemote(conn(h1, { hostKey: other })).check(["touch", "/tmp/should-not-exist"]),
    );
    expect(msg).to.equal(
      `host key verification failed for root@${h1.address}:22: expected ${expected} (connection.hostKey), but the host presented ${presented}. ` +
        "Nothing was run on the host. If the host was reinstalled, check the new key out of band and update connection.hostKey.",
    );
    expect(Date.now() - started).to.be.below(10 * 15 * 1000);
    expect(countAccepted(h1)).to.equal(before);
  });

  it("never lends a pooled connection to a caller with another host key policy", async () => {
    expect((await openRemote(conn(h1)).check(["true"])).code).to.equal(0);
    const other = h2.hostKeys.find((k) => k.startsWith("ssh-ed25519")) as string;
    const msg = await rejectionOf(openRemote(conn(h1, { hostKey: other })).check(["true"]));
    expect(msg).to.match(/^host key verification failed for root@/);
  });

  it("accepts a pinned SHA256 fingerprint and a hashed known_hosts file", async () => {
    const line = h1.hostKeys.find((k) => k.startsWith("ssh-ed25519")) as string;
    const fp = execFileSync("ssh-keygen", ["-lf", "-"], { input: line, encoding: "utf8" }).split(" ")[1];
    expect((await openRemote(conn(h1, { hostKey: fp })).check(["true"])).code).to.equal(0);
    expect(
      (await openRemote(conn(h2, { knownHostsPath: inv.hashedKnownHostsPath })).check(["true"])).code,
    ).to.equal(0);
  });

  it("refuses a host missing from known_hosts, and a wrong key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "plb-kh-"));
    const kh = join(dir, "known_hosts");
    writeFileSync(
      kh,
      readFileSync(inv.knownHostsPath, "utf8")
        .split("\n")
        .filter((l) => !l.startsWith(`${h1.address} `))
        .join("\n"),
    );
    const msg = await rejectionOf(openRemote(conn(h1, { knownHostsPath: kh })).check(["true"]));
    expect(msg).to.match(
      new RegExp(
        `^host key verification failed for root@${h1.address.replace(/\./g, "\\.")}:22: the host is not in ${kh} \\(it presented SHA256:`,
      ),
    );
    const wrong = await rejectionOf(
      openRemote(conn(h1, { privateKey: key("admin"), dialErrorLimit: 3 })).check(["true"]),
    );
    expect(wrong).to.equal(
      `cannot log in to root@${h1.address}:22: the server rejected the credentials given (connection.privateKey). Check the user, and that the key is in the user's authorized_keys.`,
    );
  });

  it("fails an unreachable address within dialErrorLimit x perDialTimeout, naming it", async () => {
    const started = Date.now();
    const msg = await rejectionOf(
      openRemote(conn(h1, { host: "10.213.0.99", dialErrorLimit: 2, perDialTimeout: 2 })).check(["true"]),
    );
    const took = Date.now() - started;
    expect(msg).to.match(/^cannot connect to root@10\.213\.0\.99:22: /);
    expect(took).to.be.below(2 * 2 * 1000 + 1500);
  });

  it("reports a connection lost mid-command when sshd dies, and recovers when it is back", async () => {
    const r = openRemote(conn(h2, { dialErrorLimit: 1, perDialTimeout: 3 }));
    // Settle at once so the rejection is handled while sshd is being killed.
    const running = r.check(["sleep", "20"]).then(
      () => Promise.reject(new Error("expected a rejection")),
      (e: Error) => Promise.reject(e),
    );
    running.catch(() => undefined);
    await new Promise((res) => setTimeout(res, 1000));
    await fault(h2, "sshd-stop");
    try {
      const msg = await rejectionOf(running);
      expect(msg).to.match(
        new RegExp(`^on root@${h2.address.replace(/\./g, "\\.")}:22: \`sleep 20\` was killed or timed out`),
      );
      expect(msg).to.include("hint: the SSH connection was lost while the command ran");
    } finally {
      await fault(h2, "sshd-start");
    }
    await closeAllConnections();
    expect((await openRemote(conn(h2)).check(["true"])).code).to.equal(0);
  });

  it("still works with 150 ms of added latency", async () => {
    await fault(h2, "latency", "150");
    try {
      const r = openRemote(conn(h2));
      await r.check(["true"]);
      const t = Date.now();
      expect((await r.check(["echo", "ok"])).stdout).to.equal("ok\n");
      expect(Date.now() - t).to.be.at.least(150);
    } finally {
      await fault(h2, "clear");
    }
  });

  it("shares one SSH connection among 40 concurrent operations on a host", async () => {
    const before = countAccepted(h1);
    const dials = poolStats().connections;
    const r = openRemote(conn(h1));
    const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => r.check(["echo", String(i)])));
    expect(outs.map((o) => o.stdout)).to.deep.equal(Array.from({ length: 40 }, (_, i) => `${i}\n`));
    expect(poolStats().connections - dials).to.equal(1);
    expect(countAccepted(h1) - before).to.equal(1);
  });

  it("never passes a NUL byte: quoting refuses it before anything is sent", async () => {
    const before = countAccepted(h1);
    expect(await rejectionOf(openRemote(conn(h1)).run(["echo", "a\0b"]))).to.equal(
      "an argument contains a NUL byte, which cannot be passed to a command",
    );
    expect(countAccepted(h1)).to.equal(before);
  });
});
