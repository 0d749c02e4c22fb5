/**
 * Host key verification, pure: fingerprints, `known_hosts` parsing (plain and hashed entries, `[host]:port`,
 * wildcards, negations, `@revoked`), and the decision whether a presented key is trusted.
 * See sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT".
 */
import { createHash, createHmac } from "node:crypto";
import { globMatch } from "../core/glob";

/** `SHA256:<base64 without padding>` of a raw public key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The key blob of an OpenSSH public key line (`ssh-ed25519 AAAA... comment`). */
export function keyBlobOfLine(line: string): Buffer {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) throw new Error("not an OpenSSH public key line");
  return Buffer.from(parts[1], "base64");
}

export interface KnownHostEntry {
  marker: "" | "@revoked" | "@cert-authority";
  patterns: string;
  keyType: string;
  blob: Buffer;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry["marker"] = "";
    if (fields[0] === "@revoked" || fields[0] === "@cert-authority")
      marker = fields.shift() as KnownHostEntry["marker"];
    if (fields.length < 3) continue;
    out.push({ marker, patterns: fields[0], keyType: fields[1], blob: Buffer.from(fields[2], "base64") });
  }
  return out;
}

/** The name `known_hosts` uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const h = host.replace(/^\[(.*)\]$/, "$1");
  return port === 22 ? h : `[${h}]:${port}`;
}

function hashedMatch(pattern: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const m = /^\|1\|([^|]+)\|([^|]+)$/.exec(pattern);
  if (!m) return false;
  const mac = createHmac("sha1", Buffer.from(m[1], "base64")).update(name).digest("base64");
  return mac === m[2];
}

/** Whether an entry's host patterns match `name` (negated patterns exclude). */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith("|1|")) return hashedMatch(patterns, name);
  let matched = false;
  for (const p of patterns.split(",")) {
    if (p.startsWith("!")) {
      if (globMatch(p.slice(1), name, { ignoreCase: true })) return false;
    } else if (globMatch(p, name, { ignoreCase: true })) {
      matched = true;
    }
  }
  return matched;
}

export type HostKeyPolicy =
  | { kind: "pinned"; expected: string } // a key line or a SHA256: fingerprint
  | { kind: "knownHosts"; path: string; text: string }
  | { kind: "insecure" };

export type HostKeyVerdict =
  | { ok: true }
  | { ok: false; reason: "mismatch"; expected: string[]; presented: string }
  | { ok: false; reason: "unknown"; presented: string }
  | { ok: false; reason: "revoked"; presented: string };

/** Decides whether `presented` (a raw key blob) is the key we trust for host:port. */
export function verifyHostKey(
  policy: HostKeyPolicy,
  host: string,
  port: number,
  presented: Buffer,
): HostKeyVerdict {
  const fp = fingerprint(presented);
  if (policy.kind === "insecure") return { ok: true };
  if (policy.kind === "pinned") {
    const expected = policy.expected.startsWith("SHA256:")
      ? policy.expected.replace(/=+$/, "")
      : fingerprint(keyBlobOfLine(policy.expected));
    return expected === fp
      ? { ok: true }
      : { ok: false, reason: "mismatch", expected: [expected], presented: fp };
  }
  const name = knownHostsName(host, port);
  const entries = parseKnownHosts(policy.text).filter((e) => patternsMatch(e.patterns, name));
  if (entries.some((e) => e.marker === "@revoked" && e.blob.equals(presented))) {
    return { ok: false, reason: "revoked", presented: fp };
  }
  const keys = entries.filter((e) => e.marker === "");
  if (keys.some((e) => e.blob.equals(presented))) return { ok: true };
  if (keys.length === 0) return { ok: false, reason: "unknown", presented: fp };
  return { ok: false, reason: "mismatch", expected: keys.map((e) => fingerprint(e.blob)), presented: fp };
}

/** A message that says what went wrong and what to do; it contains fingerprints only, never secrets. */
export function describeVerdict(verdict: HostKeyVerdict, target: string, source: string): string {
  if (verdict.ok) return "";
  switch (verdict.reason) {
    case "mismatch":
      return (
        `host key verification failed for ${target}: expected ${verdict.expected.join(" or ")} (${source}), ` +
        `but the host presented ${verdict.presented}. Nothing was run on the host. If the host was reinstalled, ` +
        `check the new key out of band and update ${source}.`
      );
    case "unknown":
      return (
        `host key verification failed for ${target}: the host is not in ${source} (it presented ` +
        `${verdict.presented}). Nothing was run on the host. Check the fingerprint out of band, then add the key ` +
        `(ssh-keyscan) to ${source} or set connection.hostKey.`
      );
    case "revoked":
      return `host key verification failed for ${target}: its key ${verdict.presented} is marked @revoked in ${source}. Nothing was run on the host.`;
  }
}
