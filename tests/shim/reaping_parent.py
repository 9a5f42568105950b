"""Run a command as a child subreaper; stay until every descendant is reaped.

Two ways: `reaping_parent.py ARGV...` runs ARGV with this process's stdio and forwards
SIGTERM to it (a daemon: containerd); `reaping_parent.py` alone reads a JSON argv on stdin
(so that this process's command line does not name the containers a test checks for
leftovers) and prints the command's stdout as one line before it waits.

`containerd-shim-pyrunc-v2 start` forks its server and exits; the server (and, once the
server is gone, anything it left) is re-parented to the nearest subreaper.  This host's
pid 1 does not reap orphans, so tests run `start` under this process: it prints the
command's stdout as one line, then reaps until no descendant is left, and exits with the
command's status.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if len(sys.argv) > 1:
        child = subprocess.Popen(sys.argv[1:])
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        code = child.wait()
    else:
        argv = json.loads(sys.stdin.read())
        done = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              check=False)
        sys.stdout.write(done.stdout.decode() + "\n")
        sys.stdout.flush()
        os.close(1)
        code = done.returncode
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    return code


if __name__ == "__main__":
    sys.exit(main())
