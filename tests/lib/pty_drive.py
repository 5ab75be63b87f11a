#!/usr/bin/env python3
"""Drive an interactive program through a pseudo-terminal, like a person.

    pty_drive.py SECONDS STEPS_FILE CMD [ARG...]

STEPS_FILE has one step a line: "expect REGEX" waits until the output since
the previous match matches REGEX; "send TEXT" types TEXT and Enter. After the last step the program must exit by itself. Everything
the program wrote goes to stdout, terminal escapes included. The exit status
is the program's; 124 when SECONDS pass first (an expect that never matched,
or a program that does not exit), and then the program is killed. The
terminal is a dumb one (TERM=dumb): no pager, no escapes to decode.
"""
import os
import pty
import re
import select
import signal
import sys
import time


def main():
    seconds, steps_file, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    steps = []
    with open(steps_file) as f:
        for line in f.read().splitlines():
            if line.strip():
                verb, _, arg = line.partition(" ")
                if verb not in ("expect", "send"):
                    sys.exit("pty_drive: bad step: %r" % line)
                steps.append((verb, arg))
    deadline = time.monotonic() + seconds
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "dumb"
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    seen = b""
    out = sys.stdout.buffer

    def read_some(timeout):
        """True: read something; None: nothing within timeout; False: EOF."""
        nonlocal seen
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not ready:
            return None
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: every holder of the terminal has closed it
            return False
        if not data:
            return False
        out.write(data)
        out.flush()
        seen += data
        return True

    def give_up(why):
        out.write(("\npty_drive: %s\n" % why).encode())
        out.flush()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.exit(124)

    for verb, arg in steps:
        if verb == "send":
            os.write(fd, arg.encode() + b"\r")
            continue
        pattern = re.compile(arg.encode())
        while True:
            match = pattern.search(seen)
            if match:
                break
            if time.monotonic() > deadline:
                give_up("timed out waiting for %r" % arg)
            if read_some(deadline - time.monotonic()) is False:
                give_up("the program ended before %r appeared" % arg)
        seen = seen[match.end():]
    # The program ends the session itself: read until the terminal closes.
    while read_some(deadline - time.monotonic()) is not False:
        if time.monotonic() > deadline:
            give_up("the program did not exit")
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            sys.exit(code if code >= 0 else 128 - code)
        if time.monotonic() > deadline:
            give_up("the program did not exit")
        time.sleep(0.02)


main()
