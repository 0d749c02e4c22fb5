import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { cloneArgsSchema } from "../../../provider/clone/inputs";
import { type CheckFailure, formatFailures, validate } from "../../../provider/core/inputs";
import { rootfsArgsSchema } from "../../../provider/rootfs/inputs";

const NAME_REASON =
  "must be a container name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..' or '/'";
const PATH_REASON =
  "must be an absolute, normalized path of letters, digits and '_.@+-' (no '..', '//', spaces or shell characters)";
const HOST_REASON = "must be a DNS name or an IP address";
const EMPTY_HOST_REASON = "must not be empty: give the address or DNS name of the host";
const HOSTKEY_REASON =
  "must be an OpenSSH public key line ('ssh-ed25519 AAAA...') or a 'SHA256:...' fingerprint";
const HOSTNAME_REASON =
  "must be a valid hostname: labels of letters, digits and '-', each 1-63 characters, separated by '.'";
const UNKNOWN = "is not a known property; check the spelling";

const CONNECTION_DEFAULTS = {
  port: 22,
  user: "root",
  insecureSkipHostKeyCheck: false,
  dialErrorLimit: 10,
  perDialTimeout: 15,
  commandTimeout: 3600,
  sudo: false,
};

function failuresOf(
  schema: typeof rootfsArgsSchema | typeof cloneArgsSchema,
  input: unknown,
): CheckFailure[] {
  const res = validate(schema, input);
  if (res.ok) throw new Error(`expected failures, got ${JSON.stringify(res.value)}`);
  return res.failures;
}

function rootfs(over: Record<string, unknown> = {}, conn: Record<string, unknown> = {}) {
  return { connection: { host: "h1.example.com", ...conn }, container: "c1", ...over };
}

describe("schema: LxcSubvolumeRootfs inputs", () => {
  it("applies every default and nothing else", () => {
    expect(validate(rootfsArgsSchema, { connection: { host: "h1" }, container: "c1" })).to.deep.equal({
      ok: true,
      value: {
        connection: { host: "h1", ...CONNECTION_DEFAULTS },
        container: "c1",
        lxcPath: "/var/lib/lxc",
        ifRunning: "fail",
        nestedSubvolumes: "fail",
        keepBackup: false,
        onDelete: "retain",
      },
    });
  });

  it("keeps given values and strips engine keys such as __provider", () => {
    const res = validate(rootfsArgsSchema, {
      __provider: "exports.handler = ...",
      __internal: 1,
      connection: { host: "10.0.0.5", port: 2222, user: "admin", sudo: true },
      container: "web-1.prod",
      lxcPath: "/srv/lxc",
      ifRunning: "restart",
      nestedSubvolumes: "keep",
      keepBackup: true,
      onDelete: "revert",
    });
    expect(res).to.deep.equal({
      ok: true,
      value: {
        connection: { ...CONNECTION_DEFAULTS, host: "10.0.0.5", port: 2222, user: "admin", sudo: true },
        container: "web-1.prod",
        lxcPath: "/srv/lxc",
        ifRunning: "restart",
        nestedSubvolumes: "keep",
        keepBackup: true,
        onDelete: "revert",
      },
    });
  });

  const portTable: [string, unknown, CheckFailure[]][] = [
    ["70000", 70000, [{ property: "connection.port", reason: "must be between 1 and 65535" }]],
    ["0", 0, [{ property: "connection.port", reason: "must be between 1 and 65535" }]],
    ["-1", -1, [{ property: "connection.port", reason: "must be between 1 and 65535" }]],
    ['"22" (a string)', "22", [{ property: "connection.port", reason: "must be a number" }]],
    ["22.5", 22.5, [{ property: "connection.port", reason: "must be a whole number" }]],
  ];
  for (const [what, port, want] of portTable) {
    it(`port ${what} fails on connection.port`, () => {
      expect(failuresOf(rootfsArgsSchema, rootfs({}, { port }))).to.deep.equal(want);
    });
  }

  it("port 1 and 65535 are accepted", () => {
    for (const port of [1, 65535]) {
      const res = validate(rootfsArgsSchema, rootfs({}, { port }));
      expect(res.ok && res.value.connection.port).to.equal(port);
    }
  });

  const hostTable: [string, string, CheckFailure[]][] = [
    [
      "empty",
      "",
      // One failure, not two: an empty host is not also "not a DNS name".
      [{ property: "connection.host", reason: EMPTY_HOST_REASON }],
    ],
    ["with a command", "h1;rm -rf /", [{ property: "connection.host", reason: HOST_REASON }]],
    ["an ssh option", "-oProxyCommand=touch /x", [{ property: "connection.host", reason: HOST_REASON }]],
    ["with a space", "h1 h2", [{ property: "connection.host", reason: HOST_REASON }]],
    ["user@host", "root@h1", [{ property: "connection.host", reason: HOST_REASON }]],
    ["a label starting with '-'", "-h1.example.com", [{ property: "connection.host", reason: HOST_REASON }]],
  ];
  for (const [what, host, want] of hostTable) {
    it(`host ${what} (${JSON.stringify(host)}) fails on connection.host`, () => {
      expect(failuresOf(rootfsArgsSchema, rootfs({}, { host }))).to.deep.equal(want);
    });
  }

  it("accepts DNS names, IPv4, IPv6 and bracketed IPv6 hosts", () => {
    for (const host of ["h1", "h1.example.com", "h1.example.com.", "10.0.0.5", "::1", "fe80::1", "[::1]"]) {
      const res = validate(rootfsArgsSchema, rootfs({}, { host }));
      expect(res.ok && res.value.connection.host, host).to.equal(host);
    }
  });

  const nameTable: [string, string][] = [
    ["parent directory", "../etc"],
    ["a slash", "a/b"],
    ["a leading dash", "-x"],
    ["a leading dot", ".hidden"],
    ["65 characters", "x".repeat(65)],
    ["empty", ""],
    ["a space", "a b"],
    ["a newline", "c1\n"],
    ["command substitution", "$(id)"],
    ["'..' inside", "a..b"],
  ];
  for (const [what, container] of nameTable) {
    it(`container with ${what} (${JSON.stringify(container)}) fails with the exact reason`, () => {
      expect(failuresOf(rootfsArgsSchema, rootfs({ container }))).to.deep.equal([
        { property: "container", reason: NAME_REASON },
      ]);
    });
  }

  it("accepts container names of 1 and 64 characters with '_', '.' and '-'", () => {
    for (const container of ["x", "x".repeat(64), "web_1.prod-2", "9lives"]) {
      const res = validate(rootfsArgsSchema, rootfs({ container }));
      expect(res.ok && res.value.container, container).to.equal(container);
    }
  });

  const pathTable: [string, string][] = [
    ["relative", "var/lib/lxc"],
    ["with '..'", "/var/lib/../lxc"],
    ["with '.'", "/var/./lxc"],
    ["with '//'", "/var//lib/lxc"],
    ["with a space", "/var/lib/my lxc"],
    ["with '$'", "/var/$HOME"],
    ["empty", ""],
  ];
  for (const [what, lxcPath] of pathTable) {
    it(`lxcPath ${what} (${JSON.stringify(lxcPath)}) fails with the exact reason`, () => {
      expect(failuresOf(rootfsArgsSchema, rootfs({ lxcPath }))).to.deep.equal([
        { property: "lxcPath", reason: PATH_REASON },
      ]);
    });
  }

  it("normalizes a trailing slash of lxcPath away", () => {
    const res = validate(rootfsArgsSchema, rootfs({ lxcPath: "/var/lib/lxc/" }));
    expect(res.ok && res.value.lxcPath).to.equal("/var/lib/lxc");
  });

  it("reports a misspelt key as unknown, and the real key as required", () => {
    expect(failuresOf(rootfsArgsSchema, { connection: { host: "h1" }, contianer: "c1" })).to.deep.equal([
      { property: "container", reason: "is required" },
      { property: "contianer", reason: UNKNOWN },
    ]);
  });

  it("reports an unknown connection key with its full path", () => {
    expect(failuresOf(rootfsArgsSchema, rootfs({}, { hots: "x" }))).to.deep.equal([
      { property: "connection.hots", reason: UNKNOWN },
    ]);
  });

  it("a jump host cannot have its own jump host", () => {
    expect(
      failuresOf(rootfsArgsSchema, rootfs({}, { proxy: { host: "j1", proxy: { host: "j2" } } })),
    ).to.deep.equal([{ property: "connection.proxy.proxy", reason: UNKNOWN }]);
  });

  it("missing container, connection and host are 'is required'", () => {
    expect(failuresOf(rootfsArgsSchema, { connection: { host: "h1" } })).to.deep.equal([
      { property: "container", reason: "is required" },
    ]);
    expect(failuresOf(rootfsArgsSchema, { container: "c1" })).to.deep.equal([
      { property: "connection", reason: "is required" },
    ]);
    expect(failuresOf(rootfsArgsSchema, { connection: {}, container: "c1" })).to.deep.equal([
      { property: "connection.host", reason: "is required" },
    ]);
  });

  it("enum and boolean inputs say what is allowed", () => {
    expect(failuresOf(rootfsArgsSchema, rootfs({ ifRunning: "kill" }))).to.deep.equal([
      { property: "ifRunning", reason: 'must be one of "fail", "restart", "live"' },
    ]);
    expect(failuresOf(rootfsArgsSchema, rootfs({ keepBackup: "yes" }))).to.deep.equal([
      { property: "keepBackup", reason: "must be true or false" },
    ]);
  });

  it("an empty secret is refused when given", () => {
    expect(failuresOf(rootfsArgsSchema, rootfs({}, { privateKey: "" }))).to.deep.equal([
      { property: "connection.privateKey", reason: "must not be empty when given" },
    ]);
  });

  it("user names that could be ssh options are refused", () => {
    expect(failuresOf(rootfsArgsSchema, rootfs({}, { user: "-oProxyCommand=x" }))).to.deep.equal([
      { property: "connection.user", reason: "must be a user name" },
    ]);
  });

  describe("hostKey", () => {
    let dir = "";
    let line = "";
    let fp = "";
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "plb-schema-"));
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "h1 key", "-f", join(dir, "k")]);
      line = readFileSync(join(dir, "k.pub"), "utf8").trim();
      fp = execFileSync("ssh-keygen", ["-lf", join(dir, "k.pub")], { encoding: "utf8" }).split(" ")[1];
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("accepts a real ed25519 public key line (with its comment) and its SHA256 fingerprint", () => {
      for (const hostKey of [line, line.split(" ").slice(0, 2).join(" "), fp]) {
        const res = validate(rootfsArgsSchema, rootfs({}, { hostKey }));
        expect(res.ok && res.value.connection.hostKey, hostKey).to.equal(hostKey);
      }
      expect(fp).to.match(/^SHA256:[A-Za-z0-9+/]{43}$/);
    });

    for (const [what, hostKey] of [
      ["garbage", "garbage"],
      ["a bare base64 blob", "AAAAC3NzaC1lZDI1NTE5AAAAIJ"],
      ["an MD5 fingerprint", "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"],
      ["a truncated SHA256 fingerprint", "SHA256:abc"],
      ["an empty string", ""],
    ]) {
      it(`refuses ${what}`, () => {
        expect(failuresOf(rootfsArgsSchema, rootfs({}, { hostKey }))).to.deep.equal([
          { property: "connection.hostKey", reason: HOSTKEY_REASON },
        ]);
      });
    }
  });

  it("formatFailures joins property and reason", () => {
    expect(
      formatFailures("LxcSubvolumeRootfs", [
        { property: "connection.port", reason: "must be between 1 and 65535" },
        { property: "container", reason: "is required" },
      ]),
    ).to.equal(
      "LxcSubvolumeRootfs: invalid input: connection.port must be between 1 and 65535; container is required",
    );
  });
});

describe("schema: LxcSnapshotClone inputs", () => {
  const base = { connection: { host: "h1" }, source: "src", name: "new" };

  it("applies defaults; hostname stays unset", () => {
    expect(validate(cloneArgsSchema, base)).to.deep.equal({
      ok: true,
      value: {
        connection: { host: "h1", ...CONNECTION_DEFAULTS },
        lxcPath: "/var/lib/lxc",
        source: "src",
        name: "new",
        ifSourceRunning: "fail",
        start: false,
      },
    });
  });

  it("ignores __provider", () => {
    const res = validate(cloneArgsSchema, { ...base, __provider: "x" });
    expect(res.ok).to.equal(true);
  });

  it("a name equal to the source fails on name", () => {
    expect(failuresOf(cloneArgsSchema, { ...base, name: "src" })).to.deep.equal([
      { property: "name", reason: "must differ from source" },
    ]);
  });

  for (const hostname of [
    "bad_name",
    "-web",
    "web-",
    "a..b",
    `${"a".repeat(64)}.example.com`,
    "web server",
  ]) {
    it(`hostname ${JSON.stringify(hostname)} fails with the exact reason`, () => {
      expect(failuresOf(cloneArgsSchema, { ...base, hostname })).to.deep.equal([
        { property: "hostname", reason: HOSTNAME_REASON },
      ]);
    });
  }

  it("accepts a hostname of labels up to 63 characters", () => {
    const hostname = `${"a".repeat(63)}.example.com`;
    const res = validate(cloneArgsSchema, { ...base, hostname });
    expect(res.ok && res.value.hostname).to.equal(hostname);
  });

  it("reports an invalid source name and a missing name together", () => {
    expect(failuresOf(cloneArgsSchema, { connection: { host: "h1" }, source: "../x" })).to.deep.equal([
      { property: "source", reason: NAME_REASON },
      { property: "name", reason: "is required" },
    ]);
  });

  it("ifSourceRunning lists its choices", () => {
    expect(failuresOf(cloneArgsSchema, { ...base, ifSourceRunning: "kill" })).to.deep.equal([
      { property: "ifSourceRunning", reason: 'must be one of "fail", "freeze", "restart"' },
    ]);
  });
});
