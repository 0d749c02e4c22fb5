import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { quoteArg, quoteArgv } from "../../../provider/transport/quote";
import { mulberry32 } from "../fixtures";

const NUL_MESSAGE = "an argument contains a NUL byte, which cannot be passed to a command";

/** Runs a command line with a local shell and returns its stdout bytes. */
function runShell(shell: string, line: string, env?: NodeJS.ProcessEnv): Buffer {
  return execFileSync(shell, ["-c", line], { env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
}

/** The shells we can check against here: /bin/sh always, dash and bash when installed. */
const SHELLS = ["/bin/sh", "/usr/bin/dash", "/bin/dash", "/bin/bash"].filter(existsSync);
const DASH = ["/usr/bin/dash", "/bin/dash"].find(existsSync);

describe("quote: quoteArg", () => {
  const table: [string, string, string][] = [
    ["empty string", "", "''"],
    ["safe word", "abc", "abc"],
    ["safe path", "/var/lib/lxc/c1/rootfs", "/var/lib/lxc/c1/rootfs"],
    ["safe punctuation", "user@host:22,a=b%c+d.e_f", "user@host:22,a=b%c+d.e_f"],
    ["leading dash (not a shell concern)", "-rf", "-rf"],
    ["double dash", "--", "--"],
    ["space", "a b", "'a b'"],
    ["tab", "a\tb", "'a\tb'"],
    ["single quote", "it's", "'it'\\''s'"],
    ["only a single quote", "'", "''\\'''"],
    ["two single quotes", "''", "''\\'''\\'''"],
    ["double quotes", 'say "hi"', "'say \"hi\"'"],
    ["command substitution", "$(id)", "'$(id)'"],
    ["variable", "$HOME", "'$HOME'"],
    ["backticks", "`id`", "'`id`'"],
    ["semicolon", "a;b", "'a;b'"],
    ["and-list", "a && b", "'a && b'"],
    ["pipe", "a|b", "'a|b'"],
    ["redirection", ">/etc/passwd", "'>/etc/passwd'"],
    ["newline", "a\nb", "'a\nb'"],
    ["glob star", "*", "'*'"],
    ["glob question mark", "?", "'?'"],
    ["glob bracket", "[a]", "'[a]'"],
    ["brace expansion", "{a,b}", "'{a,b}'"],
    ["comment sign", "#x", "'#x'"],
    ["backslash", "a\\b", "'a\\b'"],
    ["tilde", "~", "'~'"],
    ["tilde user", "~root", "'~root'"],
    ["history bang", "!", "'!'"],
    ["non-ASCII letter", "é", "'é'"],
    ["emoji", "😀", "'😀'"],
  ];
  for (const [what, input, want] of table) {
    it(`${what}: ${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => {
      expect(quoteArg(input)).to.equal(want);
    });
  }

  it("refuses a NUL byte with the exact message", () => {
    expect(() => quoteArg("a\0b")).to.throw(Error, NUL_MESSAGE);
    expect(() => quoteArg("\0")).to.throw(Error, NUL_MESSAGE);
  });

  it(`every table entry reads back byte for byte in ${SHELLS.join(", ")}`, () => {
    for (const shell of SHELLS) {
      for (const [what, input] of table) {
        const out = runShell(shell, `printf %s ${quoteArg(input)}`);
        expect(out.equals(Buffer.from(input, "utf8")), `${shell}: ${what}`).to.equal(true);
      }
    }
  });
});

/** Random strings of code points 1..0xFFFF (no NUL, no lone surrogates) plus emoji, biased to shell syntax. */
function randomString(rand: () => number): string {
  const meta = [..."'\"\\$`!*?[]{}()<>|&;#~=%:, \t\n-"];
  const len = Math.floor(rand() * 24);
  let s = "";
  for (let i = 0; i < len; i++) {
    const r = rand();
    if (r < 0.55) s += meta[Math.floor(rand() * meta.length)];
    else if (r < 0.75) s += String.fromCharCode(0x20 + Math.floor(rand() * 0x5f));
    else if (r < 0.8) s += String.fromCodePoint(0x1f600 + Math.floor(rand() * 0x40));
    else {
      let cp = 1 + Math.floor(rand() * 0xffff);
      if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x1000;
      s += String.fromCharCode(cp);
    }
  }
  return s;
}

describe("quote: round trip through real shells (property)", function () {
  this.timeout(120_000);
  const SEED = 20240611;

  it("500 random strings read back byte for byte with /bin/sh", () => {
    const rand = mulberry32(SEED);
    for (let i = 0; i < 500; i++) {
      const s = randomString(rand);
      const out = runShell("/bin/sh", `printf %s ${quoteArg(s)}`);
      expect(out.toString("hex"), `seed ${SEED} #${i}: ${JSON.stringify(s)}`).to.equal(
        Buffer.from(s, "utf8").toString("hex"),
      );
    }
  });

  it("the same 500 strings read back byte for byte with dash", () => {
    // dash is essential on Debian: its absence is a broken machine, not a reason to skip.
    if (!DASH) throw new Error("dash is not installed (apt-get install dash)");
    const rand = mulberry32(SEED);
    for (let i = 0; i < 500; i++) {
      const s = randomString(rand);
      const out = runShell(DASH as string, `printf %s ${quoteArg(s)}`);
      expect(out.toString("hex"), `seed ${SEED} #${i}: ${JSON.stringify(s)}`).to.equal(
        Buffer.from(s, "utf8").toString("hex"),
      );
    }
  });

  it("random strings with a NUL anywhere are refused with the exact message", () => {
    const rand = mulberry32(SEED + 1);
    for (let i = 0; i < 50; i++) {
      const s = randomString(rand);
      const at = Math.floor(rand() * (s.length + 1));
      expect(() => quoteArg(`${s.slice(0, at)}\0${s.slice(at)}`)).to.throw(Error, NUL_MESSAGE);
    }
  });
});

describe("quote: quoteArgv", () => {
  const table: [string, string[], string][] = [
    ["plain words", ["ls", "-l", "/tmp"], "ls -l /tmp"],
    ["a script and its arguments", ["sh", "-c", 'echo "$1"', "x", "a b"], "sh -c 'echo \"$1\"' x 'a b'"],
    ["env with assignments as arguments", ["env", "LC_ALL=C", "LANG=C", "true"], "env LC_ALL=C LANG=C true"],
    ["empty argument kept as its own word", ["printf", "%s|", "", "x"], "printf '%s|' '' x"],
    ["reserved word as command", ["if"], "'if'"],
    ["reserved word as argument stays bare", ["echo", "if", "then"], "echo if then"],
    ["assignment-looking command", ["A=b", "c"], "'A=b' c"],
    ["assignment-looking command with lowercase", ["_x1=2"], "'_x1=2'"],
    ["'=' not after a name is no assignment", ["=x"], "=x"],
  ];
  for (const [what, argv, want] of table) {
    it(`${what}: ${JSON.stringify(argv)} -> ${JSON.stringify(want)}`, () => {
      expect(quoteArgv(argv)).to.equal(want);
    });
  }

  it("refuses an empty argv with the exact message", () => {
    expect(() => quoteArgv([])).to.throw(Error, "cannot run an empty command");
  });

  it("refuses a NUL in any element with the exact message", () => {
    expect(() => quoteArgv(["printf", "%s", "a\0"])).to.throw(Error, NUL_MESSAGE);
  });

  it("the shell receives exactly the argv elements (printf one per line, brackets show empties)", () => {
    const args = ["", "a b", "it's", "$(touch /nonexistent)", "*", "~", "x\ny", "-n", "é😀"];
    for (const shell of SHELLS) {
      const out = runShell(shell, quoteArgv(["printf", "[%s]\\n", ...args])).toString("utf8");
      expect(out, shell).to.equal(args.map((a) => `[${a}]\n`).join(""));
    }
  });

  describe("command position runs argv[0] as a command", () => {
    let dir = "";
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "plb-quote-"));
      for (const name of ["if", "A=b", "time"]) {
        const file = join(dir, name);
        writeFileSync(file, `#!/bin/sh\nprintf 'ran %s with %s\\n' "${name}" "$*"\n`);
        chmodSync(file, 0o755);
      }
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    for (const name of ["if", "A=b", "time"]) {
      it(`${name} is found on PATH and run, not parsed as syntax or an assignment`, () => {
        for (const shell of SHELLS) {
          const env = { ...process.env, PATH: `${dir}:/usr/bin:/bin` };
          const out = runShell(shell, quoteArgv([name, "x y"]), env).toString("utf8");
          expect(out, shell).to.equal(`ran ${name} with x y\n`);
        }
      });
    }
  });
});
