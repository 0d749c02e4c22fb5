/** test/support/shell-case.ts: the dispatch reader the script-contract tests rely on. */
import { expect } from "chai";
import { caseArms } from "../support/shell-case";

describe("shell-case: caseArms reads the arms of a function's case as sh does", () => {
  it("arms at the case's own level: not a nested case's, not a `)` or `;;` in a comment or a string", () => {
    const text = [
      "before() { case $x in nope) ;; esac; }",
      "step() {",
      "op=$1",
      "  case $op in",
      "  a)   # a comment with b) and ;; in it",
      "    echo \"c) ;; d)\" 'e) ;;'",
      "    case $(f) in RUNNING | FROZEN) return 0 ;; esac",
      "    ;;",
      "(g-h | i) case $y in",
      "  j) : ;;",
      "  esac ;;",
      '*) fail "unknown $op" ;;',
      "  esac",
      "}",
      "after() { case $op in k) ;; esac; }",
    ].join("\n");
    expect(caseArms(text, "step")).to.deep.equal(["a", "g-h", "i", "*"]);
  });

  it("a last arm without `;;` ends at esac; `#` inside a word is no comment", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text, not a template
    expect(caseArms("step() {\ncase $op in\nx) echo ${p#y} $# ;;\ny) :\nesac\n}", "step")).to.deep.equal([
      "x",
      "y",
    ]);
  });

  it("fails rather than guess: no function, two of it, no case, a case that does not end", () => {
    expect(() => caseArms("other() { :; }", "step")).to.throw("0 definitions of step() in the script");
    expect(() => caseArms("step() {\n}\nstep() {\n}", "step")).to.throw("2 definitions of step()");
    expect(() => caseArms("step() {\necho\n}", "step")).to.throw("no `case WORD in` in step()");
    expect(() => caseArms("step() {\ncase $op in\na) :", "step")).to.throw("the case in step() does not end");
  });
});
