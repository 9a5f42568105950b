#!/usr/bin/env python3
"""containerd-shim-pyrunc-v2 against containerd's own runc shim, side by side, in each
grouping mode (which containers share a shim process).

Private containerds (own root, state and sockets, CRI off; .venv/bin first on their PATH)
with a busybox image imported. The modes:
  pyrunc       our shim, one server per container (no group annotation: the default)
  pyrunc-pod   our shim, every container annotated as one pod (io.kubernetes.cri.sandbox-id,
               as the CRI plugin does): one server for the pod
  pyrunc-ns    our shim with PYRUNC_SHIM_GROUP=namespace in containerd's environment: one
               server for the namespace (a second containerd)
  runc         runc's shim, one process per container
  runc-pod     runc's shim with the same pod annotation (it groups by it too)
Then:

1. Start time: N sequential `ctr run --rm ... /bin/true` per mode, interleaved after
   warm-up runs; each timed whole, as a user sees it. Median, min and max per mode, and the
   ratio of the medians to runc's.
2. Memory: M `ctr run -d ... sleep 1000` containers per mode, one mode at a time; the RSS
   and PSS (/proc/PID/smaps_rollup) of all the shim processes of that mode with 1 container
   and with M: the total, the total per container, and the marginal cost of a container
   ((PSS with M - PSS with 1) / (M - 1)).

Figures are reported, never asserted. Everything is removed at the end, on error too.
Run as root after .ci/setup: `python3 benchmarks/shim_bench.py [--runs N] [--containers M]`;
`--baseline CHECKOUT` adds its shim as mode `baseline`, for a before/after in one run;
`--pause S` idles S seconds before each run (containers now and then, not back to back).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "benchmarks"), os.path.join(REPO, "tests"),
                os.path.join(REPO, "tests", "e2e"), os.path.join(REPO, "tests", "shim")]

import enginelib  # noqa: E402  (tests/e2e/enginelib.py: the OCI archive, containerd's config)
from bench import become_subreaper, make_bundles, reap_orphans  # noqa: E402
from shimlib import socket_of  # noqa: E402  (tests/shim/shimlib.py)

RUNTIMES = {"pyrunc": "io.containerd.pyrunc.v2", "runc": "io.containerd.runc.v2"}
SHIM_BINARIES = {"pyrunc": "containerd-shim-pyrunc-v2", "runc": "containerd-shim-runc-v2"}
IMAGE = "docker.io/library/pyrunc-bench-busybox:latest"
POD = f"bench-pod-{uuid.uuid4().hex[:8]}"
# mode -> (runtime, extra `ctr run` flags, containerd environment)
MODES = {
    "pyrunc": ("pyrunc", (), {}),
    "pyrunc-pod": ("pyrunc", ("--annotation", f"io.kubernetes.cri.sandbox-id={POD}"), {}),
    "pyrunc-ns": ("pyrunc", (), {"PYRUNC_SHIM_GROUP": "namespace"}),
    "runc": ("runc", (), {}),
    "runc-pod": ("runc", ("--annotation", f"io.kubernetes.cri.sandbox-id={POD}"), {}),
}


class Containerd:
    def __init__(self, workdir, extra_env=None, repo=REPO):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.address = os.path.join(workdir, "containerd.sock")
        self.namespace = f"bench-{uuid.uuid4().hex[:8]}"
        with open(os.path.join(workdir, "config.toml"), "w") as f:
            f.write(enginelib.CONTAINERD_CONFIG.format(d=workdir))
        env = dict(os.environ, PATH=os.path.join(repo, ".venv", "bin") + ":"
                   + os.environ.get("PATH", ""), **(extra_env or {}))
        self.log = open(os.path.join(workdir, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config",
                                      os.path.join(workdir, "config.toml")],
                                     stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("containerd did not start; see " + self.log.name)
            time.sleep(0.2)

    def ctr(self, *args, check=True):
        done = subprocess.run(["ctr", "--address", self.address, "--namespace",
                               self.namespace, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False, timeout=120)
        if check and done.returncode != 0:
            raise SystemExit(f"ctr {' '.join(args)}: {done.stderr.strip()}")
        return done

    def shim_pids(self, runtime):
        """The shim processes of one runtime serving this containerd."""
        return enginelib.processes_with_cmdline(self.address, SHIM_BINARIES[runtime])

    def cleanup(self):
        for name in self.ctr("tasks", "list", "--quiet", check=False).stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)
        time.sleep(0.5)
        for name in self.ctr("tasks", "list", "--quiet", check=False).stdout.split():
            self.ctr("tasks", "delete", "--force", name, check=False)
        for name in self.ctr("containers", "list", "--quiet", check=False).stdout.split():
            self.ctr("containers", "delete", name, check=False)

    def kill_shims(self, runtime):
        """Kill a runtime's shims (idle ones, between modes: a pod's server lingers)."""
        for pid in self.shim_pids(runtime):
            socket = server_socket(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if socket and os.path.exists(socket):
                os.unlink(socket)  # a killed server leaves its /run/containerd/s socket
        reap_orphans()

    def stop(self):
        for runtime in RUNTIMES:
            self.kill_shims(runtime)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        reap_orphans()
        # ctr puts containers in the cgroup /<namespace>/<id> of every hierarchy; the
        # shims remove <id>, the parent /<namespace> is left to us
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            try:
                os.rmdir(os.path.join("/sys/fs/cgroup", hierarchy, self.namespace))
            except OSError:
                pass


def server_socket(pid):
    """The socket a pyrunc shim process (a server, the starter) listens on."""
    return socket_of(pid)


def memory(pids):
    """Summed Rss and Pss in KiB of the given processes."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key == "Rss":
                        rss += int(value.split()[0])
                    elif key == "Pss":
                        pss += int(value.split()[0])
        except OSError:
            continue
    return rss, pss


def time_runs(cds, modes, runs, warmup, pause=0.0):
    samples = {mode: [] for mode in modes}
    for n in range(warmup + runs):
        for mode in modes:
            time.sleep(pause)
            runtime, flags, _ = MODES[mode]
            name = f"t{n}-{mode}-{uuid.uuid4().hex[:6]}"
            start = time.perf_counter()
            done = cds[mode].ctr("run", "--rm", "--runtime", RUNTIMES[runtime], *flags, IMAGE,
                                 name, "/bin/true", check=False)
            seconds = time.perf_counter() - start
            reap_orphans()
            if done.returncode != 0:
                raise SystemExit(f"{mode}: ctr run failed: {done.stderr.strip()}")
            if n >= warmup:
                samples[mode].append(seconds * 1000)
    return samples


def measure_memory(cd, mode, containers):
    runtime, flags, _ = MODES[mode]
    cd.kill_shims(runtime)  # idle servers of the start-time runs or of another mode
    names = [f"m{i}-{mode}-{uuid.uuid4().hex[:6]}" for i in range(containers)]
    figures = {}
    try:
        for i, name in enumerate(names):
            cd.ctr("run", "-d", "--runtime", RUNTIMES[runtime], *flags, IMAGE, name, "sleep",
                   "1000")
            if i == 0 or i == containers - 1:
                time.sleep(1.0)  # let the shims settle (Go's GC, lazy pages)
                pids = cd.shim_pids(runtime)
                figures[i + 1] = memory(pids) + (len(pids),)
    finally:
        cd.cleanup()
        reap_orphans()
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per mode")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.0, metavar="S",
                        help="seconds idle before each run (containers started now and "
                        "then, not back to back: what a shim does while idle counts)")
    parser.add_argument("--containers", type=int, default=20,
                        help="running containers for the memory figures")
    parser.add_argument("--modes", "--runtimes", default=",".join(MODES),
                        help="comma-separated, of: " + ", ".join(MODES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="also mode 'baseline': another checkout's shim (its .venv, "
                        "after its .ci/setup), one server per container, interleaved")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if args.baseline:
        MODES["baseline"] = ("pyrunc", (), {})
        modes.insert(0, "baseline")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    become_subreaper()
    workdir = tempfile.mkdtemp(prefix="pyrunc-shim-bench-")
    daemons = {}
    try:
        bundles = make_bundles(workdir, shutil.which("busybox") or "/bin/busybox")
        rootfs = os.path.join(os.path.dirname(bundles["run"]), "rootfs")
        tar = enginelib.write_oci_archive(rootfs, os.path.join(workdir, "image.tar"), IMAGE)
        cds = {}
        for mode in modes:  # one containerd per environment
            env = MODES[mode][2]
            repo = os.path.abspath(args.baseline) if mode == "baseline" else REPO
            key = (repo, *sorted(env.items()))
            if key not in daemons:
                daemons[key] = Containerd(os.path.join(workdir, f"cd{len(daemons)}"), env,
                                          repo)
                daemons[key].ctr("images", "import", "--all-platforms", tar)
            cds[mode] = daemons[key]
        samples = time_runs(cds, modes, args.runs, args.warmup, args.pause)
        mem = {mode: measure_memory(cds[mode], mode, args.containers) for mode in modes}
    finally:
        for cd in daemons.values():
            cd.cleanup()
            cd.stop()
        subprocess.run(["umount", "-R", "-l", workdir], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    report(samples, mem, modes, args)


def report(samples, mem, modes, args):
    m = args.containers
    out = {"runs": args.runs, "containers": m, "start_ms": {}, "memory_kib": {}}
    print(f"ctr run --rm /bin/true, {args.runs} runs each, interleaved (ms per container)")
    print(f"{'mode':<12}{'median':>10}{'min':>10}{'max':>10}{'/runc':>8}")
    runc = statistics.median(samples["runc"]) if "runc" in samples else None
    for mode in modes:
        s = samples[mode]
        med = statistics.median(s)
        out["start_ms"][mode] = {"median": med, "min": min(s), "max": max(s)}
        ratio = f"{med / runc:>8.2f}" if runc else ""
        print(f"{mode:<12}{med:>10.1f}{min(s):>10.1f}{max(s):>10.1f}{ratio}")
    print(f"\nshim memory with 1 and {m} running containers (KiB; all shim processes)")
    print(f"{'mode':<12}{'procs':>6}{'RSS@1':>9}{'PSS@1':>9}{'RSS@M':>9}{'PSS@M':>9}"
          f"{'PSS/ctr':>9}{'marginal':>10}")
    for mode in modes:
        rss1, pss1, _ = mem[mode][1]
        rssm, pssm, procs = mem[mode][m]
        per = pssm / m
        marginal = (pssm - pss1) / (m - 1) if m > 1 else float(pssm)
        out["memory_kib"][mode] = {"rss_1": rss1, "pss_1": pss1, f"rss_{m}": rssm,
                                   f"pss_{m}": pssm, "processes": procs,
                                   "pss_per_container": per, "pss_marginal": marginal}
        print(f"{mode:<12}{procs:>6}{rss1:>9}{pss1:>9}{rssm:>9}{pssm:>9}{per:>9.0f}"
              f"{marginal:>10.0f}")
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
