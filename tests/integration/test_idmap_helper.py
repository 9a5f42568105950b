"""idmap.mapped_userns's helper and its caller speak in explicit messages, never an
end-of-file: a process forked elsewhere at that moment (another thread of a long-lived
caller) holds copies of the pipes' write ends, and an EOF would never come."""

import os
import signal
import subprocess
import sys

from pyrunc_testlib import TIMEOUT

# a fork at the worst moment: right after the helper's, while this process still holds
# every end of both pipes; the stray child keeps its copies, as another thread's child
# would until it execs or exits
STRAY_FORK = r'''
import os, time
from ociruntime.libcontainer import idmap
strays = []
def fork_a_stray():
    if not strays:
        strays.append(None)
        if os.fork() == 0:
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 1)  # not the test's pipes: only the helper's
            os.dup2(null, 2)
            time.sleep(600)
            os._exit(0)
os.register_at_fork(after_in_parent=fork_a_stray)
fd = idmap.mapped_userns("0 100000 65536", "0 100000 65536")
print(open(f"/proc/self/fdinfo/{fd}").read().count("\n") > 0,
      os.readlink(f"/proc/self/fd/{fd}").startswith("user:"))
'''


def test_mapped_userns_does_not_wait_for_an_eof_a_stray_fork_holds_off():
    proc = subprocess.Popen([sys.executable, "-c", STRAY_FORK], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=min(TIMEOUT, 20))
    except subprocess.TimeoutExpired:
        out, err = "hung", ""
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the stray, and the caller if it hung
        proc.wait()
    assert out == "True True\n", (out, err)
