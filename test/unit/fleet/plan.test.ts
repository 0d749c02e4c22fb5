/**
 * Fleet discovery parsing on real discover.sh output (test/fixtures/discover-odd.bin, captured by
 * test/fixtures/capture.sh): real containers next to directories whose names LXC allows but we refuse.
 */
import { expect } from "chai";
import {
  type DiscoveredContainer,
  ODD_NAME_PROBLEM,
  parseDiscovery,
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
