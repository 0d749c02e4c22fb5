/**
 * What every resource's inputs share, built with zod. Pure: no SSH, no Pulumi.
 *
 * Everything a user types is validated before any command runs on a host: container names and paths are
 * restricted to what cannot be misread by a shell or escape the LXC directory. `check()` turns zod issues
 * into `{property: "connection.port", reason}` failures. Each resource's own schema is in its folder
 * (rootfs/inputs.ts, clone/inputs.ts); the connection's is in connection.ts.
 */
import { z } from "zod";

/** What LXC accepts and we can pass safely: no slash, no leading dot or dash, no whitespace. */
export const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ABS_PATH = /^\/([A-Za-z0-9_.@+-]+\/?)*$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export const containerName = z.string().refine((s) => CONTAINER_NAME.test(s) && !s.includes(".."), {
  error:
    "must be a container name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..' or '/'",
});

export const absolutePath = z
  .string()
  .refine(
    (s) => ABS_PATH.test(s) && !s.split("/").some((p) => p === "." || p === "..") && !s.includes("//"),
    {
      error:
        "must be an absolute, normalized path of letters, digits and '_.@+-' (no '..', '//', spaces or shell characters)",
    },
  )
  .transform((s) => (s.length > 1 && s.endsWith("/") ? s.slice(0, -1) : s))
  .refine((s) => s !== "/", { error: "must not be the root directory" });

export const hostname = z
  .string()
  .refine((s) => s.length <= 253 && s.split(".").every((l) => HOSTNAME_LABEL.test(l)), {
    error:
      "must be a valid hostname: labels of letters, digits and '-', each 1-63 characters, separated by '.'",
  });

export interface CheckFailure {
  property: string;
  reason: string;
}

/** Parses with a schema; returns the normalized value or failures that name the property and the reason. */
export function validate<T extends z.ZodType>(
  schema: T,
  input: unknown,
): { ok: true; value: z.output<T> } | { ok: false; failures: CheckFailure[] } {
  const res = schema.safeParse(stripEngineKeys(input));
  if (res.success) return { ok: true, value: res.data };
  return { ok: false, failures: res.error.issues.map(toFailure) };
}

function toFailure(issue: z.core.$ZodIssue): CheckFailure {
  const property = issue.path.map(String).join(".") || "(inputs)";
  if (issue.code === "unrecognized_keys") {
    const where = issue.path.length ? issue.path.join(".") : "";
    return {
      property: issue.keys.map((k) => (where ? `${where}.${k}` : k)).join(", "),
      reason: "is not a known property; check the spelling",
    };
  }
  if (issue.code === "invalid_value") {
    return { property, reason: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` };
  }
  if (issue.code === "invalid_type") {
    if (/received undefined/.test(issue.message)) return { property, reason: "is required" };
    const kinds: Record<string, string> = {
      string: "must be a string",
      number: "must be a number",
      boolean: "must be true or false",
      object: "must be an object",
    };
    return { property, reason: kinds[issue.expected] ?? issue.message };
  }
  return { property, reason: issue.message };
}

/** The engine adds `__provider` (and the SDK may add other `__` keys) to inputs; they are not user input. */
function stripEngineKeys(input: unknown): unknown {
  if (!input || typeof input !== "object") return input;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
    if (!k.startsWith("__")) out[k] = v;
  }
  return out;
}

/** Formats failures as one message for callers outside Pulumi's check (discovery, direct use). */
export function formatFailures(what: string, failures: CheckFailure[]): string {
  return `${what}: invalid input: ${failures.map((f) => `${f.property} ${f.reason}`).join("; ")}`;
}

/** check() of a dynamic provider: the normalized inputs (keeping the engine's `__provider`), or failures. */
export function checkInputs<T extends z.ZodType>(
  schema: T,
  news: unknown,
): { inputs?: unknown; failures?: CheckFailure[] } {
  const res = validate(schema, news);
  return res.ok
    ? { inputs: { ...(res.value as object), __provider: (news as Record<string, unknown>).__provider } }
    : { failures: res.failures };
}

/** Validated inputs, or a UserError naming the resource type and every failure. */
export function parseInputsOrThrow<T extends z.ZodType>(schema: T, raw: unknown, what: string): z.output<T> {
  const res = validate(schema, raw);
  if (!res.ok) {
    const { UserError } = require("./errors") as typeof import("./errors");
    throw new UserError(
      `${what}: invalid inputs: ${res.failures.map((f) => `${f.property} ${f.reason}`).join("; ")}`,
    );
  }
  return res.value;
}
