/**
 * Dialing a host: TCP and SSH, through a jump host when given, with the host key verified before
 * authentication completes (by default against ~/.ssh/known_hosts), retried with short growing pauses,
 * and every failure turned into a message that names the host and says what to check.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import type { ConnectConfig } from "ssh2";
import { type Connection, describeTarget, type JumpConnection } from "../core/connection";
import { UserError } from "../core/errors";
import type { FromConfig } from "./credentials";
import { describeVerdict, type HostKeyPolicy, type HostKeyVerdict, verifyHostKey } from "./hostkeys";
import { sleep } from "./util";

const counters = { dials: 0 };

/** How many TCP+SSH handshakes this process started (jump hosts included). */
export function dialCount(): number {
  return counters.dials;
}

class PermanentDialError extends UserError {}

/** Dials conn (through its jump host, if any), retrying up to connection.dialErrorLimit times. */
export async function dial(
  conn: Connection,
  target: string,
): Promise<{ client: import("ssh2").Client; jump?: import("ssh2").Client }> {
  let lastErr: unknown;
  for (let attempt = 1; attempt <= conn.dialErrorLimit; attempt++) {
    try {
      let jump: import("ssh2").Client | undefined;
      let sock: NodeJS.ReadableStream | undefined;
      if (conn.proxy) {
        jump = await dialOnce(conn.proxy, describeTarget(conn.proxy));
        sock = await forward(jump, conn.host, conn.port, target);
      }
      return { client: await dialOnce(conn, target, sock), jump };
    } catch (e) {
      lastErr = e;
      if (e instanceof PermanentDialError || attempt === conn.dialErrorLimit) break;
      // Short, growing pauses: the whole dial stays well inside dialErrorLimit x perDialTimeout.
      await sleep(Math.min(250 * 2 ** (attempt - 1), 2000, (conn.perDialTimeout * 1000) / 4));
    }
  }
  if (lastErr instanceof UserError) throw lastErr;
  throw new UserError(`cannot connect to ${target}: ${(lastErr as Error)?.message ?? lastErr}`);
}

function forward(
  jump: import("ssh2").Client,
  host: string,
  port: number,
  target: string,
): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => {
    jump.forwardOut("127.0.0.1", 0, host, port, (err, stream) => {
      if (err) reject(new UserError(`cannot reach ${target} through the jump host: ${err.message}`));
      else resolve(stream);
    });
  });
}

function hostKeyPolicy(conn: JumpConnection): { policy: HostKeyPolicy; source: string } {
  if (conn.hostKey)
    return { policy: { kind: "pinned", expected: conn.hostKey }, source: "connection.hostKey" };
  if (conn.insecureSkipHostKeyCheck) return { policy: { kind: "insecure" }, source: "" };
  const path = conn.knownHostsPath ?? `${homedir()}/.ssh/known_hosts`;
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // A missing file trusts nothing: the verdict says "unknown host" and names the file.
  }
  return { policy: { kind: "knownHosts", path, text }, source: path };
}

function readPrivateKey(conn: JumpConnection, target: string): string | undefined {
  if (conn.privateKey) return conn.privateKey;
  if (!conn.privateKeyPath) return undefined;
  try {
    return readFileSync(conn.privateKeyPath, "utf8");
  } catch (e) {
    throw new PermanentDialError(
      `cannot read connection.privateKeyPath ${conn.privateKeyPath} for ${target}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
}

async function dialOnce(
  conn: JumpConnection,
  target: string,
  sock?: NodeJS.ReadableStream,
): Promise<import("ssh2").Client> {
  const { NodeSSH } = require("node-ssh") as typeof import("node-ssh");
  counters.dials++;
  const { policy, source } = hostKeyPolicy(conn);
  let verdict: HostKeyVerdict = { ok: true };
  const config: import("node-ssh").Config = {
    host: conn.host.replace(/^\[(.*)\]$/, "$1"),
    port: conn.port,
    username: conn.user,
    password: conn.password,
    privateKey: readPrivateKey(conn, target),
    passphrase: conn.privateKeyPassword,
    agent: conn.agentSocketPath,
    readyTimeout: Math.round(conn.perDialTimeout * 1000),
    keepaliveInterval: 5000,
    keepaliveCountMax: 3,
    sock: sock as ConnectConfig["sock"],
    hostVerifier: (key: Buffer) => {
      verdict = verifyHostKey(policy, conn.host, conn.port, key);
      return verdict.ok;
    },
  };
  const ssh = new NodeSSH();
  try {
    await ssh.connect(config);
  } catch (e) {
    const v = verdict as HostKeyVerdict;
    if (!v.ok) throw new PermanentDialError(describeVerdict(v, target, source));
    throw classifyDialError(e as Error & { level?: string; code?: string }, target, conn);
  }
  const client = ssh.connection;
  if (!client) throw new UserError(`cannot connect to ${target}: connection closed during setup`);
  client.on("error", () => undefined); // errors surface on the channels in use; never crash the process
  // Requests and replies are small messages answered at once: do not hold them back for ACKs (Nagle).
  if (process.env.LXC_BTRFS_TRANSPORT !== "exec-nagle") client.setNoDelay(true);
  return client;
}

function classifyDialError(
  e: Error & { level?: string; code?: string },
  target: string,
  conn: JumpConnection,
): Error {
  const msg = e.message ?? String(e);
  if (e.level === "client-authentication" || /authentication methods failed/i.test(msg)) {
    return new PermanentDialError(
      `cannot log in to ${target}: the server rejected the credentials given (${describeAuth(conn)}). ` +
        `Check the user, and that the key is in the user's authorized_keys.`,
    );
  }
  if (/passphrase|Encrypted private key|bad decrypt|Cannot parse privateKey/i.test(msg)) {
    return new PermanentDialError(
      `cannot use the private key for ${target}: it is encrypted or unreadable; set ${(conn as FromConfig).credentialsFrom === "config" ? "stack config lxc-btrfs:privateKeyPassword" : "connection.privateKeyPassword"} or check the key`,
    );
  }
  if (/Timed out while waiting for handshake/i.test(msg)) {
    return new UserError(
      `cannot connect to ${target}: no SSH handshake within ${conn.perDialTimeout}s (host down or link cut?)`,
    );
  }
  // Node's messages often start with the code already ("connect ECONNREFUSED 127.0.0.1:1"): say it once.
  const detail = msg.replace(/^connect /, "");
  const codePrefix = e.code && !detail.startsWith(e.code) ? `${e.code} ` : "";
  const hint = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(`${e.code} ${msg}`)
    ? " (is the host up and sshd listening on that port?)"
    : "";
  return new UserError(`cannot connect to ${target}: ${codePrefix}${detail}${hint}`);
}

function describeAuth(conn: JumpConnection & FromConfig): string {
  if (conn.credentialsFrom === "config")
    return conn.privateKey ? "stack config lxc-btrfs:privateKey" : "stack config lxc-btrfs:password";
  if (conn.privateKey) return "connection.privateKey";
  if (conn.privateKeyPath) return "connection.privateKeyPath";
  if (conn.password) return "connection.password";
  if (conn.agentSocketPath) return "connection.agentSocketPath";
  return "none: set connection.privateKey, privateKeyPath, password or agentSocketPath, or stack config lxc-btrfs:privateKey";
}
