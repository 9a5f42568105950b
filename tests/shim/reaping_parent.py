"""Run a command (a JSON argv on stdin) as a child subreaper; stay until every descendant
is reaped.  (The argv comes on stdin so that this process's command line does not name the
containers the test checks for leftovers.)

`containerd-shim-pyrunc-v2 start` forks its server and exits; the server (and, once the
server is gone, anything it left) is re-parented to the nearest subreaper.  This host's
pid 1 does not reap orphans, so tests run `start` under this process: it prints the
command's stdout as one line, then reaps until no descendant is left, and exits with the
command's status.
"""

import ctypes
import json
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    argv = json.loads(sys.stdin.read())
    done = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          check=False)
    sys.stdout.write(done.stdout.decode() + "\n")
    sys.stdout.flush()
    os.close(1)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
