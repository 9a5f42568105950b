#!/usr/bin/env python3
"""Time pyrunc against runc and crun, call by call, on one busybox bundle.

For each runtime: `run` of /bin/true, and each lifecycle call of a `sleep 1000` container:
create, start, state, kill (KILL), delete. The runtimes are interleaved round-robin
(pyrunc, runc, crun, pyrunc, runc, crun, ...) so that drift on the machine hits all of
them alike, after warm-up rounds that are not counted. Every invocation is wrapped the
same way, for fairness and because crun 1.8.1 refuses a hybrid cgroup layout:

    unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh RUNTIME ...

The umount happens in that call's private mount namespace, never in the host's. Each call
is timed with time.perf_counter around subprocess.run, so the wrapper's own cost (about
one unshare and one sh start) is in every figure. Results are reported, never asserted.

Every container the benchmark makes is removed (delete --force) when it ends, on error or
on Ctrl-C too. This process is a child subreaper, as an engine's shim is: the container
processes that `create` leaves behind are reparented to it and reaped here, not left as
zombies. Run as root: `python3 benchmarks/bench.py [--rounds N] [--runtimes pyrunc,runc]`.

Besides wall time, each call's CPU time (user + sys of the call and the children it waited
for, from wait4) is reported: on a busy machine it moves far less than wall time. Then:
throughput (M `run`s of /bin/true, 1, 4 and 8 in flight, the batch timed whole) and the
PSS of a parked container (its process between create and start, /proc/PID/smaps_rollup).
`--quick` is a one-minute check with fewer of everything.

The floor: in every round, the interpreter pyrunc runs on (its launcher's shebang) starts
and exits through the same wrapper, twice: `-I -S -c pass` (issue #15's floor) and `-I -S
-c 'import posix; posix._exit(0)'` (no teardown: stricter, as pyrunc's calls skip it
too). The small calls (start, state, kill, delete) are reported above both, wall and CPU:
the wrapper's cost is in both figures and cancels.
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_RUNTIMES = ("pyrunc", "runc", "crun")
OPERATIONS = ("run", "create", "start", "state", "kill", "delete")
WRAPPER = ["unshare", "-m", "sh", "-c",
           'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh"]
CALL_TIMEOUT = 60.0      # seconds; a runtime that hangs longer is a failed call
STOP_TIMEOUT = 10.0      # seconds for a KILLed container to exit
PR_SET_CHILD_SUBREAPER = 36
SMALL_CALLS = ("start", "state", "kill", "delete")
FLOORS = (("floor", "pass"), ("floor-strict", "import posix; posix._exit(0)"))


def bundle_config(rootfs, args):
    """`pyrunc spec`'s defaults (runc's, with the terminal turned off) for the given args, with
    ociVersion 1.0.2 (crun 1.8.1 refuses newer versions; pyrunc and runc accept it)."""
    from ociruntime.specgen import default_spec

    config = default_spec()
    config["ociVersion"] = "1.0.2"
    config["process"]["terminal"] = False  # runc's default is a terminal
    config["process"]["args"] = list(args)
    config["root"]["path"] = rootfs
    config["hostname"] = "bench"
    return config


def make_bundles(workdir, busybox):
    """rootfs/ (busybox + a symlink per applet) and two bundles sharing it."""
    rootfs = os.path.join(workdir, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    bundles = {}
    for name, args in (("run", ["/bin/true"]), ("lifecycle", ["sleep", "1000"])):
        path = os.path.join(workdir, "bundle-" + name)
        os.mkdir(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(bundle_config(rootfs, args), f, indent=2)
        bundles[name] = path
    return bundles


class Call:
    __slots__ = ("seconds", "cpu", "rc", "out", "err")

    def __init__(self, seconds, cpu, rc, out, err):
        self.seconds, self.cpu, self.rc, self.out, self.err = seconds, cpu, rc, out, err

    @property
    def ok(self):
        return self.rc == 0


class Runtime:
    def __init__(self, name, path, root):
        self.name, self.path, self.root = name, path, root
        self.live = set()       # ids that may exist under self.root

    def call(self, *args):
        """Run `RUNTIME --root ROOT ARGS...` in the wrapper (see run)."""
        return self.run([self.path, "--root", self.root, *args])

    def run(self, command):
        """Run command in the wrapper; time it from fork to exit and
        take its CPU time (it and the children it waited for) from wait4. stdio goes to
        files, not pipes: a container created with terminal false inherits them, and a pipe
        would keep the call from ever seeing EOF. Safe to call from several threads."""
        argv = [*WRAPPER, *command]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # A blocking wait4, not Popen.wait(timeout=): with a timeout it polls with
            # growing sleeps (0.5 ms, 1 ms, ... 50 ms) and the figures come out rounded up
            # to those steps. A timer thread kills a call that hangs.
            start = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            timed_out = threading.Event()

            def kill():
                timed_out.set()
                proc.kill()

            timer = threading.Timer(CALL_TIMEOUT, kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                seconds = time.perf_counter() - start
                timer.cancel()
            proc.returncode = rc = -1 if timed_out.is_set() else os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text_out = out.read().decode(errors="replace")
            text_err = err.read().decode(errors="replace").strip()
        if rc == -1:
            text_err = f"timed out after {CALL_TIMEOUT:.0f}s. {text_err}"
        return Call(seconds, usage.ru_utime + usage.ru_stime, rc, text_out, text_err)

    def version(self):
        try:
            out = subprocess.run([self.path, "--version"], capture_output=True, text=True,
                                 timeout=CALL_TIMEOUT, check=False).stdout
        except OSError as e:
            return f"unavailable ({e})"
        return out.splitlines()[0].strip() if out.strip() else "unknown"


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans():
    """Reap whatever exited among the processes reparented to us."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_exit(pid, timeout=STOP_TIMEOUT):
    """Wait (untimed, outside the figures) until the container's process is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                return True
        except ChildProcessError:       # not ours: watch /proc instead
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                        return True
            except FileNotFoundError:
                return True
        time.sleep(0.002)
    return False


def interpreter_of(script):
    """The interpreter a script's shebang names (pyrunc's launcher: `#!PYTHON -IS`)."""
    try:
        with open(script, "rb") as f:
            line = f.readline().decode()
    except (OSError, ValueError):
        return None
    if not line.startswith("#!"):
        return None
    words = line[2:].split()
    return words[0] if words else None


class Bench:
    def __init__(self, runtimes, bundles, tag, python=None):
        self.runtimes, self.bundles, self.tag = runtimes, bundles, tag
        self.python = python    # the floor's interpreter (None: no floor)
        self.samples = {op: {rt.name: [] for rt in runtimes} for op in OPERATIONS}
        self.cpu = {op: {rt.name: [] for rt in runtimes} for op in OPERATIONS}
        self.failures = {op: {rt.name: 0 for rt in runtimes} for op in OPERATIONS}
        self.errors = {}        # (runtime, op) -> first error message
        self.floors = {name: ([], []) for name, _ in FLOORS}    # name -> (walls, cpus)

    def floor(self, counted):
        """The interpreter's start and exit, through the same wrapper, each floor once."""
        runner = self.runtimes[0]
        for name, code in FLOORS:
            call = runner.run([self.python, "-I", "-S", "-c", code])
            if not call.ok:
                self.errors.setdefault(("python", name), call.err or f"exit {call.rc}")
            elif counted:
                self.floors[name][0].append(call.seconds)
                self.floors[name][1].append(call.cpu)

    def _record(self, rt, op, call, counted):
        if not counted:
            if not call.ok:
                self.errors.setdefault((rt.name, op), f"(warm-up) {call.err}")
            return call.ok
        if call.ok:
            self.samples[op][rt.name].append(call.seconds)
            self.cpu[op][rt.name].append(call.cpu)
        else:
            self.failures[op][rt.name] += 1
            self.errors.setdefault((rt.name, op), call.err or f"exit status {call.rc}")
        return call.ok

    def one(self, rt, n, counted):
        """One round for one runtime: run, then create/start/state/kill/delete."""
        cid = f"{self.tag}-{rt.name}-{n}"
        run_id = cid + "-run"
        rt.live.add(run_id)
        if self._record(rt, "run", rt.call("run", "--bundle", self.bundles["run"], run_id),
                        counted):
            rt.live.discard(run_id)     # run deletes its container when the program exits
        reap_orphans()

        rt.live.add(cid)
        if not self._record(rt, "create",
                            rt.call("create", "--bundle", self.bundles["lifecycle"], cid),
                            counted):
            return
        if not self._record(rt, "start", rt.call("start", cid), counted):
            return
        state = rt.call("state", cid)
        if not self._record(rt, "state", state, counted):
            return
        try:
            pid = int(json.loads(state.out)["pid"])
        except (ValueError, KeyError, TypeError) as e:
            self.errors.setdefault((rt.name, "state"), f"unreadable state output: {e}")
            return
        if not self._record(rt, "kill", rt.call("kill", cid, "KILL"), counted):
            return
        if not wait_exit(pid):
            self.errors.setdefault((rt.name, "kill"), f"pid {pid} still alive after KILL")
            return
        if self._record(rt, "delete", rt.call("delete", cid), counted):
            rt.live.discard(cid)
        reap_orphans()

    def rounds(self, rounds, warmup, progress):
        total = warmup + rounds
        for n in range(total):
            counted = n >= warmup
            for rt in self.runtimes:
                self.one(rt, n, counted)
            if self.python:
                self.floor(counted)
            if progress:
                what = f"round {n - warmup + 1}/{rounds}" if counted else \
                    f"warm-up {n + 1}/{warmup}"
                print(f"\r{what} ", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)

    def cleanup(self):
        """delete --force everything this run may have left: the ids it used, and anything
        else under its private roots."""
        for rt in self.runtimes:
            listed = rt.call("list", "-q")
            if listed.ok:
                rt.live.update(line.strip() for line in listed.out.splitlines() if line.strip())
            for cid in sorted(rt.live):
                call = rt.call("delete", "--force", cid)
                if call.ok or "not exist" in call.err or "not found" in call.err.lower():
                    rt.live.discard(cid)
                else:
                    print(f"bench: {rt.name} delete --force {cid}: {call.err}", file=sys.stderr)
        reap_orphans()

    def report(self):
        results = {}
        for op in OPERATIONS:
            base = self.samples[op].get("runc")
            base_median = statistics.median(base) if base else None
            results[op] = {}
            for rt in self.runtimes:
                xs = self.samples[op][rt.name]
                entry = {"n": len(xs), "failures": self.failures[op][rt.name]}
                if xs:
                    median = statistics.median(xs)
                    cpu = self.cpu[op][rt.name]
                    entry.update(median_ms=median * 1e3, min_ms=min(xs) * 1e3,
                                 max_ms=max(xs) * 1e3,
                                 ratio_vs_runc=median / base_median if base_median else None,
                                 cpu_median_ms=statistics.median(cpu) * 1e3,
                                 samples_ms=[round(x * 1e3, 3) for x in xs],
                                 cpu_samples_ms=[round(x * 1e3, 3) for x in cpu])
                results[op][rt.name] = entry
        results["lifecycle"] = lifecycle_sums(results, self.runtimes)
        results["floor"] = self.floor_report(results)
        return results

    def floor_report(self, results):
        """The floors' medians, and each small call of pyrunc's above each (wall, CPU)."""
        report = {}
        for name, (walls, cpus) in self.floors.items():
            if not walls:
                continue
            wall, cpu = statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3
            above = {}
            for op in SMALL_CALLS:
                e = results[op].get("pyrunc", {})
                if e.get("n"):
                    above[op] = {"wall_ms": e["median_ms"] - wall,
                                 "cpu_ms": e["cpu_median_ms"] - cpu}
            report[name] = {"median_ms": wall, "cpu_median_ms": cpu, "n": len(walls),
                            "pyrunc_above": above}
        return report


LIFECYCLE = ("create", "start", "state", "kill", "delete")


def lifecycle_sums(results, runtimes):
    """A container's whole lifecycle through the CLI, as issue #15 states its goal: the sum
    of the medians of create, start, state, kill and delete, and its ratio to runc's."""
    sums = {}
    for rt in runtimes:
        medians = [results[op][rt.name].get("median_ms") for op in LIFECYCLE]
        sums[rt.name] = None if None in medians else sum(medians)
    base = sums.get("runc")
    return {name: {"sum_ms": total,
                   "ratio_vs_runc": total / base if total is not None and base else None}
            for name, total in sums.items()}


def throughput(runtimes, bundle, runs, inflights, reps, tag, progress):
    """For each number in flight K: `runs` calls of `run BUNDLE` (/bin/true), K at a time,
    the whole batch timed; `reps` batches per runtime, interleaved. {K: {runtime: entry}}
    with the median batch, runs per second and the ratio of the median to runc's."""
    batches = {k: {rt.name: [] for rt in runtimes} for k in inflights}
    failures = {k: {rt.name: 0 for rt in runtimes} for k in inflights}
    total, done = len(inflights) * reps * len(runtimes), 0
    for k in inflights:
        for rep in range(reps):
            for rt in runtimes:
                ids = [f"{tag}-tp{k}-{rep}-{rt.name}-{i}" for i in range(runs)]
                rt.live.update(ids)
                start = time.perf_counter()
                with ThreadPoolExecutor(max_workers=k) as pool:
                    calls = list(pool.map(lambda cid, rt=rt: rt.call("run", "--bundle",
                                                                     bundle, cid), ids))
                batches[k][rt.name].append(time.perf_counter() - start)
                for cid, call in zip(ids, calls, strict=True):
                    if call.ok:
                        rt.live.discard(cid)
                    else:
                        failures[k][rt.name] += 1
                reap_orphans()
                done += 1
                if progress:
                    print(f"\rthroughput {done}/{total} ", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    results = {}
    for k in inflights:
        base = batches[k].get("runc")
        base_median = statistics.median(base) if base else None
        results[k] = {}
        for rt in runtimes:
            xs = batches[k][rt.name]
            median = statistics.median(xs)
            results[k][rt.name] = {
                "runs": runs, "batches": len(xs), "failures": failures[k][rt.name],
                "median_s": median, "runs_per_s": runs / median,
                "ratio_vs_runc": median / base_median if base_median else None,
                "samples_s": [round(x, 4) for x in xs]}
    return results


def smaps_pss_kib(pid):
    """Pss of the process, in KiB, from /proc/PID/smaps_rollup."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise ValueError(f"no Pss in /proc/{pid}/smaps_rollup")


def parked_pss(runtimes, bundle, samples, tag):
    """The PSS of a container's process parked between create and start (what an engine
    keeps per created container): `samples` containers per runtime, made one at a time,
    all alive together, measured, then deleted. {runtime: entry} with the median KiB and
    the ratio to runc's."""
    kib = {rt.name: [] for rt in runtimes}
    made = []
    errors = {}
    try:
        for n in range(samples):
            for rt in runtimes:
                cid = f"{tag}-pss-{rt.name}-{n}"
                rt.live.add(cid)
                made.append((rt, cid))
                call = rt.call("create", "--bundle", bundle, cid)
                if not call.ok:
                    errors.setdefault(rt.name, call.err or f"exit status {call.rc}")
                    continue
                state = rt.call("state", cid)
                try:
                    kib[rt.name].append(smaps_pss_kib(int(json.loads(state.out)["pid"])))
                except (ValueError, KeyError, TypeError, OSError) as e:
                    errors.setdefault(rt.name, f"parked PSS: {e}")
    finally:
        for rt, cid in made:
            if rt.call("delete", "--force", cid).ok:
                rt.live.discard(cid)
        reap_orphans()
    base = statistics.median(kib["runc"]) if kib.get("runc") else None
    results = {}
    for rt in runtimes:
        xs = kib[rt.name]
        results[rt.name] = {"n": len(xs), "samples_kib": xs}
        if xs:
            median = statistics.median(xs)
            results[rt.name].update(median_kib=median,
                                    ratio_vs_runc=median / base if base else None)
    return results, errors


def _ratio(entry):
    return f"{entry['ratio_vs_runc']:.2f}x" if entry.get("ratio_vs_runc") else "-"


def print_table(results, runtimes, meta):
    print(f"{meta['rounds']} rounds after {meta['warmup']} warm-up, runtimes interleaved; "
          f"each call wrapped in unshare -m + sh (cgroup2 'unified' unmounted privately)")
    for rt in runtimes:
        print(f"  {rt.name:<7} {rt.path}: {meta['versions'][rt.name]}")
    header = f"{'operation':<10}{'runtime':<9}{'median ms':>10}{'min ms':>9}{'max ms':>9}" \
             f"{'vs runc':>9}{'cpu ms':>8}{'failed':>8}"
    print()
    print(header)
    print("-" * len(header))
    for op in OPERATIONS:
        for i, rt in enumerate(runtimes):
            e = results[op][rt.name]
            name = op if i == 0 else ""
            if e["n"]:
                print(f"{name:<10}{rt.name:<9}{e['median_ms']:>10.1f}{e['min_ms']:>9.1f}"
                      f"{e['max_ms']:>9.1f}{_ratio(e):>9}{e['cpu_median_ms']:>8.1f}"
                      f"{e['failures']:>8}")
            else:
                print(f"{name:<10}{rt.name:<9}{'-':>10}{'-':>9}{'-':>9}{'-':>9}{'-':>8}"
                      f"{e['failures']:>8}")
    print()
    print("lifecycle (the sum of the medians of create, start, state, kill, delete)")
    for rt in runtimes:
        e = results["lifecycle"][rt.name]
        if e["sum_ms"] is not None:
            print(f"  {rt.name:<8}{e['sum_ms']:>8.1f} ms{_ratio(e):>9}")


def print_floor(floor, python):
    if not floor:
        return
    print()
    print(f"pyrunc's small calls above the bare interpreter ({python} -I -S, same wrapper)")
    header = f"{'floor':<14}{'median ms':>10}{'cpu ms':>8}" + "".join(
        f"{op + ' +ms':>13}" for op in SMALL_CALLS)
    print(header)
    print("-" * len(header))
    for name, _ in FLOORS:
        e = floor.get(name)
        if not e:
            continue
        cells = "".join(
            f"{e['pyrunc_above'][op]['wall_ms']:>6.1f}/{e['pyrunc_above'][op]['cpu_ms']:<6.1f}"
            if op in e["pyrunc_above"] else f"{'-':>13}" for op in SMALL_CALLS)
        print(f"{name:<14}{e['median_ms']:>10.1f}{e['cpu_median_ms']:>8.1f}{cells}")
    print("  (+ms: pyrunc's median above the floor's, wall/cpu; -c " + " and -c ".join(
        repr(code) for _, code in FLOORS) + ")")


def print_throughput(results, runtimes, meta):
    print()
    print(f"throughput: {meta['throughput_runs']} x run /bin/true per batch, "
          f"{meta['throughput_reps']} batches per runtime, interleaved (median batch)")
    header = f"{'in flight':<10}{'runtime':<9}{'batch s':>10}{'runs/s':>9}{'vs runc':>9}" \
             f"{'failed':>8}"
    print(header)
    print("-" * len(header))
    for k, per_rt in results.items():
        for i, rt in enumerate(runtimes):
            e = per_rt[rt.name]
            print(f"{k if i == 0 else '':<10}{rt.name:<9}{e['median_s']:>10.2f}"
                  f"{e['runs_per_s']:>9.1f}{_ratio(e):>9}{e['failures']:>8}")


def print_pss(results, runtimes):
    print()
    print("parked container (between create and start): PSS of its process")
    header = f"{'runtime':<9}{'PSS KiB':>10}{'vs runc':>9}{'n':>4}"
    print(header)
    print("-" * len(header))
    for rt in runtimes:
        e = results[rt.name]
        pss = f"{e['median_kib']:.0f}" if e["n"] else "-"
        print(f"{rt.name:<9}{pss:>10}{_ratio(e):>9}{e['n']:>4}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, help="counted rounds (default 20; --quick 8)")
    p.add_argument("--warmup", type=int, help="uncounted rounds first (default 2; --quick 1)")
    p.add_argument("--throughput-runs", type=int,
                   help="runs per throughput batch (default 50; --quick 16; 0: no throughput)")
    p.add_argument("--throughput-reps", type=int,
                   help="throughput batches per runtime and number in flight (default 7; "
                        "--quick 1)")
    p.add_argument("--inflight", default="1,4,8",
                   help="numbers of runs in flight for throughput (default 1,4,8)")
    p.add_argument("--pss-samples", type=int,
                   help="parked containers measured per runtime (default 5; --quick 2; 0: none)")
    p.add_argument("--quick", action="store_true",
                   help="a one-minute check: fewer rounds, batches and samples")
    p.add_argument("--runtimes", default=",".join(ALL_RUNTIMES),
                   help="comma-separated subset of pyrunc,runc,crun (default: all three)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--pyrunc", default=os.path.join(REPO, ".venv", "bin", "pyrunc"),
                   help="the pyrunc to time (default: the repo's .venv/bin/pyrunc)")
    p.add_argument("--busybox", default="/bin/busybox", help="a static busybox")
    args = p.parse_args(argv)
    defaults = ({"rounds": 8, "warmup": 1, "throughput_runs": 16, "throughput_reps": 1,
                 "pss_samples": 2} if args.quick else
                {"rounds": 20, "warmup": 2, "throughput_runs": 50, "throughput_reps": 7,
                 "pss_samples": 5})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in args.runtimes if r not in ALL_RUNTIMES]
    if unknown or not args.runtimes:
        p.error(f"--runtimes: choose from {','.join(ALL_RUNTIMES)}")
    if args.rounds < 1 or args.warmup < 0:
        p.error("--rounds must be at least 1 and --warmup not negative")
    if args.throughput_runs < 0 or args.throughput_reps < 1 or args.pss_samples < 0:
        p.error("--throughput-runs and --pss-samples must not be negative, "
                "--throughput-reps at least 1")
    try:
        args.inflight = [int(k) for k in args.inflight.split(",") if k.strip()]
    except ValueError:
        p.error("--inflight: comma-separated numbers, like 1,4,8")
    if not args.inflight or min(args.inflight) < 1:
        p.error("--inflight: comma-separated numbers of at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        sys.exit("bench: run as root (runtimes need it to make containers)")
    for tool in ("unshare", "sh"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found")
    paths = {"pyrunc": args.pyrunc, "runc": shutil.which("runc"), "crun": shutil.which("crun")}
    for name in args.runtimes:
        if not paths[name] or not os.access(paths[name], os.X_OK):
            sys.exit(f"bench: {name} not found (run .ci/setup, or leave it out of --runtimes)")
    if not os.access(args.busybox, os.X_OK):
        sys.exit(f"bench: {args.busybox} not found (apt-get install busybox-static)")

    become_subreaper()
    workdir = tempfile.mkdtemp(prefix="pyrunc-bench.")
    bench = None
    tput, pss, pss_errors = {}, {}, {}
    try:
        bundles = make_bundles(workdir, args.busybox)
        runtimes = []
        for name in args.runtimes:
            root = os.path.join(workdir, "root-" + name)
            os.mkdir(root, 0o700)
            runtimes.append(Runtime(name, paths[name], root))
        meta = {"rounds": args.rounds, "warmup": args.warmup,
                "throughput_runs": args.throughput_runs,
                "throughput_reps": args.throughput_reps, "inflight": args.inflight,
                "pss_samples": args.pss_samples,
                "versions": {rt.name: rt.version() for rt in runtimes},
                "wrapper": WRAPPER, "order": [rt.name for rt in runtimes]}
        tag = f"bench{os.getpid()}"
        progress = not args.json and sys.stderr.isatty()
        python = interpreter_of(args.pyrunc) if "pyrunc" in args.runtimes else None
        meta["python"] = python
        bench = Bench(runtimes, bundles, tag, python)
        bench.rounds(args.rounds, args.warmup, progress)
        results = bench.report()
        if args.throughput_runs:
            tput = throughput(runtimes, bundles["run"], args.throughput_runs, args.inflight,
                              args.throughput_reps, tag, progress)
        if args.pss_samples:
            pss, pss_errors = parked_pss(runtimes, bundles["lifecycle"], args.pss_samples, tag)
        for name, msg in pss_errors.items():
            bench.errors.setdefault((name, "parked pss"), msg)
    except KeyboardInterrupt:
        print("\nbench: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        # A second Ctrl-C must not stop the cleanup half-way.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if bench is not None:
                bench.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)

    if args.json:
        json.dump({**meta, "results": results,
                   "throughput": {str(k): v for k, v in tput.items()}, "parked_pss": pss,
                   "errors": {f"{rt} {op}": msg for (rt, op), msg in bench.errors.items()}},
                  sys.stdout, indent=2)
        print()
    else:
        print_table(results, runtimes, meta)
        print_floor(results.get("floor"), meta.get("python"))
        if tput:
            print_throughput(tput, runtimes, meta)
        if pss:
            print_pss(pss, runtimes)
        for (rt, op), msg in sorted(bench.errors.items()):
            print(f"error: {rt} {op}: {msg}")
    failed = any(bench.failures[op][rt.name] for op in OPERATIONS for rt in runtimes) \
        or any(e["failures"] for per_rt in tput.values() for e in per_rt.values()) \
        or bool(pss_errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
