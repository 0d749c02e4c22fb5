/**
 * State written by 0.2.0, whose classes stored the provider object as Pulumi's closure serializer wrote it
 * (2.2 KB, in inputs and outputs), where this version stores one line (core/resource.ts, storedProvider).
 * test/fixtures/state-0.2.0.json is real state: `pulumi stack export --show-secrets` after `pulumi up` of
 * test/e2e/state.test.ts's program (one LxcSubvolumeRootfs, LxcSnapshot and LxcSnapshotClone on h4) with
 * 0.2.0 installed, our three resources kept. Its stored providers must keep working with this version
 * installed, and an unchanged program must see no change: `diff` ignores `__provider`, so `pulumi up`
 * updates nothing (and contacts no host), and what this version stores differs only in `__provider` (and a
 * clone on its source's host no longer lists `sourceConnection`, which it has no output of, as a secret
 * output). The e2e test (test/e2e/state.test.ts) runs the same with the real CLI on the fleet.
 */
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { CLONE_INPUT_KEYS, CLONE_OUTPUT_KEYS } from "../../provider/clone/outputs";
import { storedProvider } from "../../provider/core/resource";
import { clone, rootfs, snapshot } from "../../provider/dynamic";
import { ROOTFS_INPUT_KEYS, ROOTFS_OUTPUT_KEYS } from "../../provider/rootfs/outputs";
import { SNAPSHOT_INPUT_KEYS, SNAPSHOT_OUTPUT_KEYS } from "../../provider/snapshot/outputs";
import { fixture, ROOT } from "./fixtures";

const requireFromString = require("require-from-string") as (
  code: string,
  filename?: string,
) => {
  handler: () => pulumi.dynamic.ResourceProvider;
};

type Props = Record<string, unknown>;
interface StateResource {
  urn: string;
  id: string;
  type: string;
  inputs: Props;
  outputs: Props;
  additionalSecretOutputs?: string[];
}

/** A secret of `--show-secrets` (`{<sig>, plaintext: <JSON>}`) as its value; the rest as they are. */
function revealed(props: Props): Props {
  return Object.fromEntries(
    Object.entries(props).map(([k, v]) => [
      k,
      v && typeof v === "object" && "plaintext" in v ? JSON.parse(String(v.plaintext)) : v,
    ]),
  );
}

const STATE = JSON.parse(fixture("state-0.2.0.json")) as { deployment: { resources: StateResource[] } };
const KINDS = {
  LxcSubvolumeRootfs: {
    name: "rootfs",
    impl: rootfs,
    inputs: ROOTFS_INPUT_KEYS,
    outputs: ROOTFS_OUTPUT_KEYS,
  },
  LxcSnapshotClone: { name: "clone", impl: clone, inputs: CLONE_INPUT_KEYS, outputs: CLONE_OUTPUT_KEYS },
  LxcSnapshot: {
    name: "snapshot",
    impl: snapshot,
    inputs: SNAPSHOT_INPUT_KEYS,
    outputs: SNAPSHOT_OUTPUT_KEYS,
  },
} as const;

describe("state written by 0.2.0 (the stored provider as the closure serializer wrote it)", () => {
  it("holds one resource of each class", () => {
    expect(STATE.deployment.resources.map((r) => r.type.split(":").pop()).sort()).to.deep.equal([
      "LxcSnapshot",
      "LxcSnapshotClone",
      "LxcSubvolumeRootfs",
    ]);
  });

  for (const r of STATE.deployment.resources) {
    const type = r.type.split(":").pop() as keyof typeof KINDS;
    const kind = KINDS[type];
    const inputs = revealed(r.inputs);
    const outputs = revealed(r.outputs);
    describe(type, () => {
      it("stores the serialized closure, in inputs and outputs alike, 25 times this version's line", () => {
        expect(inputs.__provider).to.equal(outputs.__provider);
        const old = JSON.stringify(inputs.__provider).length;
        expect(old).to.be.above(2000);
        expect(old).to.be.above(25 * JSON.stringify(storedProvider(kind.name)).length);
      });

      it("its stored provider loads in a program's directory and its methods reach this version", async () => {
        const loaded = requireFromString(String(inputs.__provider), path.join(ROOT, "program.js")).handler();
        const { __provider: _, ...given } = inputs;
        const res = await loaded.check!({}, given);
        expect(res.failures).to.equal(undefined);
        expect(await loaded.diff!(r.id, outputs, { ...given, __provider: "x" })).to.deep.include({
          changes: false,
          replaces: [],
        });
      });

      it("an unchanged program: check gives the stored inputs back, diff finds no change (no update)", async () => {
        const { __provider: _, ...given } = inputs;
        const news = { ...given, __provider: storedProvider(kind.name) };
        const checked = await kind.impl.check!(inputs, news);
        expect(checked.failures).to.equal(undefined);
        expect(checked.inputs).to.deep.equal(news);
        expect(await kind.impl.diff!(r.id, outputs, checked.inputs)).to.deep.include({
          changes: false,
          replaces: [],
        });
      });

      it("stores what this version stores, apart from __provider: the same inputs, outputs and secrets", () => {
        const inputKeys = Object.keys(kind.inputs);
        const outputKeys = [...inputKeys, ...Object.keys(kind.outputs)];
        expect(Object.keys(inputs).filter((k) => k !== "__provider")).to.satisfy((ks: string[]) =>
          ks.every((k) => inputKeys.includes(k)),
        );
        expect(
          Object.keys(outputs)
            .filter((k) => k !== "__provider")
            .sort(),
        ).to.deep.equal(outputKeys.filter((k) => outputs[k] !== undefined).sort());
        // This version lists sourceConnection only for a clone given one (the e2e test stores 0.2.0's list).
        expect(r.additionalSecretOutputs).to.deep.equal(
          type === "LxcSnapshotClone" ? ["connection", "sourceConnection"] : ["connection"],
        );
        expect(outputs).to.not.have.property("sourceConnection");
        // The connection's output copy is one secret, as this version keeps it.
        expect(r.outputs.connection).to.have.property("plaintext");
      });
    });
  }
});
