"""The shim's logging-binary start in a process with many fds open: containerd raises the
shim's RLIMIT_NOFILE, and a shim serving many tasks holds fds above select()'s 1024."""

import json
import os
import subprocess
import sys

import pyrunc_testlib as lib

MANY_FDS = r"""
import json, os, resource, sys

from shim.stdio import ProcessIO

scratch = sys.argv[1]
logger = os.path.join(scratch, "logger")
with open(logger, "w") as f:
    f.write("#!/bin/sh\nexec 5>&-; exec cat <&3 >/dev/null\n")
os.chmod(logger, 0o755)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
result = {}
try:
    io = ProcessIO(stdout=f"binary://{logger}", task_id="t", namespace="ns")
    io.child_fds()
    io.after_spawn()
    pid = io._logger.pid
    io.close()
    result["logger_left"] = os.path.exists(f"/proc/{pid}")
except BaseException as e:
    result["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(result))
"""


def test_a_logging_binary_starts_with_fds_above_1024_open(scratch):
    done = subprocess.run([sys.executable, "-c", MANY_FDS, scratch.path],
                          capture_output=True, text=True, timeout=lib.TIMEOUT,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "error" not in result, result["error"]
    assert result["logger_left"] is False
