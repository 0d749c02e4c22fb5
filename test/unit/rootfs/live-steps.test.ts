import { expect } from "chai";
import type { Step } from "../../../provider/rootfs/plan";
import { batchArgs } from "../../../provider/rootfs/steps";

const D = "/var/lib/lxc/c1";

describe("rootfs-steps: the argv of a live conversion's first batch", () => {
  it("precopy carries source, copy and progress interval; catchup source and copy; journal phases by name", () => {
    const steps: Step[] = [
      { op: "journal", phase: "precopying", kind: "convert", wasRunning: true },
      { op: "subvol-create", path: `${D}/rootfs.plb-new` },
      { op: "precopy", from: `${D}/rootfs`, to: `${D}/rootfs.plb-new`, total: 100_000 },
      { op: "journal", phase: "catching-up", kind: "convert", wasRunning: true },
      { op: "stop" },
      { op: "catchup", from: `${D}/rootfs`, to: `${D}/rootfs.plb-new` },
      { op: "verify", a: `${D}/rootfs`, b: `${D}/rootfs.plb-new` },
    ];
    expect(batchArgs("/var/lib/lxc", "c1", steps)).to.deep.equal([
      "/var/lib/lxc",
      "c1",
      ...["journal", "3", "precopying", "convert", "1"],
      ...["subvol-create", "1", `${D}/rootfs.plb-new`],
      ...["precopy", "3", `${D}/rootfs`, `${D}/rootfs.plb-new`, "10000"],
      ...["journal", "3", "catching-up", "convert", "1"],
      ...["stop", "0"],
      ...["catchup", "2", `${D}/rootfs`, `${D}/rootfs.plb-new`],
      ...["verify", "2", `${D}/rootfs`, `${D}/rootfs.plb-new`],
    ]);
  });
});
