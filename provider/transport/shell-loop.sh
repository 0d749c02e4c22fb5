# A long-lived remote shell: runs framed requests from stdin one at a time (see shell-protocol.ts).
#   sh -c "$this" plb-shell
# Prints "plb-shell-ready PID DIR" on stdout (DIR: its private temporary directory), then for each request
#   ID CMD_BYTES STDIN_BYTES|-\n<stdin bytes><command>
# runs the command (the client's command line inside `{ ... }`, so that one cut short by a lost link is a
# syntax error that runs nothing) as `sh FILE` in a session (process group) of its own, with SIGINT and
# SIGQUIT at their defaults (a background job would inherit them ignored), stdin from the bytes given or
# /dev/null, stdout through a pipe of its own relayed to our stdout as it comes, stderr to a file; notes
# "ID PGID" of the child's process group in DIR/p and, once the child has exited and every holder of its
# stdout has closed it (as sshd waits for an exec channel's EOF), writes
#   \0plb-rc ID EXIT_CODE\n<stderr bytes>\0plb-end ID\n
# Each request gets new files, so a process a command left behind cannot read the next one's stdin or
# write into its stderr, and its stdout never reaches a later reply. ID is a random nonce chosen per
# request by the client and not given to the command: its output cannot end its reply early unless it
# reads DIR/p, which only the loop's own user (root under sudo) can. On a timeout the client sends SIGUSR1, on which this loop kills that
# process group (sshd signals the loop's group as the connection's user: enough unless the loop runs under
# sudo), and kills the group named in DIR/p with a command of its own through another shell as well.
# Nothing is written to stdout or stderr while a command runs but the command's own output: every write is
# a packet, and a small one sent early would hold back the next until it is acknowledged.
# Nothing read from stdin is evaluated by this loop: the command line runs in the child only.
set -u
p=
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
trap 'exit 1' HUP INT PIPE TERM
trap 'if [ -n "$p" ]; then kill -KILL "-$p" 2>/dev/null; fi' USR1
command -v setsid >/dev/null || exit 1
env --default-signal=INT,QUIT true 2>/dev/null || exit 1 # coreutils >= 8.31; else one channel per command
# GNU head -c reads no more than it is asked for from a pipe; busybox's reads ahead (stdio), which would
# swallow the start of the next request.
case $(head --version 2>/dev/null) in *GNU*) ;; *) exit 1 ;; esac
mkfifo "$t/o" || exit 1
printf 'plb-shell-ready %s %s\n' "$$" "$t"
while read -r id clen ilen; do
  case $id:$clen:$ilen in *[!0-9a-f:-]* | :* | *::*) exit 2 ;; esac
  rm -f "$t/i" "$t/c" "$t/e"
  in=/dev/null
  if [ "$ilen" != - ]; then
    head -c "$ilen" >"$t/i" || exit 1
    in=$t/i
  fi
  head -c "$clen" >"$t/c" || exit 1
  cat "$t/o" &
  relay=$!
  setsid -w env --default-signal=INT,QUIT sh "$t/c" <"$in" >"$t/o" 2>"$t/e" &
  p=$!
  printf '%s %s\n' "$id" "$p" >"$t/p"
  # A trapped signal interrupts wait: wait again until the child has really ended.
  while
    wait "$p"
    rc=$?
    [ "$rc" -gt 128 ] && kill -0 "$p" 2>/dev/null
  do :; done
  # The relay ends when the last holder of the command's stdout closes it: a process it left behind
  # holding it delays the reply (until the client's timeout kills the group), never corrupts another.
  while ! wait "$relay"; do kill -0 "$relay" 2>/dev/null || break; done
  p=
  : >"$t/p"
  if [ -s "$t/e" ]; then
    printf '\000plb-rc %s %s\n' "$id" "$rc"
    cat "$t/e"
    printf '\000plb-end %s\n' "$id"
  else
    printf '\000plb-rc %s %s\n\000plb-end %s\n' "$id" "$rc" "$id"
  fi
done
