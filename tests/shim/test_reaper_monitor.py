"""The server's reaper as the process monitor of everything the server itself starts.

A process shaped like the server (shim.server): the reaper's waitpid(-1) loop in the main
thread, the work in another thread.  What that thread starts (the publish binary, a
program through monitor.run, a logging binary) must get its own exit status from the
reaper: a wait of its own races the reaper's and loses it (ECHILD; subprocess then reads
a failed publish as exit status 0)."""

import json
import os
import subprocess
import sys

import pyrunc_testlib as lib

ROUNDS = 20

SERVER_LIKE = r"""
import json, os, sys, threading

from ociruntime.libcontainer import monitor
from shim.events import Publisher, pack
from shim.proto import events_pb2
from shim.reaper import Reaper
from shim.stdio import ProcessIO

scratch, rounds = sys.argv[1], int(sys.argv[2])
failing = os.path.join(scratch, "publish")
with open(failing, "w") as f:
    f.write("#!/bin/sh\ncat >/dev/null; echo refused >&2; exit 3\n")
os.chmod(failing, 0o755)
logger = os.path.join(scratch, "logger")
with open(logger, "w") as f:
    f.write("#!/bin/sh\nexec 5>&-; exec cat <&3 >/dev/null\n")
os.chmod(logger, 0o755)

reaper = Reaper()
monitor.install(reaper)
stop = threading.Event()
results = {"publish": [], "run": [], "logger": []}

def work():
    try:
        publisher = Publisher("ns", "/nowhere", failing, "", transport="binary")
        for _ in range(rounds):
            try:
                publisher._deliver("/tasks/exit", pack(events_pb2.TaskExit()), 0)
                results["publish"].append("delivered")
            except Exception as e:
                results["publish"].append(str(e))
        publisher.close()
        for n in range(rounds):
            status, output = monitor.run(monitor.posix_spawner(
                "/bin/sh", ["sh", "-c", f"echo {n}; exit {n}"], {}))
            results["run"].append([os.waitstatus_to_exitcode(status), output])
        for _ in range(3):
            io = ProcessIO(stdout=f"binary://{logger}", task_id="t", namespace="ns")
            io.child_fds()
            io.after_spawn()
            pid = io._logger.pid
            io.close()  # SIGTERM, and the wait for its exit, through the reaper
            results["logger"].append(os.path.exists(f"/proc/{pid}"))
    except BaseException as e:
        results["error"] = f"{type(e).__name__}: {e}"
    finally:
        stop.set()
        reaper.wake()

threading.Thread(target=work).start()
reaper.run(stop)
print(json.dumps(results))
"""


def test_what_the_server_starts_is_waited_for_through_its_reaper(scratch):
    done = subprocess.run([sys.executable, "-c", SERVER_LIKE, scratch.path, str(ROUNDS)],
                          capture_output=True, text=True, timeout=lib.TIMEOUT,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert "error" not in results, results["error"]
    assert results["publish"] == ["refused"] * ROUNDS
    assert results["run"] == [[n, f"{n}\n"] for n in range(ROUNDS)]
    assert results["logger"] == [False] * 3, "each logging binary was stopped and reaped"


ABANDONED = r"""
import json, os, time

import shim.reaper
from shim.reaper import Reaper

def exiting_child(code):
    def spawn():
        pid = os.fork()
        if pid == 0:
            os._exit(code)
        return pid
    return spawn

def reaped(reaper, pid):
    while os.path.exists(f"/proc/{pid}"):
        reaper.reap()
        time.sleep(0.01)

reaper = Reaper()
kept = reaper.start(exiting_child(3))
abandoned = reaper.start(exiting_child(4))  # its starter gives up: never waits
reaped(reaper, kept)
reaped(reaper, abandoned)
results = {"kept": os.waitstatus_to_exitcode(reaper.wait(kept))}
shim.reaper.UNCLAIMED_TTL = 0.0
time.sleep(0.01)
reaper.reap()  # the next round forgets what nobody collected in time
try:
    reaper.wait(abandoned, 0)
    results["abandoned"] = "still held"
except ChildProcessError:
    results["abandoned"] = "forgotten"
print(json.dumps(results))
"""


def test_an_exit_nobody_waits_for_is_not_held_forever(scratch):
    """A caller of the monitor's start() that gives up before its wait() (an exec into a
    paused container, interrupted) must not leave the long-lived server one entry per
    such process; what is waited for in time still gets its status."""
    done = subprocess.run([sys.executable, "-c", ABANDONED], capture_output=True, text=True,
                          timeout=lib.TIMEOUT,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"kept": 3, "abandoned": "forgotten"}
