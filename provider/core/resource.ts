/**
 * What both resource classes share. Pulumi serializes a dynamic provider into state as source text
 * (`__provider`) for every resource, and runs `read` and `delete` with the text in state. Ours is a few
 * lines that name the implementation by package, `require("pulumi-lxc-btrfs/dynamic")`, at call time: the
 * provider process resolves it from the program's directory like any dependency, so state works from any
 * checkout or machine that has the package installed, and nothing heavy (node-ssh, zod, a schema object)
 * and no secret is ever captured (pulumi/pulumi#5294, #13960). The implementation is in dynamic.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";

/** What a class takes: each field of T, or a promise or Output of it (docs carry over from T). */
export type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

/**
 * What a class exposes: every field of T (its inputs and outputs) as an Output, with T's docs. A class
 * declares these by merging an interface with itself (`interface LxcSubvolumeRootfs extends
 * Outputs<RootfsOutputs> {}`); the SDK creates exactly the properties whose keys the constructor passes,
 * so `resourceProps` passes every one of them.
 */
export type Outputs<T> = { readonly [K in keyof T]-?: pulumi.Output<T[K]> };

/** How to reach a host: the fields of @pulumi/command's remote.Connection, plus sudo and host key policy. */
export type LxcConnectionArgs = Inputs<Omit<ConnectionArgs, "proxy">> & {
  proxy?: pulumi.Input<Inputs<Omit<ConnectionArgs, "proxy">>>;
};

/**
 * The props a class gives dynamic.Resource: the user's args, and `undefined` for every other key the class
 * exposes (inputs left to their default, and outputs). An undefined value is never sent to the engine, so
 * the inputs stay what the user wrote; but the SDK creates a property only for the keys it is given, and
 * fills it with what the provider returned: without this, `lxcPath` left to its default would be missing
 * on the object although its type says it is there.
 */
export function resourceProps(args: object, ...keys: Record<string, true>[]): Record<string, unknown> {
  const unset = Object.fromEntries(keys.flatMap((k) => Object.keys(k)).map((k) => [k, undefined]));
  return { ...unset, ...args };
}

/** The `connection` input of every class: LxcConnectionArgs, where any field may be an Output. */
export interface ConnectionInput {
  /** How to reach the host: address, user, credentials, host key policy. */
  connection: pulumi.Input<LxcConnectionArgs>;
}

/**
 * The connection may hold a key or password: keep the whole output secret in state (and any other
 * connection the resource takes, `extra`: a cross-host clone's `sourceConnection`).
 */
export function secretConnection(
  opts?: pulumi.CustomResourceOptions,
  ...extra: string[]
): pulumi.CustomResourceOptions {
  return {
    ...opts,
    additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "connection", ...extra],
  };
}
