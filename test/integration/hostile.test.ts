/**
 * Hostile and broken input, across both resources and fleet discovery: each is refused with a clear
 * error before any change, and the host's LXC directory is byte-for-byte what it was. Plus a fuzz test:
 * random strings in every name and path field are either rejected by validation or passed as exactly one
 * argv element, never as shell syntax.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { validate } from "../../provider/core/inputs";
import { discoverContainers } from "../../provider/fleet/rollout";
import { rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { quoteArgv } from "../../provider/transport/quote";
import { closeAllConnections } from "../../provider/transport/ssh";
import { countAccepted, type FleetHost, hostExec, loadInventory, manifest } from "../support/fleet";
import { rejectionOf } from "../support/host";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;
const h3 = inv.hosts.find((h) => h.fs !== "btrfs") as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath!, "utf8");
const base = {
  host: h1.address,
  privateKey: key,
  knownHostsPath: inv.knownHostsPath,
  dialErrorLimit: 1,
  perDialTimeout: 5,
};

/** [what, rootfs or clone inputs, the property the failure must name]. */
const BAD_INPUTS: [string, "rootfs" | "clone", Record<string, unknown>, string][] = [
  ["container with ;", "rootfs", { container: "a;rm -rf /" }, "container"],
  ["container with $()", "rootfs", { container: "$(reboot)" }, "container"],
  ["container with backticks", "rootfs", { container: "`id`" }, "container"],
  ["container ..", "rootfs", { container: ".." }, "container"],
  ["container ../etc", "rootfs", { container: "../etc" }, "container"],
  ["container with /", "rootfs", { container: "a/b" }, "container"],
  ["container absolute", "rootfs", { container: "/etc" }, "container"],
  ["container with newline", "rootfs", { container: "a\nb" }, "container"],
  ["container with NUL", "rootfs", { container: "a\0b" }, "container"],
  ["container 300 chars", "rootfs", { container: "a".repeat(300) }, "container"],
  ["container non-ASCII", "rootfs", { container: "contäiner" }, "container"],
  ["container leading dash", "rootfs", { container: "-rf" }, "container"],
  ["container empty", "rootfs", { container: "" }, "container"],
  ["container a number", "rootfs", { container: 42 }, "container"],
  ["port negative", "rootfs", { container: "web1", connection: { ...base, port: -1 } }, "connection.port"],
  ["port huge", "rootfs", { container: "web1", connection: { ...base, port: 70000 } }, "connection.port"],
  ["port fraction", "rootfs", { container: "web1", connection: { ...base, port: 22.5 } }, "connection.port"],
  [
    "port a string",
    "rootfs",
    { container: "web1", connection: { ...base, port: "22; id" } },
    "connection.port",
  ],
  ["host with ;", "rootfs", { container: "web1", connection: { ...base, host: "h;id" } }, "connection.host"],
  [
    "host with $()",
    "rootfs",
    { container: "web1", connection: { ...base, host: "$(id)" } },
    "connection.host",
  ],
  [
    "host an ssh option",
    "rootfs",
    { container: "web1", connection: { ...base, host: "-oProxyCommand=id" } },
    "connection.host",
  ],
  ["host empty", "rootfs", { container: "web1", connection: { ...base, host: "" } }, "connection.host"],
  [
    "user with ;",
    "rootfs",
    { container: "web1", connection: { ...base, user: "root;id" } },
    "connection.user",
  ],
  ["lxcPath escaping", "rootfs", { container: "web1", lxcPath: "/var/lib/lxc/../../etc" }, "lxcPath"],
  ["lxcPath relative", "rootfs", { container: "web1", lxcPath: "var/lib/lxc" }, "lxcPath"],
  ["lxcPath with space", "rootfs", { container: "web1", lxcPath: "/var/lib/my lxc" }, "lxcPath"],
  ["lxcPath with $()", "rootfs", { container: "web1", lxcPath: "/var/$(id)" }, "lxcPath"],
  ["lxcPath root", "rootfs", { container: "web1", lxcPath: "/" }, "lxcPath"],
  ["ifRunning unknown", "rootfs", { container: "web1", ifRunning: "maybe" }, "ifRunning"],
  ["onDelete unknown", "rootfs", { container: "web1", onDelete: "nuke" }, "onDelete"],
  [
    "dialErrorLimit 0",
    "rootfs",
    { container: "web1", connection: { ...base, dialErrorLimit: 0 } },
    "connection.dialErrorLimit",
  ],
  [
    "perDialTimeout negative",
    "rootfs",
    { container: "web1", connection: { ...base, perDialTimeout: -1 } },
    "connection.perDialTimeout",
  ],
  [
    "hostKey garbage",
    "rootfs",
    { container: "web1", connection: { ...base, hostKey: "yes please" } },
    "connection.hostKey",
  ],
  [
    "knownHostsPath relative",
    "rootfs",
    { container: "web1", connection: { ...base, knownHostsPath: "known_hosts" } },
    "connection.knownHostsPath",
  ],
  [
    "privateKeyPath with ;",
    "rootfs",
    { container: "web1", connection: { ...base, privateKeyPath: "/k;id" } },
    "connection.privateKeyPath",
  ],
  [
    "agentSocketPath with `",
    "rootfs",
    { container: "web1", connection: { ...base, agentSocketPath: "/s`id`" } },
    "connection.agentSocketPath",
  ],
  [
    "proxy host $()",
    "rootfs",
    { container: "web1", connection: { ...base, proxy: { host: "$(id)" } } },
    "connection.proxy.host",
  ],
  ["a misspelt field", "rootfs", { container: "web1", contianer: "web2" }, "contianer"],
  ["clone name = source", "clone", { source: "web1", name: "web1" }, "name"],
  ["clone name with ;", "clone", { source: "web1", name: "x;reboot" }, "name"],
  ["clone source --help", "clone", { source: "--help", name: "x" }, "source"],
  ["clone hostname $()", "clone", { source: "web1", name: "x", hostname: "$(id)" }, "hostname"],
  [
    "clone hostname too long",
    "clone",
    { source: "web1", name: "x", hostname: `${"a".repeat(64)}.example` },
    "hostname",
  ],
  [
    "clone ifSourceRunning unknown",
    "clone",
    { source: "web1", name: "x", ifSourceRunning: "kill" },
    "ifSourceRunning",
  ],
  ["clone start a string", "clone", { source: "web1", name: "x", start: "yes" }, "start"],
];

describe("hostile and broken input", function () {
  this.timeout(300_000);
  let before: string;
  beforeEach(async () => {
    before = await manifest(h1, "/var/lib/lxc");
  });
  afterEach(async () => {
    expect(await manifest(h1, "/var/lib/lxc")).to.equal(before);
  });
  after(() => closeAllConnections());

  it(`refuses ${BAD_INPUTS.length} bad inputs in check, naming the property, and create fails before any connection`, async () => {
    const logins = countAccepted(h1);
    for (const [what, kind, patch, property] of BAD_INPUTS) {
      const raw = { connection: base, ...patch };
      const res = validate(kind === "rootfs" ? rootfsArgsSchema : cloneArgsSchema, raw);
      expect(res.ok, what).to.equal(false);
      if (res.ok) continue;
      expect(
        res.failures.map((f) => f.property),
        what,
      ).to.include(property);
      for (const f of res.failures) expect(f.reason, what).to.match(/^(must|is) /);
      const check = await (kind === "rootfs" ? rootfs.check({}, raw) : clone.check({}, raw));
      expect(check.failures, what).to.deep.equal(res.failures);
      const msg = await rejectionOf(
        kind === "rootfs" ? rootfs.create(raw as never) : clone.create(raw as never),
      );
      expect(msg, what).to.match(
        kind === "rootfs" ? /^LxcSubvolumeRootfs: invalid inputs: / : /^LxcSnapshotClone: invalid inputs: /,
      );
      expect(msg, what).to.not.include(key.split("\n")[1]);
    }
    expect(countAccepted(h1)).to.equal(logins);
  });

  const HOST_CASES: [string, () => Promise<unknown>, RegExp][] = [
    [
      "a nonexistent container",
      () => rootfs.create(rootfsArgsSchema.parse({ connection: base, container: "nosuch" })),
      /container nosuch does not exist/,
    ],
    [
      "a clone of a nonexistent source",
      () => clone.create(cloneArgsSchema.parse({ connection: base, source: "nosuch", name: "x1" })),
      /source container nosuch does not exist in \/var\/lib\/lxc/,
    ],
    [
      "a wrong host key",
      () =>
        rootfs.create(
          rootfsArgsSchema.parse({
            connection: { ...base, hostKey: inv.hosts[1].hostKeys[0] },
            container: "web1",
          }),
        ),
      /^LxcSubvolumeRootfs web1: host key verification failed for root@10\.213\.0\.11:22: expected SHA256:/,
    ],
    [
      "a wrong private key",
      () =>
        rootfs.create(
          rootfsArgsSchema.parse({
            connection: { ...base, privateKey: readFileSync(inv.users.admin.privateKeyPath!, "utf8") },
            container: "web1",
          }),
        ),
      /^LxcSubvolumeRootfs web1: cannot log in to root@10\.213\.0\.11:22: the server rejected the credentials given/,
    ],
    [
      "sudo that asks for a password",
      () =>
        rootfs.create(
          rootfsArgsSchema.parse({
            connection: {
              ...base,
              privateKey: undefined,
              user: "plbpass",
              password: readFileSync(inv.users.password.passwordPath!, "utf8").trim(),
              sudo: true,
            },
            container: "web1",
          }),
        ),
      /sudo: a password is required\nhint: the user needs passwordless sudo/,
    ],
    [
      "discovery with a bad lxcPath",
      () => discoverContainers({ ...base }, { lxcPath: "/nonexistent" }),
      /lxcpath \/nonexistent does not exist/,
    ],
    [
      "discovery with a hostile host",
      () => discoverContainers({ ...base, host: "$(id)" }),
      /^discoverContainers\(\$\(id\)\): invalid input: connection\.host must be a DNS name or an IP address$/,
    ],
  ];
  for (const [what, run, want] of HOST_CASES) {
    it(`refuses ${what}, changing nothing`, async () => {
      expect(await rejectionOf(run())).to.match(want);
    });
  }

  for (const tool of ["btrfs", "lxc-copy"]) {
    it(`fails clearly when ${tool} is missing on the host`, async () => {
      // Hide the binary in that host's own mount namespace only.
      const path = (await hostExec(h1, ["sh", "-c", `command -v ${tool}`])).stdout.trim();
      await hostExec(h1, ["mount", "--bind", "/dev/null", path]);
      try {
        const msg =
          tool === "btrfs"
            ? await rejectionOf(
                rootfs.create(rootfsArgsSchema.parse({ connection: base, container: "web1" })),
              )
            : await rejectionOf(
                clone.create(cloneArgsSchema.parse({ connection: base, source: "web1", name: "x2" })),
              );
        expect(msg).to.match(
          tool === "btrfs"
            ? /LxcSubvolumeRootfs web1 on root@10\.213\.0\.11:22: /
            : /LxcSnapshotClone x2 \(from web1\) on root@10\.213\.0\.11:22: /,
        );
      } finally {
        await hostExec(h1, ["umount", path]);
      }
    });
  }

  it("refuses the ext4 host in a clone too", async () => {
    const c = h3.containers[0].name;
    const msg = await rejectionOf(
      clone.create(
        cloneArgsSchema.parse({ connection: { ...base, host: h3.address }, source: c, name: "x3" }),
      ),
    );
    expect(msg).to.include(`source ${c} is on ext2/ext3, not btrfs`);
  });

  it("fuzz: random names and paths are rejected, or reach the host as exactly one argument", () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const chars = "abcXYZ019._-/ ;&|$`'\"\\\n\t*?[]{}()<>!#~=%é\u0000";
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const len = 1 + Math.floor(rand() * 20);
      let s = "";
      for (let j = 0; j < len; j++) s += chars[Math.floor(rand() * chars.length)];
      for (const field of ["container", "lxcPath"] as const) {
        const patch = field === "container" ? { container: s } : { container: "web1", lxcPath: `/${s}` };
        const res = validate(rootfsArgsSchema, { connection: base, ...patch });
        if (!res.ok) continue;
        accepted++;
        const value = field === "container" ? res.value.container : res.value.lxcPath;
        // Accepted values never hold shell syntax, and quoting hands them over as one argument.
        expect(value).to.match(/^[A-Za-z0-9_.@+/-]+$/);
        const echoed = execFileSync("sh", ["-c", `printf '%s\\n' ${quoteArgv([value])} | wc -l`], {
          encoding: "utf8",
        });
        expect(echoed.trim()).to.equal("1");
      }
    }
    expect(accepted).to.be.greaterThan(10);
  });
});
