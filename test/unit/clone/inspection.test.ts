/** parseCloneInspection on real clone.sh inspect output (test/fixtures/clone-inspect*.bin). */
import { expect } from "chai";
import { type CloneInspection, parseCloneInspection } from "../../../provider/clone/inspection";
import {
  busyboxConfig,
  CAP_LXC,
  CL_CONFIG,
  CL_MAC,
  CL_UUID,
  fixture,
  HWADDRS,
  SV_CONFIG,
  SV_UUID,
} from "../fixtures";

/** The source sv as both captured inspections see it. */
const SV_SIDE: CloneInspection["source"] = {
  dir: "present",
  fstype: "btrfs",
  state: "STOPPED",
  isSubvolume: true,
  subvolume: { id: 256, uuid: SV_UUID, parentUuid: null, generation: 7 },
};

describe("clone inspection: parseCloneInspection on real clone.sh inspect output", () => {
  it("a real lxc-copy -s snapshot clone of a subvolume container", () => {
    expect(parseCloneInspection(fixture("clone-inspect.bin"))).to.deep.equal({
      making: false,
      hasLxcCopy: true,
      hasLxcClone: false,
      source: SV_SIDE,
      clone: {
        dir: "present",
        fstype: "btrfs",
        state: "STOPPED",
        isSubvolume: true,
        subvolume: { id: 261, uuid: CL_UUID, parentUuid: SV_UUID, generation: 7 },
      },
      hwaddrs: HWADDRS,
      sourceConfig: SV_CONFIG,
      cloneConfig: CL_CONFIG,
      cloneHostname: "cl",
      cloneHosts: "127.0.0.1\tlocalhost\n127.0.1.1\tsv.example.com sv # was sv\n",
      nested: ["var/lib/machines"],
    } satisfies CloneInspection);
  });

  it("no clone yet: the clone side is missing, its texts empty", () => {
    expect(parseCloneInspection(fixture("clone-inspect-noclone.bin"))).to.deep.equal({
      making: false,
      hasLxcCopy: true,
      hasLxcClone: false,
      source: SV_SIDE,
      clone: { dir: "missing", isSubvolume: false },
      hwaddrs: HWADDRS,
      sourceConfig: SV_CONFIG,
      cloneConfig: "",
      cloneHostname: "",
      cloneHosts: "",
      nested: ["var/lib/machines"],
    } satisfies CloneInspection);
  });

  it("a directory source: not a subvolume, no subvolume fields", () => {
    const insp = parseCloneInspection(fixture("clone-inspect-dirsource.bin"));
    expect(insp.source).to.deep.equal({
      dir: "present",
      fstype: "btrfs",
      state: "STOPPED",
      isSubvolume: false,
    });
    expect(insp.sourceConfig).to.equal(busyboxConfig(CAP_LXC, "d1", "dir", "00:16:3e:c0:33:b9"));
    expect(insp.nested).to.deep.equal([]);
  });

  it("fails closed: no sections, an unknown line, a subvolume without fields", () => {
    const out = fixture("clone-inspect.bin");
    expect(() => parseCloneInspection(out.slice(0, out.indexOf("@@hwaddrs")))).to.throw(
      Error,
      "unrecognised clone inspection output",
    );
    expect(() => parseCloneInspection(`ERROR: x\n${out}`)).to.throw(
      Error,
      'unrecognised clone inspection line "ERROR: x"',
    );
    expect(() => parseCloneInspection(out.replace(/^clone [A-Z].*\n/gm, ""))).to.throw(
      Error,
      "unrecognised `btrfs subvolume show` output (a btrfs-progs version this provider does not know)",
    );
  });

  it("upper-case MACs from the hwaddr list are lowercased", () => {
    const out = fixture("clone-inspect.bin").replace(`cl ${CL_MAC}`, `cl ${CL_MAC.toUpperCase()}`);
    expect(parseCloneInspection(out).hwaddrs[0]).to.deep.equal(["cl", CL_MAC]);
  });
  it("reads the MAC list as clone.sh prints it now (newline-separated lines in one item) as before", () => {
    // clone-inspect.bin was captured when the list went through `tr '\n' '\0'` (an item per line).
    const old = fixture("clone-inspect.bin");
    const at = old.indexOf("@@hwaddrs\0") + "@@hwaddrs\0".length;
    const end = old.indexOf("@@source_config\0");
    const lines = old.slice(at, end).split("\0").filter(Boolean);
    expect(lines.length).to.be.greaterThan(1);
    const now = `${old.slice(0, at)}${lines.join("\n")}\n\0${old.slice(end)}`;
    expect(parseCloneInspection(now)).to.deep.equal(parseCloneInspection(old));
    const none = `${old.slice(0, at)}\0${old.slice(end)}`;
    expect(parseCloneInspection(none).hwaddrs).to.deep.equal([]);
  });
});
