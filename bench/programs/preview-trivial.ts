/**
 * Pulumi program of the preview benchmark's baseline: BENCH_COUNT dynamic resources whose provider has
 * create only, the least a dynamic resource can cost the engine.
 */
import * as pulumi from "@pulumi/pulumi";

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs) {
    return { id: `trivial-${inputs.index}`, outs: inputs };
  },
};

class Trivial extends pulumi.dynamic.Resource {
  constructor(name: string, index: number) {
    super(provider, name, { index }, {});
  }
}

const n = Number(process.env.BENCH_COUNT ?? "30");
for (let i = 0; i < n; i++) new Trivial(`trivial-${i}`, i);
