"""Drive `lem` with no script on a pseudo-terminal, as a person would.

usage: python3 pty_repl.py LEM
Types lines (with line editing keys), and prints everything the REPL wrote,
then `[exit N]`. Used by tests/lua/repl/tty.lua.
"""
import os
import pty
import select
import sys
import time

lem = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execv(lem, [lem])

out = b""


seen = 0  # output before this offset has been matched already


def read_until(token, timeout=10.0):
    """Collect output until `token` appears after what was matched before
    (or fail after timeout)."""
    global out, seen
    end = time.time() + timeout
    while token not in out[seen:]:
        left = end - time.time()
        if left <= 0:
            sys.stdout.write(out.decode(errors="replace"))
            os.kill(pid, 9)
            sys.exit("timed out waiting for %r" % token)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    seen = out.index(token, seen) + len(token)


def prompt(p=b"> "):
    """Wait for the editor's next prompt: keys typed before it would reach
    a terminal not yet in raw mode."""
    read_until(p)


prompt()
os.write(fd, b"40 + 2\r")
read_until(b"42")
prompt()
# history: arrow up recalls the last line; edit it (backspace) and run it
os.write(fd, b"\x1b[A\x7f3\r")
read_until(b"43")
prompt()
# a coroutine spawned from the REPL runs while the REPL waits for input
# (the output 'tick' is not in the echoed input, which says 'ti'..'ck')
os.write(fd, b"u = require 'lem.utils'; u.spawn(function() u.newsleeper():sleep(0.05); print('ti'..'ck') end)\r")
read_until(b"tick")
# continuation prompt (the prompt came before the tick)
os.write(fd, b"if true then\r")
prompt(b">> ")
os.write(fd, b"print('block') end\r")
read_until(b"block")
prompt()
# Ctrl-D ends the session
os.write(fd, b"\x04")
status = None
end = time.time() + 10
while status is None:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
    elif time.time() > end:
        os.kill(pid, 9)
        sys.exit("lem did not exit after Ctrl-D")
    else:
        time.sleep(0.02)
try:
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\n[exit %d]\n" % os.waitstatus_to_exitcode(status))
