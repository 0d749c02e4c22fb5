/**
 * The NUL-framed sections the remote scripts print after their `key=value` lines: `@@name\0` then the
 * section's items, each ended by a NUL (a section of text is one item). Pure.
 */
export interface Sections {
  /** The items of a section, as printed (empty when the section is absent). */
  items(name: string): string[];
  /** A section's text: its items joined, without the empty item its closing NUL leaves. */
  text(name: string): string;
}

/** Splits `out` (from its first section on) into the sections named in `names`; other items go to the one before. */
export function splitSections(out: string, names: readonly string[]): Sections {
  const sections = new Map<string, string[]>();
  let cur = "";
  for (const item of out.split("\0")) {
    if (names.includes(item) && !sections.has(item)) {
      cur = item;
      sections.set(cur, []);
    } else if (cur) sections.get(cur)?.push(item);
  }
  const items = (name: string) => sections.get(name) ?? [];
  return {
    items,
    text: (name) =>
      items(name)
        .filter((x, i, a) => x !== "" || i < a.length - 1)
        .join("\0"),
  };
}
