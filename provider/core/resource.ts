/**
 * What both resource classes share. Pulumi serializes a dynamic provider into state as source text
 * (`__provider`) for every resource, and runs `read` and `delete` with the text in state. Ours is a few
 * lines that name the implementation by package, `require("pulumi-lxc-btrfs/dynamic")`, at call time: the
 * provider process resolves it from the program's directory like any dependency, so state works from any
 * checkout or machine that has the package installed, and nothing heavy (node-ssh, zod, a schema object)
 * and no secret is ever captured (pulumi/pulumi#5294, #13960). The implementation is in dynamic.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "../transport/connection";

export type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

/** How to reach a host: the fields of @pulumi/command's remote.Connection, plus sudo and host key policy. */
export type LxcConnectionArgs = Inputs<Omit<ConnectionArgs, "proxy">> & {
  proxy?: pulumi.Input<Inputs<Omit<ConnectionArgs, "proxy">>>;
};

export function nulls<K extends string>(keys: readonly K[]): Record<K, undefined> {
  return Object.fromEntries(keys.map((k) => [k, undefined])) as Record<K, undefined>;
}

/** The connection may hold a key or password: keep the whole output secret in state. */
export function secretConnection(opts?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions {
  return { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "connection"] };
}
