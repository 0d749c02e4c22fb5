/**
 * What all resource classes share. Pulumi runs a dynamic resource's provider from the text stored with every
 * resource in state (`__provider`, in its inputs and again in its outputs): the provider process loads it as a
 * module and calls `handler()` for the provider, for `refresh`, `destroy` and a resource removed from the
 * program as well. `pulumi.dynamic.Resource` stores the provider object as Pulumi's closure serializer writes it:
 * for seven one-line methods that is 2.2 KB, twice per resource, most of each resource's state. Our classes
 * store one line instead (`storedProvider`): it names the implementation by package,
 * `require("pulumi-lxc-btrfs/dynamic")`, which the provider process resolves from the program's directory
 * like any dependency, so state works from any checkout or machine that has the package installed, and
 * nothing heavy (node-ssh, zod, a schema object) and no secret is ever in it (pulumi/pulumi#5294, #13960).
 * The implementation is in dynamic.ts.
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
 * The props a class registers: the user's args, `undefined` for every other key the class exposes (inputs
 * left to their default, and outputs), and the stored provider (`__provider`, storedProvider). An undefined
 * value is never sent to the engine, so the inputs stay what the user wrote; but the SDK creates a property
 * only for the keys it is given, and fills it with what the provider returned: without this, `lxcPath` left
 * to its default would be missing on the object although its type says it is there.
 */
export function resourceProps(
  provider: ProviderName,
  args: object,
  ...keys: Record<string, true>[]
): Record<string, unknown> {
  if ("__provider" in args) throw new Error("A dynamic resource must not define the __provider key");
  const unset = Object.fromEntries(keys.flatMap((k) => Object.keys(k)).map((k) => [k, undefined]));
  return { ...unset, ...args, __provider: storedProvider(provider) };
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

/** The providers dynamic.ts exports, one per resource class. */
export type ProviderName = "rootfs" | "clone" | "snapshot";

/**
 * The `__provider` every resource of a class stores: a module whose `handler()` returns the provider that
 * dynamic.ts exports, as the stored text of `pulumi.dynamic.Resource` does (the provider process calls
 * exactly that). State written by 0.2.0 (the serializer's text, whose methods each call the same provider)
 * and by 0.1.0 (see dynamic.ts) keeps working: the text only has to load the implementation.
 */
export function storedProvider(name: ProviderName): string {
  return `exports.handler = () => require("pulumi-lxc-btrfs/dynamic").${name};`;
}

/**
 * The type `pulumi.dynamic.Resource` registers for a class (so URNs are unchanged), which the engine runs with
 * the dynamic provider: each class is what `pulumi.dynamic.Resource` is, a CustomResource of that type whose
 * inputs carry `__provider` (resourceProps), with storedProvider's line instead of a serialized closure. The
 * classes call CustomResource's constructor themselves: a class between them would be the frame Pulumi
 * records as each resource's `sourcePosition`.
 */
export function dynamicType(type: string): string {
  return `pulumi-nodejs:dynamic/lxc-btrfs:${type}`;
}
