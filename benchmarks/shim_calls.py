#!/usr/bin/env python3
"""CPU of the shim's `start` and `delete` as containerd runs them, shims A/B, interleaved.

containerd runs the shim binary twice per container: `start` (here: a pod's, whose server
already runs: find it, write the bundle's address, print it) and `delete` (after the task:
nothing left to clean, a DeleteResponse). Each call's CPU is the task-clock of `perf stat`
around it (its children's too); a starter (a warm process per namespace that answers both
for the shim's C front, where the shim has one) is charged its own CPU over the calls
(/proc/PID/task/*/schedstat), per call. The shims alternate call by call. Per LABEL=SHIM
(a containerd-shim-pyrunc-v2, e.g. another checkout's .venv/bin/...): a private
"containerd" socket (a listener that accepts and closes), a namespace, a pod bundle with an
18 KB spec, one untimed start (the pod's server, and the starter where there is one).
Results are reported, never asserted; the servers and starters made are killed and their
sockets removed at the end, on error too.

    .venv/bin/python benchmarks/shim_calls.py --runs 200 \\
        before=OTHER/.venv/bin/containerd-shim-pyrunc-v2 \\
        after=.venv/bin/containerd-shim-pyrunc-v2

Run as root (the shim's sockets are in /run/containerd/s), with perf installed.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "benchmarks"), os.path.join(REPO, "tests"),
                os.path.join(REPO, "tests", "e2e"), os.path.join(REPO, "tests", "shim")]

import enginelib  # noqa: E402  (tests/e2e/enginelib.py)
from bench import become_subreaper, reap_orphans  # noqa: E402
from shimlib import comm, starter_socket  # noqa: E402  (tests/shim/shimlib.py)

POD_ANNOTATION = "io.kubernetes.cri.sandbox-id"


class Shim:
    """One shim under test: its own containerd address, namespace and pod bundle."""

    def __init__(self, label, binary, workdir):
        self.label = label
        self.dir = os.path.join(workdir, label)
        self.namespace = f"bench-{uuid.uuid4().hex[:8]}"
        self.address = os.path.join(self.dir, "containerd.sock")
        self.bundle = os.path.join(self.dir, "state", "io.containerd.runtime.v2.task",
                                   self.namespace, "c1")
        os.makedirs(self.bundle)
        spec = {"ociVersion": "1.0.2", "process": {"args": ["/bin/true"],
                                                   "env": [f"V{i}=" + "x" * 60
                                                           for i in range(200)]},
                "annotations": {POD_ANNOTATION: "pod-" + self.namespace}}
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(64)
        threading.Thread(target=self._answer, daemon=True).start()
        self.argv = [binary, "-namespace", self.namespace, "-address", self.address,
                     "-publish-binary", "/bin/true", "-id", "c1"]
        self.env = dict(os.environ, TTRPC_ADDRESS=self.address + ".ttrpc")
        self.cpu = {"start": [], "delete": []}
        self.helper = {"start": [], "delete": []}

    def _answer(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.close()

    def call(self, action, perf=True):
        """The call's task-clock (ms), and its output."""
        cmd = (["perf", "stat", "-x,", "-e", "task-clock"] if perf else []) + self.argv
        done = subprocess.run([*cmd, action], cwd=self.bundle, env=self.env, input=b"",
                              capture_output=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"{self.label} {action}: {done.stderr.decode().strip()}")
        if not perf:
            return None, done.stdout
        line = [x for x in done.stderr.decode().splitlines() if "task-clock" in x][-1]
        return float(line.split(",")[0]), done.stdout

    def helpers(self):
        """The pids of this shim's long-lived processes other than its servers: the
        namespace's starter, where there is one (named pyrunc-starter)."""
        return [pid for pid in enginelib.processes_with_cmdline(self.dir)
                if comm(pid) == "pyrunc-starter"]

    def processes(self):
        return enginelib.processes_with_cmdline(self.dir)

    def close(self):
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.listener.close()


def _on_cpu_ns(pids):
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:
            continue
    return total


def measure(shims, runs):
    for shim in shims:  # the pod's server (and the starter), untimed
        _, address = shim.call("start", perf=False)
        shim.server_socket = address.decode().removeprefix("unix://")
        shim.call("delete", perf=False)
    for _ in range(runs):
        for action in ("start", "delete"):
            for shim in shims:
                helpers = shim.helpers()
                before = _on_cpu_ns(helpers)
                ms, _ = shim.call(action)
                shim.cpu[action].append(ms)
                shim.helper[action].append((_on_cpu_ns(helpers) - before) / 1e6)


def report(shims, runs):
    print(f"shim start (the pod's server running) and delete (nothing to clean), {runs} "
          "calls each, interleaved: CPU ms, medians (q1-q3); + the starter's per call")
    for action in ("start", "delete"):
        for shim in shims:
            v, h = shim.cpu[action], shim.helper[action]
            q = statistics.quantiles(v, n=4)
            extra = (f"  + starter {statistics.median(h):.2f} (mean {statistics.mean(h):.2f})"
                     if any(h) else "")
            print(f"  {action:<7}{shim.label:<10}{statistics.median(v):7.2f} "
                  f"({q[0]:.2f}-{q[2]:.2f}){extra}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("shims", nargs="+", metavar="LABEL=SHIM")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not shutil.which("perf"):
        raise SystemExit("perf is not installed")
    become_subreaper()  # the servers start forks
    workdir = tempfile.mkdtemp(prefix="pyrunc-shim-calls-")
    shims = []
    try:
        for spec in args.shims:
            label, _, binary = spec.partition("=")
            shims.append(Shim(label, os.path.abspath(binary), workdir))
        measure(shims, args.runs)
    finally:
        for shim in shims:
            shim.close()
        time.sleep(0.2)
        reap_orphans()
        for shim in shims:  # the sockets a killed server or starter leaves
            for path in (getattr(shim, "server_socket", None),
                         starter_socket(shim.address, shim.namespace)):
                if path and os.path.lexists(path):
                    os.unlink(path)
        shutil.rmtree(workdir, ignore_errors=True)
    report(shims, args.runs)


if __name__ == "__main__":
    main()
