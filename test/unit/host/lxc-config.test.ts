import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import {
  type BackingStore,
  checkRootfsConfig,
  classifyBackingStore,
  findHwaddrs,
  findRootfsLines,
  getConfigValue,
  rewriteRootfsLine,
  rootfsPathOf,
  unquote,
} from "../../../provider/host/lxc-config";
import { CAPTURE, fixture } from "../fixtures";

/** `lxc-create -t busybox` (LXC 5.0.2) output, and the same with a generated hwaddr. */
const BUSYBOX = fixture("lxc-config-busybox.txt");
const BUSYBOX_HW = fixture("lxc-config-busybox-hwaddr.txt");
const CAP1 = `${CAPTURE}/cfg/cap1`;
const CAP1_LINE = `lxc.rootfs.path = dir:${CAP1}/rootfs`;

describe("lxc-config: the real busybox config", () => {
  it("is what the tests below assume (33 lines, trailing newline, one dir: rootfs line)", () => {
    expect(BUSYBOX.split("\n")).to.have.length(34);
    expect(BUSYBOX.endsWith("sys/kernel/security none ro,bind,optional 0 0\n")).to.equal(true);
    expect(BUSYBOX.split("\n")[13]).to.equal(CAP1_LINE);
  });

  it("findRootfsLines finds the one rootfs line with its index", () => {
    expect(findRootfsLines(BUSYBOX)).to.deep.equal([
      { index: 13, key: "lxc.rootfs.path", value: `dir:${CAP1}/rootfs` },
    ]);
  });

  it("checkRootfsConfig accepts it as a dir: config at the standard path", () => {
    expect(checkRootfsConfig(BUSYBOX, `${CAP1}/rootfs`)).to.deep.equal({
      ok: true,
      line: { index: 13, key: "lxc.rootfs.path", value: `dir:${CAP1}/rootfs` },
      store: "dir",
    });
  });

  it("rewriteRootfsLine changes that line only; every other byte, comments and the final newline stay", () => {
    const out = rewriteRootfsLine(BUSYBOX, 13, `btrfs:${CAP1}/rootfs`);
    const want = BUSYBOX.replace(`${CAP1_LINE}\n`, `lxc.rootfs.path = btrfs:${CAP1}/rootfs\n`);
    expect(want).to.not.equal(BUSYBOX);
    expect(out).to.equal(want);
    expect(Buffer.byteLength(out) - Buffer.byteLength(BUSYBOX)).to.equal(2);
  });

  it("getConfigValue reads values as LXC does: quotes stripped, commented lines ignored", () => {
    expect(getConfigValue(BUSYBOX, "lxc.uts.name")).to.equal("cap1");
    // `#lxc.apparmor.profile = unconfined` further down is a comment.
    expect(getConfigValue(BUSYBOX, "lxc.apparmor.profile")).to.equal("generated");
    expect(getConfigValue(BUSYBOX, "lxc.include")).to.equal(undefined);
    expect(getConfigValue(BUSYBOX, "lxc.net.0.link")).to.equal("lxcbr0");
    expect(getConfigValue(BUSYBOX, "lxc.cap.drop")).to.equal("sys_module mac_admin mac_override sys_time");
  });

  it("getConfigValue returns the last value of a repeated key", () => {
    expect(getConfigValue(BUSYBOX, "lxc.mount.entry")).to.equal(
      "/sys/kernel/security sys/kernel/security none ro,bind,optional 0 0",
    );
  });

  it("findHwaddrs finds the generated MAC; none in a config without hwaddr", () => {
    expect(findHwaddrs(BUSYBOX_HW)).to.deep.equal(["00:16:3e:e2:98:bc"]);
    expect(findHwaddrs(BUSYBOX)).to.deep.equal([]);
  });
});

describe("lxc-config: classifyBackingStore and rootfsPathOf", () => {
  const table: [string, BackingStore, string | undefined][] = [
    ["btrfs:/var/lib/lxc/c1/rootfs", "btrfs", "/var/lib/lxc/c1/rootfs"],
    ["dir:/var/lib/lxc/c1/rootfs", "dir", "/var/lib/lxc/c1/rootfs"],
    ["/var/lib/lxc/c1/rootfs", "bare", "/var/lib/lxc/c1/rootfs"],
    ["overlay:/var/lib/lxc/base/rootfs:/var/lib/lxc/c1/delta0", "overlay", undefined],
    ["overlayfs:/a:/b", "overlay", undefined],
    ["zfs:tank/lxc/c1", "other", undefined],
    ["lvm:/dev/vg0/c1", "other", undefined],
    ["loop:/var/lib/lxc/c1/rootdev", "other", undefined],
    ["rbd:pool/c1", "other", undefined],
    ["", "other", undefined],
    ["rootfs", "other", undefined],
  ];
  for (const [value, store, path] of table) {
    it(`${JSON.stringify(value)} is ${store}, path ${path ?? "(none)"}`, () => {
      expect(classifyBackingStore(value)).to.equal(store);
      expect(rootfsPathOf(value)).to.equal(path);
    });
  }
});

describe("lxc-config: findRootfsLines, rewriteRootfsLine on hand-made configs", () => {
  it("finds legacy and modern keys, with any spacing, ignoring comments", () => {
    const text = [
      "# lxc.rootfs.path = dir:/commented",
      "lxc.rootfs = /legacy",
      "  lxc.rootfs.path=dir:/a  ",
      "lxc.rootfs.pathx = /not-this",
      "lxc.rootfs.options = idmap=container",
      "\tlxc.rootfs.path\t=\t'btrfs:/b'",
    ].join("\n");
    expect(findRootfsLines(text)).to.deep.equal([
      { index: 1, key: "lxc.rootfs", value: "/legacy" },
      { index: 2, key: "lxc.rootfs.path", value: "dir:/a" },
      { index: 5, key: "lxc.rootfs.path", value: "btrfs:/b" },
    ]);
  });

  it("rewrites an indented or unspaced line into the canonical form", () => {
    expect(rewriteRootfsLine("a = 1\n  lxc.rootfs.path=dir:/x\nb = 2", 1, "btrfs:/x")).to.equal(
      "a = 1\nlxc.rootfs.path = btrfs:/x\nb = 2",
    );
  });

  it("keeps a file without a final newline without one", () => {
    expect(rewriteRootfsLine("lxc.rootfs.path = dir:/x", 0, "btrfs:/x")).to.equal(
      "lxc.rootfs.path = btrfs:/x",
    );
  });

  it("keeps CRLF line endings as they are, on the rewritten line too", () => {
    const text = "lxc.uts.name = c1\r\nlxc.rootfs.path = dir:/x\r\nlxc.tty.max = 1\r\n";
    expect(findRootfsLines(text)).to.deep.equal([{ index: 1, key: "lxc.rootfs.path", value: "dir:/x" }]);
    expect(rewriteRootfsLine(text, 1, "btrfs:/x")).to.equal(
      "lxc.uts.name = c1\r\nlxc.rootfs.path = btrfs:/x\r\nlxc.tty.max = 1\r\n",
    );
  });
});

describe("lxc-config: checkRootfsConfig", () => {
  const P = "/var/lib/lxc/c1/rootfs";
  const table: [string, string, ReturnType<typeof checkRootfsConfig>][] = [
    [
      "legacy key",
      "lxc.rootfs = /var/lib/lxc/c1/rootfs\n",
      {
        ok: false,
        problem:
          "the config uses the legacy key lxc.rootfs (LXC < 3.0); convert it with lxc-update-config -c <config> and run again",
      },
    ],
    [
      "legacy and modern key",
      `lxc.rootfs.path = dir:${P}\nlxc.rootfs = ${P}\n`,
      {
        ok: false,
        problem:
          "the config uses the legacy key lxc.rootfs (LXC < 3.0); convert it with lxc-update-config -c <config> and run again",
      },
    ],
    [
      "two lines",
      `lxc.uts.name = c1\nlxc.rootfs.path = dir:${P}\nlxc.tty.max = 1\nlxc.rootfs.path = btrfs:${P}\n`,
      {
        ok: false,
        problem: "the config has 2 lxc.rootfs.path lines (lines 2, 4); keep exactly one and run again",
      },
    ],
    ["no line", "lxc.uts.name = c1\n", { ok: false, problem: "the config has no lxc.rootfs.path line" }],
    [
      "only a commented line",
      `# lxc.rootfs.path = dir:${P}\n`,
      { ok: false, problem: "the config has no lxc.rootfs.path line" },
    ],
    [
      "overlay",
      "lxc.rootfs.path = overlay:/var/lib/lxc/base/rootfs:/var/lib/lxc/c1/delta0\n",
      {
        ok: false,
        problem:
          "lxc.rootfs.path = overlay:/var/lib/lxc/base/rootfs:/var/lib/lxc/c1/delta0 uses a backing store this resource does not convert",
      },
    ],
    [
      "path elsewhere",
      "lxc.rootfs.path = dir:/srv/c1/rootfs\n",
      {
        ok: false,
        problem:
          "lxc.rootfs.path points at /srv/c1/rootfs, not at /var/lib/lxc/c1/rootfs; only the standard layout is supported",
      },
    ],
    [
      "another container's rootfs",
      "lxc.rootfs.path = btrfs:/var/lib/lxc/c10/rootfs\n",
      {
        ok: false,
        problem:
          "lxc.rootfs.path points at /var/lib/lxc/c10/rootfs, not at /var/lib/lxc/c1/rootfs; only the standard layout is supported",
      },
    ],
    [
      "dir:",
      `lxc.rootfs.path = dir:${P}\n`,
      { ok: true, line: { index: 0, key: "lxc.rootfs.path", value: `dir:${P}` }, store: "dir" },
    ],
    [
      "btrfs: with a trailing slash",
      `lxc.rootfs.path = btrfs:${P}/\n`,
      { ok: true, line: { index: 0, key: "lxc.rootfs.path", value: `btrfs:${P}/` }, store: "btrfs" },
    ],
    [
      "bare path",
      `x = 1\nlxc.rootfs.path = ${P}\n`,
      { ok: true, line: { index: 1, key: "lxc.rootfs.path", value: P }, store: "bare" },
    ],
    [
      "quoted btrfs: value (LXC strips the quotes)",
      `lxc.rootfs.path = "btrfs:${P}"\n`,
      { ok: true, line: { index: 0, key: "lxc.rootfs.path", value: `btrfs:${P}` }, store: "btrfs" },
    ],
  ];
  for (const [what, text, want] of table) {
    it(what, () => {
      expect(checkRootfsConfig(text, P)).to.deep.equal(want);
    });
  }
});

describe("lxc-config: findHwaddrs, getConfigValue, unquote", () => {
  it("findHwaddrs: every interface in file order, lowercased, comments ignored", () => {
    const text = [
      "lxc.net.0.hwaddr = 00:16:3E:AA:BB:CC",
      "# lxc.net.1.hwaddr = 00:16:3e:00:00:01",
      "lxc.net.1.type = veth",
      "  lxc.net.12.hwaddr=00:16:3e:dd:ee:ff  ",
      "lxc.network.hwaddr = 00:16:3e:99:99:99",
    ].join("\n");
    expect(findHwaddrs(text)).to.deep.equal(["00:16:3e:aa:bb:cc", "00:16:3e:dd:ee:ff"]);
  });

  it("getConfigValue does not treat the dots of a key as wildcards", () => {
    expect(getConfigValue("lxcXutsYname = evil\n", "lxc.uts.name")).to.equal(undefined);
    expect(getConfigValue("lxc.uts.name.extra = x\n", "lxc.uts.name")).to.equal(undefined);
    expect(getConfigValue("lxc.uts.name =\n", "lxc.uts.name")).to.equal("");
  });

  const table: [string, string][] = [
    ['"c1"', "c1"],
    ["'c1'", "c1"],
    ['""', ""],
    ['"a"b"', 'a"b'],
    ['"abc', '"abc'],
    ["'abc\"", "'abc\""],
    ['"', '"'],
    ["plain", "plain"],
    ["", ""],
  ];
  for (const [input, want] of table) {
    it(`unquote(${JSON.stringify(input)}) = ${JSON.stringify(want)}`, () => {
      expect(unquote(input)).to.equal(want);
    });
  }
});

describe("lxc-config: values read the same as LXC's own parser (lxc-info -c)", function () {
  this.timeout(30_000);
  const lxcInfo = ["/usr/bin/lxc-info", "/usr/sbin/lxc-info"].find(existsSync);
  let dir = "";
  before(() => {
    if (!lxcInfo)
      throw new Error("lxc-info is not installed: apt-get install lxc (npm run fleet:up installs it)");
    dir = mkdtempSync(join(tmpdir(), "plb-lxcinfo-"));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const configs: [string, string][] = [
    ["busybox", BUSYBOX],
    ["double quotes with a space", 'lxc.uts.name = "x y"\nlxc.rootfs.path = btrfs:/srv/a/rootfs\n'],
    ["single quotes, spaces after", "lxc.uts.name =   'q'   \nlxc.rootfs.path = '/srv/a/rootfs'\n"],
    ["unbalanced quote", 'lxc.uts.name = "abc\nlxc.rootfs.path = "dir:/srv/a/rootfs"  \n'],
    ["inner quote", 'lxc.uts.name = "a"b"\nlxc.rootfs.path = dir:/srv/a/rootfs\n'],
    ["CRLF", "lxc.uts.name = crlf\r\nlxc.rootfs.path = dir:/srv/a/rootfs\r\n"],
  ];
  configs.forEach(([what, text], i) => {
    it(what, () => {
      mkdirSync(join(dir, `c${i}`));
      writeFileSync(join(dir, `c${i}`, "config"), text);
      const res = spawnSync(
        lxcInfo as string,
        ["-n", `c${i}`, "-P", dir, "-c", "lxc.uts.name", "-c", "lxc.rootfs.path"],
        { encoding: "utf8" },
      );
      expect(res.status, res.stderr).to.equal(0);
      const lxc = new Map(
        res.stdout
          .split("\n")
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf(" = ")), l.slice(l.indexOf(" = ") + 3)] as const),
      );
      expect(getConfigValue(text, "lxc.uts.name"), "lxc.uts.name").to.equal(lxc.get("lxc.uts.name"));
      const lines = findRootfsLines(text);
      expect(lines).to.have.length(1);
      // lxc-info prints the path without its driver prefix.
      expect(rootfsPathOf(lines[0].value), "lxc.rootfs.path").to.equal(lxc.get("lxc.rootfs.path"));
    });
  });
});
