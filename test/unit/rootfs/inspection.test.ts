import { expect } from "chai";
import {
  configBackingStore,
  parseJournal,
  parseRootfsInspection,
  type RootfsInspection,
} from "../../../provider/rootfs/inspection";
import { busyboxConfig, CAP_EXT_LXC, CAP_LXC, fixture } from "../fixtures";

const NONE_EXIST = {
  "rootfs.plb-new": false,
  "rootfs.pre-btrfs": false,
  "rootfs.plb-old": false,
  "rootfs.plb-dir": false,
  "config.pre-btrfs": false,
};

const TOOLS = { btrfsVersion: "btrfs-progs v6.2", lxcVersion: "5.0.2", hasLxcCopy: true, hasGetfattr: true };
// The fixtures below were captured before inspect-rootfs.sh reported rootfs_flags: they parse to "".
const NO_FLAGS = { rootfsFlags: "" };

describe("inspect: parseRootfsInspection on real inspect-rootfs.sh output", () => {
  it("a plain directory rootfs on btrfs, walked", () => {
    expect(parseRootfsInspection(fixture("inspect-dir.bin"))).to.deep.equal({
      ...TOOLS,
      ...NO_FLAGS,
      containerDir: "present",
      fstype: "btrfs",
      availBytes: 948568064,
      rootfs: "dir",
      rootfsIsSubvolume: false,
      exists: NONE_EXIST,
      state: "STOPPED",
      files: 301,
      bytes: 3970426,
      nested: [],
      mounts: [],
      journal: undefined,
      config: busyboxConfig(CAP_LXC, "d1", "dir", "00:16:3e:c0:33:b9"),
    } satisfies RootfsInspection);
  });

  it("the same without the walk has no files or bytes", () => {
    const insp = parseRootfsInspection(fixture("inspect-dir-nowalk.bin"));
    expect(insp).to.not.have.property("files");
    expect(insp).to.not.have.property("bytes");
    expect(insp.config).to.equal(busyboxConfig(CAP_LXC, "d1", "dir", "00:16:3e:c0:33:b9"));
  });

  it("a subvolume rootfs (lxc-create -B btrfs) with its subvolume fields", () => {
    expect(parseRootfsInspection(fixture("inspect-subvol.bin"))).to.deep.equal({
      ...TOOLS,
      ...NO_FLAGS,
      containerDir: "present",
      fstype: "btrfs",
      availBytes: 948568064,
      rootfs: "dir",
      rootfsIsSubvolume: true,
      exists: NONE_EXIST,
      state: "STOPPED",
      subvolume: { id: 256, uuid: "451b3e71-7255-7642-9e24-3d0cf12faf54", parentUuid: null, generation: 7 },
      files: 301,
      bytes: 3970426,
      nested: [],
      mounts: [],
      journal: undefined,
      config: busyboxConfig(CAP_LXC, "sv", "btrfs", "00:16:3e:1d:8b:5f"),
    } satisfies RootfsInspection);
  });

  it("a running container (lxc-start) on a subvolume", () => {
    const insp = parseRootfsInspection(fixture("inspect-running.bin"));
    expect(insp.state).to.equal("RUNNING");
    expect(insp.rootfsIsSubvolume).to.equal(true);
    expect(insp.subvolume).to.deep.equal({
      id: 257,
      uuid: "9824fb24-18db-ae4b-8a03-b0fcc547e180",
      parentUuid: null,
      generation: 7,
    });
    expect(insp.mounts).to.deep.equal([]);
    expect(configBackingStore(insp.config)).to.equal("btrfs");
    expect(insp.config).to.include(`lxc.rootfs.path = btrfs:${CAP_LXC}/run1/rootfs\n`);
  });

  it("nested subvolumes (one with a space) are listed, and not counted in files", () => {
    const insp = parseRootfsInspection(fixture("inspect-nested.bin"));
    expect(insp.nested).to.deep.equal([
      `${CAP_LXC}/n1/rootfs/var/lib/machines`,
      `${CAP_LXC}/n1/rootfs/srv/my vol`,
    ]);
    expect(insp.rootfsIsSubvolume).to.equal(false);
    // 301 entries of the busybox tree + srv + the nested subvolume itself (pruned, its file not counted).
    expect([insp.files, insp.bytes]).to.deep.equal([303, 3970460]);
    expect(insp.config).to.equal(busyboxConfig(CAP_LXC, "n1", "dir", "00:16:3e:4d:46:9a"));
  });

  it("a mount point inside rootfs, unescaped from mountinfo's \\040", () => {
    const raw = fixture("inspect-mounted.bin");
    expect(raw).to.include("with\\040space");
    expect(parseRootfsInspection(raw).mounts).to.deep.equal([`${CAP_LXC}/d1/rootfs/mnt/with space`]);
  });

  it("the inode flags of the rootfs directory itself (chattr +i)", () => {
    const insp = parseRootfsInspection(fixture("inspect-immutable-top.bin"));
    expect(insp.rootfsFlags).to.equal("----i-----------------");
    expect(insp.rootfs).to.equal("dir");
  });

  it("an interrupted conversion: journal and the partial rootfs.plb-new", () => {
    const insp = parseRootfsInspection(fixture("inspect-journal.bin"));
    expect(insp.journal).to.deep.equal({ op: "convert", phase: "copying", wasRunning: true });
    expect(insp.exists).to.deep.equal({ ...NONE_EXIST, "rootfs.plb-new": true });
    expect(insp.config).to.equal(busyboxConfig(CAP_LXC, "j1", "dir", "00:16:3e:ce:e9:b1"));
  });

  it("a symlinked rootfs and no config", () => {
    expect(parseRootfsInspection(fixture("inspect-symlink-noconfig.bin"))).to.deep.equal({
      ...TOOLS,
      ...NO_FLAGS,
      containerDir: "present",
      fstype: "btrfs",
      availBytes: 948568064,
      rootfs: "symlink",
      rootfsIsSubvolume: false,
      exists: NONE_EXIST,
      state: "UNKNOWN",
      nested: [],
      mounts: [],
      journal: undefined,
      config: null,
    } satisfies RootfsInspection);
  });

  it("a container on ext4 (stat -f says ext2/ext3); inode 256 there would not make a subvolume", () => {
    const insp = parseRootfsInspection(fixture("inspect-ext4.bin"));
    expect([insp.fstype, insp.availBytes, insp.rootfs, insp.rootfsIsSubvolume]).to.deep.equal([
      "ext2/ext3",
      79825530880,
      "dir",
      false,
    ]);
    expect(insp.config).to.equal(busyboxConfig(CAP_EXT_LXC, "e1", "dir"));
    const faked = fixture("inspect-ext4.bin").replace(/rootfs_ino=\d+/, "rootfs_ino=256");
    expect(parseRootfsInspection(faked).rootfsIsSubvolume).to.equal(false);
  });

  it("a missing container stops after the tool versions", () => {
    expect(parseRootfsInspection(fixture("inspect-missing.bin"))).to.deep.equal({
      ...TOOLS,
      ...NO_FLAGS,
      containerDir: "missing",
      rootfsIsSubvolume: false,
      exists: {},
      state: "UNKNOWN",
      nested: [],
      mounts: [],
      config: null,
    } satisfies RootfsInspection);
  });
});

describe("inspect: parseRootfsInspection fails closed", () => {
  const DIR = fixture("inspect-dir.bin");

  it("an unknown line is an error that quotes it", () => {
    expect(() => parseRootfsInspection(`ERROR: something new\n${DIR}`)).to.throw(
      Error,
      'unrecognised inspection output line: "ERROR: something new"',
    );
  });

  it("a long unknown line is quoted to 100 characters", () => {
    const line = `x${"y".repeat(200)}`;
    let msg = "";
    try {
      parseRootfsInspection(`${line}\n${DIR}`);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).to.equal(`unrecognised inspection output line: "x${"y".repeat(99)}"`);
  });

  it("a line starting with '=' is unknown too", () => {
    expect(() => parseRootfsInspection(`=x\n${DIR}`)).to.throw(
      Error,
      'unrecognised inspection output line: "=x"',
    );
  });

  it("missing container_dir, fstype or avail_bytes", () => {
    expect(() => parseRootfsInspection(DIR.replace("container_dir=present\n", ""))).to.throw(
      Error,
      "inspection output lacks container_dir",
    );
    expect(() => parseRootfsInspection(DIR.replace("fstype=btrfs\n", ""))).to.throw(
      Error,
      "inspection output lacks fstype",
    );
    expect(() => parseRootfsInspection(DIR.replace(/avail_bytes=\d+\n/, ""))).to.throw(
      Error,
      "inspection output lacks avail_bytes",
    );
  });

  it("a missing section", () => {
    expect(() => parseRootfsInspection(DIR.replace("@@journal\0", ""))).to.throw(
      Error,
      "inspection output lacks section @@journal",
    );
    expect(() => parseRootfsInspection(DIR.slice(0, DIR.indexOf("@@config\0")))).to.throw(
      Error,
      "inspection output lacks section @@config",
    );
  });

  it("no sections at all (output cut before them)", () => {
    expect(() => parseRootfsInspection(DIR.slice(0, DIR.indexOf("@@nested\0")))).to.throw(
      Error,
      "inspection output lacks its sections",
    );
  });

  it("a subvolume without recognisable `subvolume show` fields", () => {
    const sub = fixture("inspect-subvol.bin").replace(/^subvol .*\n/gm, "");
    expect(() => parseRootfsInspection(sub)).to.throw(
      Error,
      "unrecognised `btrfs subvolume show` output (a btrfs-progs version this provider does not know)",
    );
  });

  it("an unknown journal", () => {
    const bad = fixture("inspect-journal.bin").replace("phase=copying", "phase=copied");
    expect(() => parseRootfsInspection(bad)).to.throw(
      Error,
      'unrecognised journal "op=convert\\nphase=copied\\nwas_running=1\\n"',
    );
  });

  it("a config that contains a section marker stays config", () => {
    const cfg = "lxc.uts.name = c1\n@@nested\n";
    const out = `${DIR.slice(0, DIR.indexOf("@@config\0"))}@@config\0${cfg}\0@@journal\0x`;
    expect(parseRootfsInspection(out).config).to.equal(`${cfg}\0@@journal\0x`);
  });
});

describe("inspect: parseJournal", () => {
  const table: [string, ReturnType<typeof parseJournal>][] = [
    ["", undefined],
    [" \n\n", undefined],
    ["op=convert\nphase=copying\nwas_running=1\n", { op: "convert", phase: "copying", wasRunning: true }],
    ["op=convert\nphase=swapping\nwas_running=0\n", { op: "convert", phase: "swapping", wasRunning: false }],
    ["op=revert\nphase=swapped\nwas_running=1", { op: "revert", phase: "swapped", wasRunning: true }],
    ["phase=swapped\nop=revert\n", { op: "revert", phase: "swapped", wasRunning: false }],
    [
      "op=convert\nphase=precopying\nwas_running=1\n",
      { op: "convert", phase: "precopying", wasRunning: true },
    ],
    [
      "op=convert\nphase=catching-up\nwas_running=1\n",
      { op: "convert", phase: "catching-up", wasRunning: true },
    ],
  ];
  for (const [text, want] of table) {
    it(JSON.stringify(text), () => {
      expect(parseJournal(text)).to.deep.equal(want);
    });
  }

  for (const text of [
    "op=copy\nphase=copying\n",
    "op=convert\n",
    "garbage",
    "op=convert\nphase=COPYING\n",
    "op=convert\nphase=catching\n",
  ]) {
    it(`refuses ${JSON.stringify(text)} with the exact message`, () => {
      expect(() => parseJournal(text)).to.throw(Error, `unrecognised journal ${JSON.stringify(text)}`);
    });
  }
});

describe("inspect: configBackingStore", () => {
  const table: [string, string | null, string][] = [
    ["no config", null, "missing"],
    ["real dir: config", fixture("lxc-config-busybox.txt"), "dir"],
    ["btrfs:", "lxc.rootfs.path = btrfs:/x\n", "btrfs"],
    ["bare", "lxc.rootfs.path = /x\n", "bare"],
    ["overlay", "lxc.rootfs.path = overlay:/a:/b\n", "overlay"],
    ["zfs", "lxc.rootfs.path = zfs:tank/c1\n", "other"],
    ["two lines", "lxc.rootfs.path = btrfs:/x\nlxc.rootfs.path = dir:/x\n", "missing"],
    ["only the legacy key", "lxc.rootfs = /x\n", "missing"],
    ["no line", "lxc.uts.name = c1\n", "missing"],
  ];
  for (const [what, config, want] of table) {
    it(`${what} -> ${want}`, () => {
      expect(configBackingStore(config)).to.equal(want);
    });
  }
});
