/** rootfs/downtime.ts: the log lines of a conversion's stop and start, on a clock the test moves. */
import { expect } from "chai";
import { Downtime } from "../../../provider/rootfs/downtime";
import type { Step } from "../../../provider/rootfs/plan";

/** Feeds each op's start and end to a Downtime whose clock reads `at[i]` at its i-th reading. */
function lines(ops: Step["op"][], at: number[]): (string | undefined)[] {
  let reading = 0;
  const d = new Downtime(() => at[reading++]);
  return ops.flatMap((op) => [d.started(op), d.ended(op)]).filter((l) => l !== undefined);
}

describe("rootfs downtime: when the container goes down and comes back, in the log", () => {
  it("the stop says downtime starts; the start, once done, how long the container was down", () => {
    expect(
      lines(["journal", "stop", "copy", "verify", "swap", "start", "remove"], [1_000, 13_345]),
    ).to.deep.equal([
      "stopping the container: downtime starts",
      "starting the container",
      "the container is running: downtime ends after 12.3s",
    ]);
  });

  it("a start with no stop in this run (an earlier run stopped it) has no time to tell", () => {
    expect(lines(["move-nested", "start", "journal-clear"], [])).to.deep.equal([
      "starting the container",
      "the container is running (it was stopped before this run)",
    ]);
  });

  it("each stop starts its own downtime; a stop not yet followed by a start says nothing more", () => {
    expect(lines(["stop", "start", "stop", "start", "stop"], [0, 50, 1_000, 61_000, 70_000])).to.deep.equal([
      "stopping the container: downtime starts",
      "starting the container",
      "the container is running: downtime ends after 0.1s",
      "stopping the container: downtime starts",
      "starting the container",
      "the container is running: downtime ends after 60.0s",
      "stopping the container: downtime starts",
    ]);
  });

  it("steps other than stop and start log nothing here", () => {
    const others: Step["op"][] = ["journal", "journal-clear", "discard", "unswapped", "subvol-create"];
    expect(lines([...others, "mkdir-new", "copy", "precopy", "catchup", "verify", "swap"], [])).to.deep.equal(
      [],
    );
    expect(lines(["write-config", "move-nested", "remove"], [])).to.deep.equal([]);
  });
});
