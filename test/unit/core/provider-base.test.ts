import { expect } from "chai";
import { cloneArgsSchema } from "../../../provider/clone/inputs";
import { UserError } from "../../../provider/core/errors";
import { afterSteps, ProviderBase, sameValue } from "../../../provider/core/provider-base";
import { type RootfsInputs, rootfsArgsSchema } from "../../../provider/rootfs/inputs";

const base = new ProviderBase<RootfsInputs>({
  type: "LxcSubvolumeRootfs",
  schema: rootfsArgsSchema,
  label: (i) => i.container,
  logLabel: (i) => i.container,
  container: (i) => i.container,
});
const inputs = base.parse({ connection: { host: "h1" }, container: "c1" });
const host = { target: "root@h1:22" };

describe("provider-base: sameValue (which input changes are changes)", () => {
  const conn = { host: "h1", port: 22, user: "root", sudo: false };
  const table: [string, unknown, unknown, boolean][] = [
    ["equal strings", "a", "a", true],
    ["different strings", "a", "b", false],
    ["object key order does not count", conn, { sudo: false, user: "root", port: 22, host: "h1" }, true],
    ["key order does not count in nested objects", { p: { a: 1, b: 2 } }, { p: { b: 2, a: 1 } }, true],
    ["an undefined field is an absent one", { ...conn, password: undefined }, conn, true],
    ["a null field is an absent one (state written with nulls)", { ...conn, password: null }, conn, true],
    ["a null value is an absent one", null, undefined, true],
    ["engine keys (__provider, __...) do not count", { ...conn, __secret: "x" }, conn, true],
    ["a changed nested field counts", conn, { ...conn, port: 2222 }, false],
    ["a field added counts", conn, { ...conn, password: "s3cret" }, false],
    ["false is not absent", false, undefined, false],
    ["0 is not absent", 0, null, false],
    ["array order counts", ["a", "b"], ["b", "a"], false],
    ["objects inside arrays compare by key, not order", [{ a: 1, b: 2 }], [{ b: 2, a: 1 }], true],
    ["a string is not a number", "22", 22, false],
  ];
  for (const [what, a, b, want] of table) {
    it(what, () => {
      expect(sameValue(a, b)).to.equal(want);
      expect(sameValue(b, a)).to.equal(want);
    });
  }
});

describe("provider-base: inputs", () => {
  it("the input keys are the schema's, in its order", () => {
    expect(base.inputKeys).to.deep.equal([
      "connection",
      "container",
      "lxcPath",
      "ifRunning",
      "nestedSubvolumes",
      "keepBackup",
      "restoreFrom",
      "onDelete",
    ]);
    const cloneBase = new ProviderBase({
      type: "LxcSnapshotClone",
      schema: cloneArgsSchema,
      label: (i) => i.name,
      logLabel: (i) => i.name,
      container: (i) => i.name,
    });
    expect(cloneBase.inputKeys).to.deep.equal([
      "connection",
      "sourceConnection",
      "lxcPath",
      "source",
      "name",
      "snapshot",
      "ifSourceRunning",
      "start",
      "hostname",
      "revision",
      "ifRunning",
    ]);
  });

  it("pickInputs keeps the inputs of stored outputs, without outputs, nulls or engine keys", () => {
    const props = { ...inputs, keepBackup: null, target: "root@h1:22", adopted: true, __provider: "x" };
    const { keepBackup: _, ...rest } = inputs;
    expect(base.pickInputs(props)).to.deep.equal(rest);
    expect(base.inputsFromState(props)).to.deep.equal(inputs);
  });

  it("parse names the resource type and every failure", () => {
    expect(() => base.parse({ connection: { host: "h1" }, container: "../x", keepBackup: 1 })).to.throw(
      UserError,
      "LxcSubvolumeRootfs: invalid inputs: container must be a container name: 1-64 letters, digits, '_', '.' or '-', " +
        "starting with a letter or digit, without '..' or '/'; keepBackup must be true or false",
    );
  });

  it("check returns the normalized inputs with the engine's __provider, or the failures", () => {
    expect(base.check({ connection: { host: "h1" }, container: "c1", __provider: "p" })).to.deep.equal({
      inputs: { ...inputs, __provider: "p" },
    });
    expect(base.check({ connection: { host: "h1" } })).to.deep.equal({
      failures: [{ property: "container", reason: "is required" }],
    });
  });

  it("resourceId is host:port:lxcPath/container", () => {
    expect(base.resourceId(inputs)).to.equal("h1:22:/var/lib/lxc/c1");
  });
});

describe("provider-base: errors name the resource and host, and say what was changed", () => {
  it("a refusal before any step: Nothing was changed.", () => {
    const e = base.refuse(inputs, host, "the rootfs is on ext4");
    expect(e).to.be.instanceOf(UserError);
    expect(e.message).to.equal(
      "LxcSubvolumeRootfs c1 on root@h1:22: the rootfs is on ext4. Nothing was changed.",
    );
  });

  it("a refusal after steps: which steps, and what to do", () => {
    const e = base.refuse(inputs, host, "x", ["roll back an interrupted convert", "convert rootfs"]);
    expect(e.message).to.equal(
      "LxcSubvolumeRootfs c1 on root@h1:22: x. This run had already changed the host " +
        "(roll back an interrupted convert; convert rootfs); run again: it starts from what it finds there.",
    );
  });

  const table: [string[], string][] = [
    [[], "Nothing was changed."],
    [["a"], "This run had already changed the host (a); run again: it starts from what it finds there."],
  ];
  for (const [done, want] of table) {
    it(`afterSteps(${JSON.stringify(done)})`, () => expect(afterSteps(done)).to.equal(want));
  }

  it("named adds type and name to a UserError from below, keeping it as cause, once", () => {
    const below = new UserError("on root@h1:22: `ls` exited with code 2: no");
    const e = base.named(inputs, below) as UserError;
    expect(e).to.be.instanceOf(UserError);
    expect(e.message).to.equal("LxcSubvolumeRootfs c1: on root@h1:22: `ls` exited with code 2: no");
    expect(e.cause).to.equal(below);
    expect(e.stack).to.equal(e.message);
    expect(base.named(inputs, e)).to.equal(e);
  });

  it("named leaves other errors (bugs) as they are", () => {
    const bug = new TypeError("x is undefined");
    expect(base.named(inputs, bug)).to.equal(bug);
  });

  it("guard names what its work throws, and passes its result", async () => {
    expect(await base.guard(inputs, async () => 7)).to.equal(7);
    const err = await base
      .guard(inputs, async () => {
        throw new UserError("cannot connect to root@h1:22: ECONNREFUSED");
      })
      .catch((e: Error) => e);
    expect((err as Error).message).to.equal(
      "LxcSubvolumeRootfs c1: cannot connect to root@h1:22: ECONNREFUSED",
    );
  });
});
