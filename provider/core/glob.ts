/**
 * Shell-style globs, `*` (any run of characters) and `?` (one character), matched against a whole name;
 * every other character stands for itself. Used for container names (fleet include/exclude) and host
 * names (known_hosts patterns): one pattern language, which differ only in case. Container names are
 * directory names, case-sensitive; host names are not, and OpenSSH lowercases both sides before it
 * matches a known_hosts pattern, so host key lookups pass `ignoreCase`.
 */
export function globMatch(pattern: string, name: string, opts: { ignoreCase?: boolean } = {}): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    opts.ignoreCase ? "i" : "",
  );
  return re.test(name);
}
