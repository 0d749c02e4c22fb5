import { expect } from "chai";
import { globMatch } from "../../../provider/core/glob";
import { selectContainers } from "../../../provider/fleet/plan";
import { patternsMatch } from "../../../provider/transport/hostkeys";

describe("core: globMatch (container names and known_hosts patterns)", () => {
  const table: [string, string, boolean][] = [
    ["web*", "web1", true],
    ["web*", "web", true],
    ["web*", "aweb1", false],
    ["web?", "web1", true],
    ["web?", "web12", false],
    ["*", "", true],
    ["a.b", "a.b", true],
    ["a.b", "axb", false],
    ["db[1]", "db[1]", true],
    ["db[1]", "db1", false],
    ["x+(y)|z^$", "x+(y)|z^$", true],
    ["back\\slash", "back\\slash", true],
    ["Web*", "web1", false],
  ];
  for (const [pattern, name, want] of table) {
    it(`${JSON.stringify(pattern)} ${want ? "matches" : "does not match"} ${JSON.stringify(name)}`, () => {
      expect(globMatch(pattern, name)).to.equal(want);
    });
  }

  it("ignoreCase: host names match whatever their case", () => {
    expect(globMatch("Web*.EXAMPLE.com", "web1.example.COM", { ignoreCase: true })).to.equal(true);
    expect(globMatch("Web*.EXAMPLE.com", "web1.example.COM")).to.equal(false);
  });

  it("the two users keep their semantics: container globs are case-sensitive, host patterns are not", () => {
    expect(selectContainers(["Web1", "web2"], ["web*"])).to.deep.equal(["web2"]);
    expect(patternsMatch("WEB*.example.com,!web9.example.com", "web1.EXAMPLE.com")).to.equal(true);
    expect(patternsMatch("WEB*.example.com,!web9.example.com", "WEB9.example.com")).to.equal(false);
  });
});
