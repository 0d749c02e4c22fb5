/**
 * The log lines that tell a user when a conversion's container goes down and comes back: its `stop` step
 * starting, and its `start` step done, with the time between, across the batches (and rounds) of one run.
 * Pure apart from the clock it is given.
 */
import type { Step } from "./plan";

export class Downtime {
  private stoppedAt?: number;

  constructor(private readonly now: () => number = Date.now) {}

  /** The line for step `op` starting (step.sh printed its marker), if it is one to log. */
  started(op: Step["op"]): string | undefined {
    if (op === "stop") {
      this.stoppedAt = this.now();
      return "stopping the container: downtime starts";
    }
    if (op === "start") return "starting the container";
    return undefined;
  }

  /** The line for step `op` done (the next step's marker came, or its batch succeeded), if one to log. */
  ended(op: Step["op"]): string | undefined {
    if (op !== "start") return undefined;
    const since = this.stoppedAt;
    this.stoppedAt = undefined;
    if (since === undefined) return "the container is running (it was stopped before this run)";
    return `the container is running: downtime ends after ${((this.now() - since) / 1000).toFixed(1)}s`;
  }
}
