/**
 * Fleet discovery parsing on real discover.sh output (test/fixtures/discover-odd.bin, captured by
 * test/fixtures/capture.sh): real containers next to directories whose names LXC allows but we refuse.
 */
import { expect } from "chai";
import { UserError } from "../../../provider/core/errors";
import {
  type CopyPlanInput,
  type DiscoveredContainer,
  ODD_NAME_PROBLEM,
  ownNames,
  type PlannedCopy,
  parseDiscovery,
  planCopies,
  planRollout,
  printableName,
  selectContainers,
} from "../../../provider/fleet/plan";
import { fixture } from "../fixtures";

const odd = (name: string): DiscoveredContainer => ({
  name,
  fstype: "unknown",
  rootfs: "missing",
  rootfsIsSubvolume: false,
  configBackingStore: "missing",
  state: "UNKNOWN",
  problem: ODD_NAME_PROBLEM,
});

describe("fleet-plan: parseDiscovery on real discover.sh output", () => {
  const found = parseDiscovery(fixture("discover-odd.bin"));

  it("lists real containers with their rootfs state and every odd name as a record of its own", () => {
    expect(found).to.deep.equal([
      odd("-dash"),
      odd("a..b"),
      odd("back\\\\slash"),
      odd("bad\\xffbyte"),
      {
        name: "good1",
        fstype: "btrfs",
        rootfs: "dir",
        rootfsIsSubvolume: false,
        configBackingStore: "dir",
        state: "STOPPED",
      },
      {
        name: "good2",
        fstype: "btrfs",
        rootfs: "dir",
        rootfsIsSubvolume: true,
        configBackingStore: "btrfs",
        state: "STOPPED",
      },
      odd("new\\x0aline"),
      odd("sh;$(id)"),
      odd("tab\\x09here"),
      odd("with space"),
      odd("x".repeat(65)),
    ]);
  });

  it("the odd names' problem says what to do", () => {
    expect(ODD_NAME_PROBLEM).to.equal(
      "its name is not one this provider accepts (1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'); rename it with lxc-copy -R to manage it",
    );
  });

  it("fails closed on a record it does not know", () => {
    expect(() => parseDiscovery("fstype=btrfs\nweird\tthing\0")).to.throw(
      'unrecognised discovery record "weird\\tthing"',
    );
    expect(() => parseDiscovery("fstype=btrfs\nodd\tzz\0")).to.throw(
      'unrecognised discovery record "odd\\tzz"',
    );
    expect(() => parseDiscovery("no header")).to.throw("unrecognised discovery output");
  });
});

describe("fleet-plan: printableName", () => {
  const table: [string, string, string][] = [
    ["plain ASCII", "776562", "web"],
    ["a backslash is doubled", "615c62", "a\\\\b"],
    ["control bytes and non-UTF-8 are \\xNN", "0a09ff7f", "\\x0a\\x09\\xff\\x7f"],
    ["UTF-8 bytes are escaped one by one", "636166c3a9", "caf\\xc3\\xa9"],
  ];
  for (const [what, hex, want] of table) {
    it(what, () => expect(printableName(hex)).to.equal(want));
  }
});

describe("fleet-plan: selectContainers", () => {
  it("include globs, then exclude globs", () => {
    expect(selectContainers(["web1", "web2", "db1", "web-clone"], ["web*"], ["*-clone"])).to.deep.equal([
      "web1",
      "web2",
    ]);
  });
});

describe("fleet-plan: planRollout", () => {
  const hosts = [
    { name: "h1", containers: ["a", "b", "c"] },
    { name: "h2", containers: ["d", "e"] },
  ];
  const row = (host: string, container: string, wave: number, after: string[]) => ({
    host,
    container,
    wave,
    after,
  });

  it("no canary: every host in wave 0, one conversion at a time per host", () => {
    expect(planRollout(hosts, {})).to.deep.equal([
      row("h1", "a", 0, []),
      row("h1", "b", 0, ["h1/a"]),
      row("h1", "c", 0, ["h1/b"]),
      row("h2", "d", 0, []),
      row("h2", "e", 0, ["h2/d"]),
    ]);
  });

  it("a named canary listed last comes first, and the other hosts wait for all of it", () => {
    expect(planRollout(hosts, { canary: ["h2"], maxConcurrentPerHost: 2 })).to.deep.equal([
      row("h2", "d", 0, []),
      row("h2", "e", 0, []),
      row("h1", "a", 1, ["h2/d", "h2/e"]),
      row("h1", "b", 1, ["h2/d", "h2/e"]),
      row("h1", "c", 1, ["h1/a", "h2/d", "h2/e"]),
    ]);
  });

  it("canary as a number: the first hosts", () => {
    expect(
      planRollout(hosts, { canary: 1, maxConcurrentPerHost: 5 }).map((p) => [p.container, p.wave]),
    ).to.deep.equal([
      ["a", 0],
      ["b", 0],
      ["c", 0],
      ["d", 1],
      ["e", 1],
    ]);
  });

  const refusals: [string, Parameters<typeof planRollout>, string][] = [
    [
      "maxConcurrentPerHost below 1",
      [hosts, { maxConcurrentPerHost: 0 }],
      "maxConcurrentPerHost is 0; set it to a whole number of at least 1",
    ],
    [
      "maxConcurrentPerHost not whole",
      [hosts, { maxConcurrentPerHost: 1.5 }],
      "maxConcurrentPerHost is 1.5; set it to a whole number of at least 1",
    ],
    [
      "a host twice",
      [[...hosts, { name: "h2", containers: [] }], {}],
      "host h2 is listed twice in hosts; give each host one entry and a unique name",
    ],
    [
      "a container twice on one host",
      [[{ name: "h1", containers: ["a", "a"] }], {}],
      "container a is listed twice for host h1; list each container once",
    ],
    [
      "an unknown canary host",
      [hosts, { canary: ["h1", "h3"] }],
      "canary host h3 is not among the hosts (h1, h2); name one of them, or give canary as a number of hosts",
    ],
  ];
  for (const [what, args, message] of refusals) {
    it(`refuses ${what} with a UserError`, () => {
      let caught: unknown;
      try {
        planRollout(...args);
      } catch (e) {
        caught = e;
      }
      expect(caught).to.be.instanceOf(UserError);
      expect((caught as Error).message).to.equal(message);
    });
  }
});

describe("fleet-plan: planCopies", () => {
  const hosts = [
    { name: "a", containers: ["golden", "db"] },
    { name: "b", containers: ["web"] },
    { name: "c", containers: [] },
    { name: "d", containers: [], lxcPath: "/srv/lxc" },
  ];
  const conv = (canary?: number) => planRollout(hosts.slice(0, 3), { canary });
  const row = (p: PlannedCopy) => [p.index, p.host, `${p.fromHost}/${p.container}`, p.name, p.wave, p.after];

  it('"all" is every other host that was reached; each copy waits for its source\'s conversion', () => {
    const got = planCopies(
      hosts.slice(0, 3),
      conv(),
      [{ from: { host: "a", container: "golden" }, to: "all" }],
      {},
    );
    expect(got.map(row)).to.deep.equal([
      [0, "b", "a/golden", "golden", 0, ["a/golden"]],
      [0, "c", "a/golden", "golden", 0, ["a/golden"]],
    ]);
    const some = planCopies(
      hosts.slice(0, 3),
      conv(),
      [{ from: { host: "a", container: "golden" }, to: "all" }],
      {
        unreachable: ["c"],
      },
    );
    expect(some.map((p) => p.host)).to.deep.equal(["b"]);
  });

  it("a copy to a wave-1 host waits for all of wave 0; at most k copies arrive at one host at a time", () => {
    const got = planCopies(
      hosts.slice(0, 3),
      conv(1),
      [
        { from: { host: "a", container: "golden" }, to: ["b", "c"] },
        { from: { host: "a", container: "db" }, to: ["c"], name: "db-standby" },
        { from: { host: "b", container: "web" }, to: ["c"] },
      ],
      { canary: 1, maxConcurrentPerHost: 2 },
    );
    expect(got.map(row)).to.deep.equal([
      [0, "b", "a/golden", "golden", 1, ["a/golden", "a/db"]],
      [0, "c", "a/golden", "golden", 1, ["a/golden", "a/db"]],
      [1, "c", "a/db", "db-standby", 1, ["a/db", "a/golden"]],
      // the third copy to c waits for the first one to c (two at a time)
      [2, "c", "b/web", "web", 1, ["b/web", "a/golden", "a/db", "copy:c/golden"]],
    ]);
  });

  const refusals: [string, CopyPlanInput, string][] = [
    [
      "an unknown source host",
      { from: { host: "x", container: "golden" }, to: ["b"] },
      "copy of golden names source host x, which is not among the hosts",
    ],
    [
      "an unknown target host",
      { from: { host: "a", container: "golden" }, to: ["y"] },
      "copy of golden names target host y, which is not among the hosts",
    ],
    [
      "a copy to its own host",
      { from: { host: "a", container: "golden" }, to: ["a"] },
      "copy of golden to a: that is its own host; declare a clone (clones) for a copy on the same host",
    ],
    [
      "a target whose lxcPath differs",
      { from: { host: "a", container: "golden" }, to: ["d"] },
      "copy of golden from a to d: the hosts' lxcPath differ (/var/lib/lxc, /srv/lxc); a copy keeps its container's lxcPath",
    ],
    [
      "a name a target's own container has",
      { from: { host: "a", container: "golden" }, to: ["b"], name: "web" },
      "copy web to b: b already has a container web in this rollout; give the copy another name",
    ],
  ];
  for (const [what, copy, message] of refusals)
    it(`refuses ${what} (a UserError the rollout names)`, () => {
      let caught: unknown;
      try {
        planCopies(hosts, planRollout(hosts, {}), [copy], {});
      } catch (e) {
        caught = e;
      }
      expect(caught).to.be.instanceOf(UserError);
      expect((caught as Error).message).to.equal(message);
    });

  it("refuses two copies of one name on a host", () => {
    const twice = () =>
      planCopies(
        hosts,
        planRollout(hosts, {}),
        [
          { from: { host: "a", container: "golden" }, to: ["c"], name: "x" },
          { from: { host: "a", container: "db" }, to: ["c"], name: "x" },
        ],
        {},
      );
    expect(twice).to.throw(UserError, "two copies are named x on c; give each copy on a host its own name");
  });
});

describe("fleet-plan: ownNames (what discovery leaves out on each host)", () => {
  const hosts = ["h1", "h2", "h4"];
  for (const [what, clones, copies, want] of [
    ["nothing declared", [], [], { h1: [], h2: [], h4: [] }],
    ["a clone, on its host", [{ host: "h1", name: "web-c" }], [], { h1: ["web-c"], h2: [], h4: [] }],
    [
      "a copy to \"all\": every host but the source's, by the copy's name",
      [],
      [{ from: { host: "h1", container: "web1" }, to: "all", name: "golden" }],
      { h1: [], h2: ["golden"], h4: ["golden"] },
    ],
    [
      "a copy to listed hosts, named like its source",
      [],
      [{ from: { host: "h1", container: "web1" }, to: ["h4"] }],
      { h1: [], h2: [], h4: ["web1"] },
    ],
    [
      "a host that is not listed is ignored (planCopies refuses it)",
      [{ host: "h9", name: "x" }],
      [{ from: { host: "h1", container: "web1" }, to: ["h9"] }],
      { h1: [], h2: [], h4: [] },
    ],
  ] as const) {
    it(what, () => {
      const got = ownNames(hosts, clones as never, copies as never);
      expect(Object.fromEntries([...got].map(([h, s]) => [h, [...s]]))).to.deep.equal(want);
    });
  }
});
