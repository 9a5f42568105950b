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
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_RUNTIMES = ("pyrunc", "runc", "crun")
OPERATIONS = ("run", "create", "start", "state", "kill", "delete")
WRAPPER = ["unshare", "-m", "sh", "-c",
           'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh"]
CALL_TIMEOUT = 60.0      # seconds; a runtime that hangs longer is a failed call
STOP_TIMEOUT = 10.0      # seconds for a KILLed container to exit
PR_SET_CHILD_SUBREAPER = 36


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


class CallTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CallTimeout


class Call:
    __slots__ = ("seconds", "rc", "out", "err")

    def __init__(self, seconds, rc, out, err):
        self.seconds, self.rc, self.out, self.err = seconds, rc, out, err

    @property
    def ok(self):
        return self.rc == 0


class Runtime:
    def __init__(self, name, path, root):
        self.name, self.path, self.root = name, path, root
        self.live = set()       # ids that may exist under self.root

    def call(self, *args):
        """Run `RUNTIME --root ROOT ARGS...` in the wrapper; time subprocess.run only.
        stdio goes to files, not pipes: a container created with terminal false inherits
        them, and a pipe would keep the call from ever seeing EOF."""
        argv = [*WRAPPER, self.path, "--root", self.root, *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # No timeout= here: with one, Popen.wait polls with growing sleeps (0.5 ms,
            # 1 ms, ... 50 ms) and the figures come out rounded up to those steps. A
            # blocking wait and an alarm give the exit time to the microsecond.
            signal.alarm(int(CALL_TIMEOUT))
            start = time.perf_counter()
            try:
                rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    check=False).returncode
            except CallTimeout:
                rc = -1
            finally:
                seconds = time.perf_counter() - start
                signal.alarm(0)
            out.seek(0)
            err.seek(0)
            text_out = out.read().decode(errors="replace")
            text_err = err.read().decode(errors="replace").strip()
        if rc == -1:
            text_err = f"timed out after {CALL_TIMEOUT:.0f}s. {text_err}"
        return Call(seconds, rc, text_out, text_err)

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


class Bench:
    def __init__(self, runtimes, bundles, tag):
        self.runtimes, self.bundles, self.tag = runtimes, bundles, tag
        self.samples = {op: {rt.name: [] for rt in runtimes} for op in OPERATIONS}
        self.failures = {op: {rt.name: 0 for rt in runtimes} for op in OPERATIONS}
        self.errors = {}        # (runtime, op) -> first error message

    def _record(self, rt, op, call, counted):
        if not counted:
            if not call.ok:
                self.errors.setdefault((rt.name, op), f"(warm-up) {call.err}")
            return call.ok
        if call.ok:
            self.samples[op][rt.name].append(call.seconds)
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
                    entry.update(median_ms=median * 1e3, min_ms=min(xs) * 1e3,
                                 max_ms=max(xs) * 1e3,
                                 ratio_vs_runc=median / base_median if base_median else None,
                                 samples_ms=[round(x * 1e3, 3) for x in xs])
                results[op][rt.name] = entry
        return results


def print_table(results, runtimes, meta):
    print(f"{meta['rounds']} rounds after {meta['warmup']} warm-up, runtimes interleaved; "
          f"each call wrapped in unshare -m + sh (cgroup2 'unified' unmounted privately)")
    for rt in runtimes:
        print(f"  {rt.name:<7} {rt.path}: {meta['versions'][rt.name]}")
    header = f"{'operation':<10}{'runtime':<9}{'median ms':>10}{'min ms':>9}{'max ms':>9}" \
             f"{'vs runc':>9}{'failed':>8}"
    print()
    print(header)
    print("-" * len(header))
    for op in OPERATIONS:
        for i, rt in enumerate(runtimes):
            e = results[op][rt.name]
            name = op if i == 0 else ""
            if e["n"]:
                ratio = f"{e['ratio_vs_runc']:.2f}x" if e.get("ratio_vs_runc") else "-"
                print(f"{name:<10}{rt.name:<9}{e['median_ms']:>10.1f}{e['min_ms']:>9.1f}"
                      f"{e['max_ms']:>9.1f}{ratio:>9}{e['failures']:>8}")
            else:
                print(f"{name:<10}{rt.name:<9}{'-':>10}{'-':>9}{'-':>9}{'-':>9}"
                      f"{e['failures']:>8}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20, help="counted rounds (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="uncounted rounds first (default 2)")
    p.add_argument("--runtimes", default=",".join(ALL_RUNTIMES),
                   help="comma-separated subset of pyrunc,runc,crun (default: all three)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--pyrunc", default=os.path.join(REPO, ".venv", "bin", "pyrunc"),
                   help="the pyrunc to time (default: the repo's .venv/bin/pyrunc)")
    p.add_argument("--busybox", default="/bin/busybox", help="a static busybox")
    args = p.parse_args(argv)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in args.runtimes if r not in ALL_RUNTIMES]
    if unknown or not args.runtimes:
        p.error(f"--runtimes: choose from {','.join(ALL_RUNTIMES)}")
    if args.rounds < 1 or args.warmup < 0:
        p.error("--rounds must be at least 1 and --warmup not negative")
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
    signal.signal(signal.SIGALRM, _on_alarm)
    workdir = tempfile.mkdtemp(prefix="pyrunc-bench.")
    bench = None
    try:
        bundles = make_bundles(workdir, args.busybox)
        runtimes = []
        for name in args.runtimes:
            root = os.path.join(workdir, "root-" + name)
            os.mkdir(root, 0o700)
            runtimes.append(Runtime(name, paths[name], root))
        meta = {"rounds": args.rounds, "warmup": args.warmup,
                "versions": {rt.name: rt.version() for rt in runtimes},
                "wrapper": WRAPPER, "order": [rt.name for rt in runtimes]}
        bench = Bench(runtimes, bundles, f"bench{os.getpid()}")
        bench.rounds(args.rounds, args.warmup, progress=not args.json and sys.stderr.isatty())
        results = bench.report()
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
                   "errors": {f"{rt} {op}": msg for (rt, op), msg in bench.errors.items()}},
                  sys.stdout, indent=2)
        print()
    else:
        print_table(results, runtimes, meta)
        for (rt, op), msg in sorted(bench.errors.items()):
            print(f"error: {rt} {op}: {msg}")
    failed = any(bench.failures[op][rt.name] for op in OPERATIONS for rt in runtimes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
