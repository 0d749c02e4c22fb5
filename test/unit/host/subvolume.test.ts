import { expect } from "chai";
import { parseSubvolumeFields, unescapeMountinfo } from "../../../provider/host/subvolume";

describe("subvolume: parseSubvolumeFields (the fields of `btrfs subvolume show`, btrfs-progs 6.2)", () => {
  const fields = (o: Record<string, string>) => new Map(Object.entries(o));
  const SUBVOL = {
    UUID: "451b3e71-7255-7642-9e24-3d0cf12faf54",
    "Parent UUID": "-",
    "Subvolume ID": "256",
    Generation: "7",
  };

  it("a subvolume", () => {
    expect(parseSubvolumeFields(fields(SUBVOL))).to.deep.equal({
      id: 256,
      uuid: "451b3e71-7255-7642-9e24-3d0cf12faf54",
      parentUuid: null,
      generation: 7,
    });
  });

  it("a snapshot of it (lxc-copy -s) names its parent", () => {
    const snap = {
      ...SUBVOL,
      UUID: "d557aa90-1888-a143-9253-252d5036c78b",
      "Parent UUID": SUBVOL.UUID,
      "Subvolume ID": "261",
    };
    expect(parseSubvolumeFields(fields(snap))).to.deep.equal({
      id: 261,
      uuid: "d557aa90-1888-a143-9253-252d5036c78b",
      parentUuid: "451b3e71-7255-7642-9e24-3d0cf12faf54",
      generation: 7,
    });
  });

  const ERR =
    "unrecognised `btrfs subvolume show` output (a btrfs-progs version this provider does not know)";
  for (const [what, given] of [
    ["no fields", {}],
    ["a non-numeric ID", { ...SUBVOL, "Subvolume ID": "abc" }],
    ["an upper-case UUID", { ...SUBVOL, UUID: "451B3E71-7255-7642-9e24-3d0cf12faf54" }],
    ["no generation", { UUID: SUBVOL.UUID, "Subvolume ID": "256" }],
  ] as [string, Record<string, string>][]) {
    it(`fails closed on ${what}`, () => {
      expect(() => parseSubvolumeFields(fields(given))).to.throw(Error, ERR);
    });
  }
});

describe("subvolume: unescapeMountinfo", () => {
  const table: [string, string][] = [
    ["/plain/path", "/plain/path"],
    ["/with\\040space", "/with space"],
    ["/tab\\011x", "/tab\tx"],
    ["/nl\\012x", "/nl\nx"],
    ["/back\\134slash", "/back\\slash"],
    ["/literal\\134040", "/literal\\040"],
    ["/two\\040\\040spaces", "/two  spaces"],
    ["/not\\9octal", "/not\\9octal"],
    ["/short\\04", "/short\\04"],
  ];
  for (const [input, want] of table) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => {
      expect(unescapeMountinfo(input)).to.equal(want);
    });
  }
});
