/**
 * The skeleton both providers share, so that each provider file keeps only what its resource does on a
 * host: `check`, reading the inputs back from state, parsing them, the words every message and log line
 * starts with (the resource and its host), the resource id, and which input changes are changes at all.
 * Loaded only in the provider process (it holds a zod schema). Pure apart from `log`.
 */
import type { z } from "zod";
import type { Connection } from "./connection";
import { UserError } from "./errors";
import { type CheckFailure, checkInputs, parseInputsOrThrow } from "./inputs";

/** What every resource's inputs have: the host, and the directory of its containers. */
export interface HostedInputs {
  connection: Connection;
  lxcPath: string;
}

/** The host a resource is on, named as `Remote.target` names it (`user@host:port`). */
export interface OnHost {
  readonly target: string;
}

export interface ResourceKind<I extends HostedInputs> {
  /** The class users declare; every message starts with it: "LxcSubvolumeRootfs". */
  type: string;
  /** The inputs' schema: the only list of input keys. */
  schema: z.ZodType<I> & { shape: Record<string, unknown> };
  /** Names one resource in messages, after the type: "web1", or "web1-c (from web1)". */
  label(i: I): string;
  /** Names one resource in log lines: "web1", or "clone web1-c". */
  logLabel(i: I): string;
  /** The container the resource is (its id ends with it). */
  container(i: I): string;
}

export class ProviderBase<I extends HostedInputs> {
  /** The input keys, in the schema's order. */
  readonly inputKeys: readonly (keyof I & string)[];

  constructor(private readonly kind: ResourceKind<I>) {
    this.inputKeys = Object.keys(kind.schema.shape) as (keyof I & string)[];
  }

  /** check(): the normalized inputs (the engine's `__provider` kept), or failures naming each property. */
  check(news: unknown): { inputs?: unknown; failures?: CheckFailure[] } {
    return checkInputs(this.kind.schema, news);
  }

  /** Validated inputs, or a UserError naming the resource type and every failure. */
  parse(raw: unknown): I {
    return parseInputsOrThrow(this.kind.schema, raw, this.kind.type) as I;
  }

  /** The inputs stored with the outputs in state (read, delete): null and undefined mean not given. */
  pickInputs(props: object): Partial<I> {
    const p = props as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of this.inputKeys) if (p[k] !== undefined && p[k] !== null) out[k] = p[k];
    return out as Partial<I>;
  }

  /** The inputs stored in state, validated again (what read and delete work with). */
  inputsFromState(props: object): I {
    return this.parse(this.pickInputs(props));
  }

  /** `host:port:lxcPath/container`: unique per container, stable while no replacing input changes. */
  resourceId(i: I): string {
    return `${i.connection.host}:${i.connection.port}:${i.lxcPath}/${this.kind.container(i)}`;
  }

  /** `LxcSubvolumeRootfs web1 on root@h1:22: what`. */
  message(i: I, host: OnHost, what: string): string {
    return `${this.kind.type} ${this.kind.label(i)} on ${host.target}: ${what}`;
  }

  /**
   * An error for a state of the host this run cannot go on from. Ends with what the run changed before
   * it stopped: "Nothing was changed." when `done` is empty, else the steps already done, so the message is
   * true wherever it is raised.
   */
  refuse(i: I, host: OnHost, why: string, done: readonly string[] = []): UserError {
    return new UserError(this.message(i, host, `${why}. ${afterSteps(done)}`));
  }

  /** Adds the resource's type and name to a UserError from below (a failed command, an unreachable host). */
  named(i: I, e: unknown): unknown {
    const { type, label } = this.kind;
    if (!(e instanceof UserError) || e.message.startsWith(`${type} `)) return e;
    // Transport errors already name the host (`on root@h1:22: ...`, `cannot connect to root@h1:22: ...`).
    return new UserError(`${type} ${label(i)}: ${e.message}`, { cause: e });
  }

  /** Runs `work`, naming the resource in any UserError it throws. */
  async guard<T>(i: I, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw this.named(i, e);
    }
  }

  log(i: I, host: OnHost, msg: string): void {
    console.log(`[lxc-btrfs] ${this.kind.logLabel(i)} on ${host.target}: ${msg}`);
  }

  /**
   * Pure: which inputs force a replacement (the host, or one of `replaceKeys`) and whether any input
   * changed at all. Inputs compare as canonical JSON (see `sameValue`), so state written in another key
   * order or with nulls for absent fields is no change.
   */
  diffInputs(
    olds: Partial<I>,
    news: I,
    replaceKeys: readonly (keyof I & string)[],
  ): { replaces: string[]; changed: boolean } {
    const replaces: string[] = [];
    const oc = olds.connection;
    if (oc && (oc.host !== news.connection.host || oc.port !== news.connection.port))
      replaces.push("connection");
    for (const k of replaceKeys) if (!sameValue(olds[k], news[k])) replaces.push(k);
    const changed = this.inputKeys.some((k) => !sameValue(olds[k], news[k]));
    return { replaces, changed };
  }
}

/** "Nothing was changed.", or the steps this run had already done on the host, and what to do. */
export function afterSteps(done: readonly string[]): string {
  if (done.length === 0) return "Nothing was changed.";
  return `This run had already changed the host (${done.join("; ")}); run again: it starts from what it finds there.`;
}

/**
 * Whether two input values are the same: equal as JSON, where object key order, undefined and null values
 * and engine keys (`__provider`, `__…`) do not count. Array order does.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a) ?? null) === JSON.stringify(canonical(b) ?? null);
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([k, x]) => x !== undefined && x !== null && !k.startsWith("__"))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}
