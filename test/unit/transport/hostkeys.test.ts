import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  describeVerdict,
  fingerprint,
  type HostKeyPolicy,
  keyBlobOfLine,
  knownHostsName,
  parseKnownHosts,
  patternsMatch,
  verifyHostKey,
} from "../../../provider/transport/hostkeys";

interface Key {
  line: string;
  type: string;
  blob: Buffer;
  /** What `ssh-keygen -lf` prints as the fingerprint. */
  fp: string;
}

describe("hostkeys", function () {
  this.timeout(30_000);
  let dir = "";
  const keys: Record<"ed" | "rsa" | "ec" | "other", Key> = {} as never;

  function sshKeygen(...args: string[]): string {
    return execFileSync("ssh-keygen", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "plb-hostkeys-"));
    const specs: [keyof typeof keys, string[]][] = [
      ["ed", ["-t", "ed25519"]],
      ["rsa", ["-t", "rsa", "-b", "2048"]],
      ["ec", ["-t", "ecdsa"]],
      ["other", ["-t", "ed25519"]],
    ];
    for (const [name, type] of specs) {
      const f = join(dir, name);
      sshKeygen("-q", ...type, "-N", "", "-C", `${name}@test`, "-f", f);
      const line = readFileSync(`${f}.pub`, "utf8").trim();
      keys[name] = {
        line,
        type: line.split(" ")[0],
        blob: Buffer.from(line.split(" ")[1], "base64"),
        fp: sshKeygen("-lf", `${f}.pub`).split(" ")[1],
      };
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** An entry line for known_hosts: PATTERNS TYPE BASE64. */
  const entry = (patterns: string, k: Key) => `${patterns} ${k.line.split(" ").slice(0, 2).join(" ")}`;

  describe("fingerprint and key lines", () => {
    it("fingerprint() equals ssh-keygen -lf for ed25519, rsa and ecdsa keys", () => {
      for (const name of ["ed", "rsa", "ec"] as const) {
        expect(keys[name].fp, name).to.match(/^SHA256:[A-Za-z0-9+/]{43}$/);
        expect(fingerprint(keys[name].blob), name).to.equal(keys[name].fp);
      }
    });

    it("keyBlobOfLine takes the base64 field of a line with or without comment and surrounding space", () => {
      const k = keys.ed;
      expect(keyBlobOfLine(k.line).equals(k.blob)).to.equal(true);
      expect(keyBlobOfLine(`  ${k.line.split(" ").slice(0, 2).join("\t")}  \n`).equals(k.blob)).to.equal(
        true,
      );
    });

    it("keyBlobOfLine refuses a line without a key with the exact message", () => {
      expect(() => keyBlobOfLine("ssh-ed25519")).to.throw(Error, "not an OpenSSH public key line");
    });

    it("knownHostsName: bare host on 22, [host]:port otherwise, IPv6 brackets dropped on 22", () => {
      expect(knownHostsName("h1.example.com", 22)).to.equal("h1.example.com");
      expect(knownHostsName("h1.example.com", 2222)).to.equal("[h1.example.com]:2222");
      expect(knownHostsName("[::1]", 22)).to.equal("::1");
      expect(knownHostsName("::1", 2222)).to.equal("[::1]:2222");
    });
  });

  describe("parseKnownHosts", () => {
    it("parses markers, skips comments, blank and short lines", () => {
      const text = [
        "# comment",
        "",
        entry("h1", keys.ed),
        `@revoked * ${keys.rsa.line}`,
        `@cert-authority *.example.com ${keys.ec.line}`,
        "h2 ssh-ed25519",
        `   ${entry("h3,h4", keys.rsa)}   `,
      ].join("\n");
      const got = parseKnownHosts(text).map((e) => ({ ...e, blob: e.blob.toString("base64") }));
      const b64 = (k: Key) => k.blob.toString("base64");
      expect(got).to.deep.equal([
        { marker: "", patterns: "h1", keyType: "ssh-ed25519", blob: b64(keys.ed) },
        { marker: "@revoked", patterns: "*", keyType: "ssh-rsa", blob: b64(keys.rsa) },
        { marker: "@cert-authority", patterns: "*.example.com", keyType: keys.ec.type, blob: b64(keys.ec) },
        { marker: "", patterns: "h3,h4", keyType: "ssh-rsa", blob: b64(keys.rsa) },
      ]);
    });
  });

  describe("patternsMatch agrees with ssh-keygen -F", () => {
    const lines = () => [
      entry("plain.example.com", keys.ed),
      entry("[port.example.com]:2222", keys.ed),
      entry("a.example.com,b.example.com,10.0.0.5", keys.ed),
      entry("*.wild.example.com,!bad.wild.example.com", keys.ed),
      entry("h?.q.example.com", keys.ed),
      entry("!neg-only.example.com", keys.ed),
    ];
    const names = [
      "plain.example.com",
      "PLAIN.example.com",
      "plain.example.org",
      "xplain.example.com",
      "[port.example.com]:2222",
      "port.example.com",
      "[port.example.com]:22",
      "a.example.com",
      "b.example.com",
      "c.example.com",
      "10.0.0.5",
      "10.0.0.50",
      "x.wild.example.com",
      "deep.x.wild.example.com",
      "wild.example.com",
      "bad.wild.example.com",
      "h1.q.example.com",
      "h12.q.example.com",
      "neg-only.example.com",
      "other.example.com",
    ];
    const expected: Record<string, boolean> = {
      "plain.example.com": true,
      "PLAIN.example.com": true,
      "plain.example.org": false,
      "xplain.example.com": false,
      "[port.example.com]:2222": true,
      "port.example.com": false,
      "[port.example.com]:22": false,
      "a.example.com": true,
      "b.example.com": true,
      "c.example.com": false,
      "10.0.0.5": true,
      "10.0.0.50": false,
      "x.wild.example.com": true,
      "deep.x.wild.example.com": true,
      "wild.example.com": false,
      "bad.wild.example.com": false,
      "h1.q.example.com": true,
      "h12.q.example.com": false,
      "neg-only.example.com": false,
      "other.example.com": false,
    };

    it("for plain, [host]:port, comma lists, '*' and '?' wildcards and negations", () => {
      const file = join(dir, "known_hosts_plain");
      writeFileSync(file, `${lines().join("\n")}\n`);
      const entries = parseKnownHosts(readFileSync(file, "utf8"));
      for (const name of names) {
        const ours = entries.some((e) => patternsMatch(e.patterns, name));
        const theirs = spawnSync("ssh-keygen", ["-F", name, "-f", file]).status === 0;
        expect(ours, `${name}: ssh-keygen -F says ${theirs}`).to.equal(theirs);
        expect(ours, name).to.equal(expected[name]);
      }
    });

    it("for entries hashed by ssh-keygen -H (comma lists become one hashed line per name)", () => {
      const file = join(dir, "known_hosts_hashed");
      writeFileSync(file, `${lines().slice(0, 3).join("\n")}\n`);
      sshKeygen("-q", "-H", "-f", file);
      const text = readFileSync(file, "utf8");
      const entries = parseKnownHosts(text);
      expect(entries.map((e) => e.patterns.slice(0, 3))).to.deep.equal(["|1|", "|1|", "|1|", "|1|", "|1|"]);
      expect(text).to.not.include("example.com");
      for (const name of names.filter(
        (n) => !n.includes("wild") && !n.includes(".q.") && !n.includes("neg"),
      )) {
        const ours = entries.some((e) => patternsMatch(e.patterns, name));
        const theirs = spawnSync("ssh-keygen", ["-F", name, "-f", file]).status === 0;
        expect(ours, `${name}: ssh-keygen -F says ${theirs}`).to.equal(theirs);
        // Hashed names are compared exactly: no case folding.
        expect(ours, name).to.equal(expected[name] && name !== "PLAIN.example.com");
      }
    });

    it("a malformed hashed pattern matches nothing", () => {
      expect(patternsMatch("|1|notvalid", "h1")).to.equal(false);
      expect(patternsMatch("|1|a|b|c", "h1")).to.equal(false);
    });
  });

  describe("verifyHostKey verdicts", () => {
    const known = (text: string): HostKeyPolicy => ({
      kind: "knownHosts",
      path: "/root/.ssh/known_hosts",
      text,
    });

    it("insecure accepts any key", () => {
      expect(verifyHostKey({ kind: "insecure" }, "h1", 22, keys.other.blob)).to.deep.equal({ ok: true });
    });

    it("pinned by key line or SHA256 fingerprint (with or without '=' padding)", () => {
      for (const expected of [keys.ed.line, keys.ed.fp, `${keys.ed.fp}=`]) {
        expect(verifyHostKey({ kind: "pinned", expected }, "h1", 22, keys.ed.blob), expected).to.deep.equal({
          ok: true,
        });
      }
    });

    it("pinned mismatch names the expected and the presented fingerprint", () => {
      expect(
        verifyHostKey({ kind: "pinned", expected: keys.ed.line }, "h1", 22, keys.rsa.blob),
      ).to.deep.equal({
        ok: false,
        reason: "mismatch",
        expected: [keys.ed.fp],
        presented: keys.rsa.fp,
      });
      expect(verifyHostKey({ kind: "pinned", expected: keys.ed.fp }, "h1", 22, keys.rsa.blob)).to.deep.equal({
        ok: false,
        reason: "mismatch",
        expected: [keys.ed.fp],
        presented: keys.rsa.fp,
      });
    });

    it("known_hosts: ok, mismatch (all keys for the host, in file order), unknown, revoked", () => {
      const text = [
        entry("h1.example.com", keys.ed),
        entry("h1.example.com", keys.ec),
        entry("[h2.example.com]:2222", keys.rsa),
        `@revoked * ${keys.other.line}`,
        `@cert-authority *.example.com ${keys.rsa.line}`,
      ].join("\n");
      const p = known(text);
      expect(verifyHostKey(p, "h1.example.com", 22, keys.ed.blob)).to.deep.equal({ ok: true });
      expect(verifyHostKey(p, "h1.example.com", 22, keys.ec.blob)).to.deep.equal({ ok: true });
      expect(verifyHostKey(p, "h1.example.com", 22, keys.rsa.blob)).to.deep.equal({
        ok: false,
        reason: "mismatch",
        expected: [keys.ed.fp, keys.ec.fp],
        presented: keys.rsa.fp,
      });
      expect(verifyHostKey(p, "h2.example.com", 2222, keys.rsa.blob)).to.deep.equal({ ok: true });
      // On another port the [host]:port entry does not apply, and a @cert-authority line is no host key.
      expect(verifyHostKey(p, "h2.example.com", 22, keys.rsa.blob)).to.deep.equal({
        ok: false,
        reason: "unknown",
        presented: keys.rsa.fp,
      });
      expect(verifyHostKey(p, "h3.example.com", 22, keys.ed.blob)).to.deep.equal({
        ok: false,
        reason: "unknown",
        presented: keys.ed.fp,
      });
      expect(verifyHostKey(p, "h1.example.com", 22, keys.other.blob)).to.deep.equal({
        ok: false,
        reason: "revoked",
        presented: keys.other.fp,
      });
    });

    it("a revoked key is refused even when also listed as the host's key", () => {
      const p = known([entry("h1", keys.ed), `@revoked h1 ${keys.ed.line}`].join("\n"));
      expect(verifyHostKey(p, "h1", 22, keys.ed.blob)).to.deep.equal({
        ok: false,
        reason: "revoked",
        presented: keys.ed.fp,
      });
    });

    it("verdicts from a known_hosts file hashed by ssh-keygen -H", () => {
      const file = join(dir, "known_hosts_verdicts");
      writeFileSync(
        file,
        `${[entry("h1.example.com", keys.ed), entry("[h2.example.com]:2222", keys.rsa)].join("\n")}\n`,
      );
      sshKeygen("-q", "-H", "-f", file);
      const p = known(readFileSync(file, "utf8"));
      expect(verifyHostKey(p, "h1.example.com", 22, keys.ed.blob)).to.deep.equal({ ok: true });
      expect(verifyHostKey(p, "h2.example.com", 2222, keys.rsa.blob)).to.deep.equal({ ok: true });
      expect(verifyHostKey(p, "h1.example.com", 22, keys.rsa.blob)).to.deep.equal({
        ok: false,
        reason: "mismatch",
        expected: [keys.ed.fp],
        presented: keys.rsa.fp,
      });
      expect(verifyHostKey(p, "h2.example.com", 22, keys.rsa.blob)).to.deep.equal({
        ok: false,
        reason: "unknown",
        presented: keys.rsa.fp,
      });
    });
  });

  describe("describeVerdict", () => {
    const target = "root@h1.example.com:22";
    const source = "/root/.ssh/known_hosts";

    it("ok is the empty string", () => {
      expect(describeVerdict({ ok: true }, target, source)).to.equal("");
    });

    it("mismatch names host, every expected and the presented fingerprint, and that nothing ran", () => {
      const msg = describeVerdict(
        { ok: false, reason: "mismatch", expected: [keys.ed.fp, keys.ec.fp], presented: keys.rsa.fp },
        target,
        source,
      );
      expect(msg).to.equal(
        `host key verification failed for root@h1.example.com:22: expected ${keys.ed.fp} or ${keys.ec.fp} ` +
          `(/root/.ssh/known_hosts), but the host presented ${keys.rsa.fp}. Nothing was run on the host. ` +
          "If the host was reinstalled, check the new key out of band and update /root/.ssh/known_hosts.",
      );
    });

    it("unknown says how to add the key", () => {
      const msg = describeVerdict({ ok: false, reason: "unknown", presented: keys.ed.fp }, target, source);
      expect(msg).to.equal(
        `host key verification failed for root@h1.example.com:22: the host is not in /root/.ssh/known_hosts ` +
          `(it presented ${keys.ed.fp}). Nothing was run on the host. Check the fingerprint out of band, then add ` +
          "the key (ssh-keyscan) to /root/.ssh/known_hosts or set connection.hostKey.",
      );
    });

    it("revoked names the revoked fingerprint", () => {
      const msg = describeVerdict({ ok: false, reason: "revoked", presented: keys.other.fp }, target, source);
      expect(msg).to.equal(
        `host key verification failed for root@h1.example.com:22: its key ${keys.other.fp} is marked @revoked ` +
          "in /root/.ssh/known_hosts. Nothing was run on the host.",
      );
    });

    it("a full pinned-mismatch round: the message carries the real fingerprints", () => {
      const v = verifyHostKey(
        { kind: "pinned", expected: keys.ed.line },
        "h1.example.com",
        22,
        keys.rsa.blob,
      );
      const msg = describeVerdict(v, target, "connection.hostKey");
      expect(msg).to.include(keys.ed.fp);
      expect(msg).to.include(keys.rsa.fp);
      expect(msg).to.include("root@h1.example.com:22");
      expect(msg).to.include("Nothing was run on the host");
      expect(msg).to.not.include(keys.ed.line.split(" ")[1]);
    });
  });
});
