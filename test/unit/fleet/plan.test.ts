/**
 * Fleet discovery parsing on real discover.sh output (test/fixtures/discover-odd.bin, captured by
 * test/fixtures/capture.sh): real containers next to directories whose names LXC allows but we refuse.
 */
import { expect } from "chai";
import { UserError } from "../../../provider/core/errors";
import {
  type DiscoveredContainer,
  ODD_NAME_PROBLEM,
  parseDiscovery,
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
