"""Run a command as a child subreaper; stay until every descendant is reaped.

Two ways: `reaping_parent.py ARGV...` runs ARGV with this process's stdio and forwards
SIGTERM to it (a daemon: containerd), and once it has exited kills and reaps whatever it
left; SIGHUP kills the daemon alone (SIGKILL, a crash) and starts it again, leaving its
shims running (a containerd restarted under running containers).  `reaping_parent.py`
alone reads a JSON argv on stdin (so that this process's command line does not name the
containers a test checks for leftovers) and prints the command's stdout as one line
before it waits.

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


def children():
    """Our direct children (the processes whose parent is this process)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2:].split()[1]) == me:
            found.append(int(entry))
    return found


def kill_children():
    """SIGKILL and reap our children until none is left (a killed child's own children are
    re-parented to us, a subreaper, and ended in the next round)."""
    while True:
        for pid in children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.wait()
        except ChildProcessError:
            return


def main():
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if len(sys.argv) > 1:
        child = subprocess.Popen(sys.argv[1:])
        restarts = []

        def restart(*_):
            restarts.append(child.pid)
            os.kill(child.pid, signal.SIGKILL)

        signal.signal(signal.SIGTERM, lambda *_: os.kill(child.pid, signal.SIGTERM))
        signal.signal(signal.SIGHUP, restart)
        # reap every child as it exits (shim servers re-parented to us, and the processes
        # of a killed server) until the daemon itself exits
        while True:
            pid, status = os.wait()
            if pid == child.pid:
                if pid in restarts:
                    child = subprocess.Popen(sys.argv[1:])
                    continue
                code = os.waitstatus_to_exitcode(status)
                break
        # the daemon is gone: what it left behind (shims, or what a killed shim left) was
        # re-parented to us; end it so that nothing outlives the test as a zombie of pid 1
        kill_children()
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
