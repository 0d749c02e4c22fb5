/**
 * Reading a dispatch out of shell text, for tests that hold TypeScript and the remote scripts to one list:
 * the patterns of the arms of the first `case` in a shell function, at that case's own level (the arms of
 * a `case` nested in an arm are not its arms). Tokenized as sh reads it, closely enough for our scripts:
 * comments, quotes and backslashes are skipped over, so neither indentation nor a `)` or `;;` in a comment
 * or string changes the result. Pure.
 */

/** The patterns of the arms of the first `case` in function `fn` of `text` (each once, in order; `*` kept). */
export function caseArms(text: string, fn: string): string[] {
  const defs = [...text.matchAll(new RegExp(`^[ \\t]*${fn}[ \\t]*\\(\\)[ \\t]*\\{`, "gm"))];
  if (defs.length !== 1) throw new Error(`${defs.length} definitions of ${fn}() in the script`);
  const toks = tokens(text.slice((defs[0].index ?? 0) + defs[0][0].length));
  let i = toks.indexOf("case");
  if (i < 0 || toks[i + 2] !== "in") throw new Error(`no \`case WORD in\` in ${fn}()`);
  i += 3;
  const arms: string[] = [];
  for (;;) {
    // An arm: [(] PATTERN [| PATTERN]... ) BODY ;;   or the case's end.
    while (toks[i] === "\n") i++;
    if (toks[i] === "esac") return arms;
    if (toks[i] === "(") i++;
    for (;;) {
      const p = toks[i++];
      if (p === undefined || p === "\n" || p === ")" || p === "|")
        throw new Error(`unreadable case arm in ${fn}() near ${JSON.stringify(p)}`);
      arms.push(p);
      const sep = toks[i++];
      if (sep === ")") break;
      if (sep !== "|") throw new Error(`unreadable case arm in ${fn}() after ${JSON.stringify(p)}`);
    }
    // The arm's body: up to its `;;`, or the case's `esac`, counting the cases nested in it.
    for (let depth = 0; ; i++) {
      const t = toks[i];
      if (t === undefined) throw new Error(`the case in ${fn}() does not end`);
      if (t === "case") depth++;
      else if (t === "esac" && depth-- === 0) return arms;
      else if (t === ";;" && depth === 0) {
        i++;
        break;
      }
    }
  }
}

/** sh's tokens, roughly: words (quotes kept inside them), operators, and "\n"; comments dropped. */
export function tokens(s: string): string[] {
  const out: string[] = [];
  let word = "";
  const flush = () => {
    if (word) out.push(word);
    word = "";
  };
  for (let i = 0; i < s.length; ) {
    const c = s[i];
    if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += c === '"' && s[j] === "\\" ? 2 : 1;
      if (j >= s.length) throw new Error(`unterminated ${c} quote`);
      word += s.slice(i, j + 1);
      i = j + 1;
    } else if (c === "\\") {
      word += s.slice(i, i + 2);
      i += 2;
    } else if (c === "#" && word === "") {
      const nl = s.indexOf("\n", i);
      i = nl < 0 ? s.length : nl;
    } else if (c === " " || c === "\t") {
      flush();
      i++;
    } else if (c === "\n") {
      flush();
      out.push("\n");
      i++;
    } else if (c === ";" && s[i + 1] === ";") {
      flush();
      out.push(";;");
      i += 2;
    } else if (";|&()<>".includes(c)) {
      flush();
      out.push(c);
      i++;
    } else {
      word += c;
      i++;
    }
  }
  flush();
  return out;
}
