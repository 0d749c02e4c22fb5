import { expect } from "chai";
import { signalExitCode } from "../../../provider/transport/ssh";

describe("signalExitCode: a signal ssh2 reports by name as the code a shell gives", () => {
  const table: [string | undefined, number | null][] = [
    ["SIGTERM", 143],
    ["SIGKILL", 137],
    ["SIGINT", 130],
    ["SIGHUP", 129],
    ["SIGSEGV", 139],
    ["SIGNOSUCH", null],
    ["KILL", null],
    [undefined, null],
  ];
  for (const [name, code] of table)
    it(`${name} -> ${code}`, () => expect(signalExitCode(name)).to.equal(code));
});
