#!/usr/bin/env python3
"""Run opencontainers/runtime-tools' validation programs against a runtime, one at a time.

The programs are NOT part of this repository: build them yourself (outside the repo) and pass
the directory holding them:

    DIR/*.t                  the 58 validation programs (TAP on stdout)
    DIR/runtimetest          the static program they copy into each bundle
    DIR/rootfs-amd64.tar.gz  a busybox rootfs (busybox + applet symlinks, /etc/passwd, group)

    conformance/run_upstream.py --dir DIR                      # pyrunc
    conformance/run_upstream.py --dir DIR --runtime runc
    conformance/run_upstream.py --dir DIR --compare --markdown # all three, writes RESULTS.md

Isolation, per program:
  * its own scratch directory (mode 0755: the uid-mapping tests need to traverse it) holding
    copies of runtimetest and the tarball; it is the program's cwd and $TMPDIR (bundles land
    there);
  * its own private mount namespace (`unshare -m`): linux_ns_nopath drops the mount namespace
    from its config, and would otherwise mount into the host's;
  * a wrapper as $RUNTIME that adds `--root <scratch>/state`, so leftovers of a program are
    found and `delete --force`d afterwards;
  * crun (1.8) needs the empty cgroup2 at /sys/fs/cgroup/unified out of its way (it then takes
    the host for a v2 one), so its program's private namespace unmounts it; and crun refuses
    `ociVersion: 1.3.0`, so its wrapper rewrites the bundle's version to 1.0.2 before create;
  * on a v1/hybrid host, the v1 controllers the kernel has but the host never mounted (here
    hugetlb and net_cls,net_prio: /proc/cgroups lists them in hierarchy 0) are mounted inside
    that private namespace, on a private copy of the /sys/fs/cgroup directory (the host's
    own mounts are bind-mounted into it, untouched).  The kernel gives a controller back to
    the default hierarchy once its last mount and cgroup are gone, which cleanup() makes
    sure of.  `--host-cgroups` runs against the host's mounts as they are.
The suite uses fixed cgroup paths (/cgrouptest, testdir/cgrouptest/container), so programs
run sequentially, and those cgroups are removed (when empty) after each program.
"""

import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DIR = os.environ.get("RT_VALIDATION_DIR", "/opt/rt-build/bin")
RUNTIMES = ("pyrunc", "runc", "crun")
FIXED_CGROUPS = ("cgrouptest", "testdir/cgrouptest/container", "testdir/cgrouptest", "testdir")

# ---------------------------------------------------------------------------------------------
# Why a program fails, when it is not pyrunc's fault.  Key: program name (applies to every
# runtime) or "program@runtime".  Value: (class, evidence).  Classes:
#   "suite bug"            the program is wrong (evidence: what it does, measured with runc 1.1.5
#                          and crun 1.8.1, which fail it the same way)
#   "host lacks X"         this VM can't do it (cgroup v1 hybrid, no CAP_SYS_RESOURCE, ...)
#   "pyrunc: not implemented yet (feature X, in progress)"
#   "pyrunc bug"           ours to fix
# A pyrunc failure with no entry here is reported as "UNCLASSIFIED".
# ---------------------------------------------------------------------------------------------
SUITE = "suite bug"
CLASSIFICATION = {
    # --- host limits (fail identically with runc 1.1.5 and crun 1.8.1 on this VM) ---
    "linux_cgroups_blkio": (
        "host lacks blkio weight files",
        "the program reads back blkio.weight, blkio.leaf_weight and their _device files, "
        "which only the CFQ I/O scheduler had (gone since Linux 5.0); this 6.18 kernel's BFQ "
        "offers blkio.bfq.weight instead; runc and crun fail too"),
    "linux_cgroups_relative_blkio": (
        "host lacks blkio weight files", "same as linux_cgroups_blkio"),
    # hugetlb and net_cls/net_prio: only without the private controller view (--host-cgroups,
    # or a kernel built without them); with it, all three runtimes pass these four programs
    "linux_cgroups_hugetlb": (
        "host lacks hugetlb cgroup",
        "no hugetlb controller is mounted in the v1 hierarchy (run without --host-cgroups to "
        "mount it for the programs); runc and crun fail too"),
    "linux_cgroups_relative_hugetlb": (
        "host lacks hugetlb cgroup", "same as linux_cgroups_hugetlb"),
    "linux_cgroups_network": (
        "host lacks net_cls/net_prio cgroups",
        "net_cls and net_prio are not mounted on this host (run without --host-cgroups to "
        "mount them for the programs); runc and crun fail too"),
    "linux_cgroups_relative_network": (
        "host lacks net_cls/net_prio cgroups", "same as linux_cgroups_network"),
    "linux_cgroups_memory": (
        "host lacks kernel memory accounting",
        "this 6.18 kernel keeps memory.kmem.limit_in_bytes but ignores what is written to "
        "it (it reads back the maximum); the program sets memory.kernel and reads it back, so "
        "no runtime can pass; runc and crun fail that check"),
    "linux_cgroups_relative_memory": (
        "host lacks kernel memory accounting", "same as linux_cgroups_memory"),
    "linux_process_apparmor_profile": (
        "host lacks AppArmor",
        "AppArmor is not enabled (/sys/module/apparmor/parameters/enabled is absent or N); "
        "the program asks for a profile; runc and crun fail too"),
    "process_capabilities": (
        "host lacks CAP_SYS_RESOURCE",
        "the program grants every capability and checks all are in the container's sets; "
        "this VM's root has no CAP_SYS_RESOURCE, so no runtime can grant it"),
    # --- suite bugs (fail identically with runc 1.1.5 and crun 1.8.1) ---
    "linux_cgroups_pids": (
        SUITE, "runtime-tools' cgroups package compares the *int64 pids limit pointers, not "
               "their values, so the check can never succeed"),
    "linux_cgroups_relative_pids": (SUITE, "same pointer comparison as linux_cgroups_pids"),
    "process_rlimits": (
        SUITE, "check #13 reads RLIMIT_NOFILE inside the container, but the Go runtimetest "
               "raises its own soft RLIMIT_NOFILE to the hard limit at start-up (Go >= 1.19 "
               "does), so the value it sees is never the configured soft limit"),
    "hooks": (
        SUITE, "its hooks write 'post-start1 called', but the "
               "expected text says 'post-start1' (likewise post-start2, post-stop1/2), so "
               "the comparison can never match; runc and crun fail it too"),
    "prestart": (
        SUITE, "expects the pre-1.0 rule: its PostCreate check fails when the prestart hook "
               "has already run during create ('Pre-start hooks MUST be called after the "
               "start operation'); runtime-spec 1.0+ runs prestart during create, after the "
               "namespaces exist; runc and crun fail it too"),
    "pidfile": (
        SUITE, "the container runs `true`, which may exit before the program reads the state "
               "and compares the pid; the race is lost on this VM for every runtime"),
    "delete_resources": (
        SUITE, "check #3 ('pids limit is set correctly') uses the same pointer comparison as "
               "linux_cgroups_pids; runc and crun fail it too"),
    "start": (
        SUITE, "check #7 asserts that `start` SUCCEEDS on a config without `process`, the "
               "opposite of runtime.md ('start MUST generate an error if process was not "
               "set'); pyrunc errors as the spec says, so the container stays 'created' and "
               "check #8 (wait for 'stopped') times out; runc and crun fail it too"),
    "process_capabilities_fail": (
        SUITE, "expects create to fail for an unknown capability (CAP_TEST); runtime-spec "
               "1.2+ config.md says unknown or ungrantable caps MUST be logged as a warning "
               "and SHOULD NOT fail, which pyrunc does; runc 1.1.5 and crun 1.8.1 also accept"),
    "linux_cgroups_memory@pyrunc": (
        "host lacks kernel memory accounting",
        "the program sets memory.kernel/kernelTCP; this 6.18 kernel ignores "
        "memory.kmem.limit_in_bytes, and pyrunc refuses a value it can't apply (config.md: "
        "MUST error), so every case fails at create; runc/crun ignore kmem and fail the kmem "
        "checks instead"),
    "linux_cgroups_relative_memory@pyrunc": (
        "host lacks kernel memory accounting", "same as linux_cgroups_memory@pyrunc"),
    "poststart": (
        SUITE, "its program runs `sh -c \"echo 'process called' >> /output\"` and its poststart "
               "hook appends 'post-start called' to the same file, and it requires the program's"
               " line first; the spec only says the hooks run after the program is executed "
               "(pyrunc's start waits for the execve, see conformance/test_spec_lifecycle.py::te"
               "st_poststart_runs_after_the_program_is_executed), not after it has written "
               "anything, so the order is a race between two shells started ~1 ms apart: in "
               "batches of single runs here runc passed 0/10, crun 4/10, pyrunc 6/20 to 17/20"),
    "poststart_fail": (
        SUITE, "expects the runtime-spec <= 1.2 rule (a failing poststart hook is only a "
               "warning) while its own config says ociVersion 1.3.0, whose runtime.md says "
               "a failing poststart hook MUST make start error and destroy the container; "
               "pyrunc applies the rule of the config's version (it only warns for < 1.3); "
               "runc fails it, crun passes only because its wrapper rewrites the version to "
               "1.0.2 and crun always just warns; given the same rewrite, pyrunc passes it "
               "too (see RESULTS.md)"),
    "misc_props": (
        SUITE, "never copies runtimetest into its bundle, then "
               "creates a container running /runtimetest: create fails with 'exec: "
               "/runtimetest: no such file or directory' for every runtime (check #1)"),
}


def classify(program, runtime):
    return (CLASSIFICATION.get(f"{program}@{runtime}")
            or CLASSIFICATION.get(program)
            or ("UNCLASSIFIED", ""))[0]


# ---------------------------------------------------------------------------------------------
# TAP
# ---------------------------------------------------------------------------------------------
TAP_LINE = re.compile(r"^(not )?ok\b\s*(\d+)?\s*(.*)$")


def parse_tap(text):
    ok = not_ok = skip = 0
    plan = None
    failures = []
    for line in text.splitlines():
        if line.startswith("1.."):
            try:  # a program may print several TAP streams (one per test function)
                plan = (plan or 0) + int(line[3:].split()[0])
            except (ValueError, IndexError):
                pass
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        rest = m.group(3)
        directive = rest.split("#", 1)[1].strip().upper() if "#" in rest else ""
        if directive.startswith("SKIP"):
            skip += 1
        elif m.group(1):
            if directive.startswith("TODO"):
                skip += 1
            else:
                not_ok += 1
                failures.append(line.strip())
        else:
            ok += 1
    if plan == 0 and '"error":' in text:
        # "1..0" plus an error diagnostic: the lifecycle helper gave up before any check
        # (hooks, poststart, ... report that way)
        not_ok += 1
        failures.append("error diagnostic with no test: " + _first_error(text))
    return ok, not_ok, skip, plan, failures


def _first_error(text):
    m = re.search(r'"error":\s*"((?:[^"\\]|\\.)*)"', text)
    return m.group(1).split("\\n")[0] if m else ""


def verdict(rc, ok, not_ok, skip, plan, timed_out):
    if timed_out:
        return "timeout"
    if plan is None and ok + not_ok + skip == 0:
        # the *_fail programs print no TAP: they exit 0 when the runtime refused the config
        # and exit 1 (util.Fatal) when it did not
        return "pass" if rc == 0 else "error"
    if not_ok or rc != 0:
        return "fail"
    if plan is not None and ok + skip != plan:
        return "fail"
    if ok == 0 and skip:
        return "skip"
    return "pass"


# ---------------------------------------------------------------------------------------------
# runtimes and wrappers
# ---------------------------------------------------------------------------------------------
def runtime_binary(name):
    if name == "pyrunc":
        env = os.environ.get("PYRUNC")
        if env:
            return env
        venv = REPO / ".venv" / "bin" / "pyrunc"
        return str(venv) if venv.exists() else shutil.which("pyrunc")
    if "/" in name:
        return os.path.abspath(name)
    return shutil.which(name)


def runtime_kind(name, binary):
    base = os.path.basename(binary or name)
    return "crun" if base == "crun" else base


WRAPPER = """#!/bin/sh
# generated by conformance/run_upstream.py: a private --root for one validation program
{rewrite}exec {binary} --root {state} "$@"
"""

# crun 1.8 refuses ociVersion 1.3.0: rewrite the bundle's version before create/run
CRUN_REWRITE = """case "$1" in create|run)
    b=.; prev=
    for a in "$@"; do
        case "$prev" in --bundle|-b) b=$a;; esac
        case "$a" in --bundle=*) b=${a#--bundle=};; esac
        prev=$a
    done
    [ -f "$b/config.json" ] && sed -i 's/"ociVersion": *"1\\.3\\.0"/"ociVersion":"1.0.2"/' \\
        "$b/config.json";;
esac
"""


def write_wrapper(scratch, binary, kind):
    state = os.path.join(scratch, "state")
    os.makedirs(state, mode=0o700, exist_ok=True)
    path = os.path.join(scratch, "runtime")
    with open(path, "w") as f:
        f.write(WRAPPER.format(binary=binary, state=state,
                               rewrite=CRUN_REWRITE if kind == "crun" else ""))
    os.chmod(path, 0o755)
    return path, state


def unmounted_v1_controllers():
    """Controllers the kernel has and enables that no v1 mount shows, on a v1/hybrid host.

    Grouped as a host with them mounted would group them (net_cls with net_prio).  Empty on
    a pure v2 host, where /sys/fs/cgroup is the cgroup2 mount itself.  (A controller whose
    hierarchy outlived its last mount, see released(), counts as unmounted: mounting it again
    reuses that hierarchy, and the cleanup's unmount then ends it.)
    """
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return []
    mounted = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            _, _, rest = line.partition(" - ")
            fstype, _source, options = (rest.split() + ["", ""])[:3]
            if fstype == "cgroup":
                mounted.update(options.split(","))
    with open("/proc/cgroups") as f:
        rows = [line.split() for line in f if not line.startswith("#")]
    free = [name for name, _hierarchy, _n, enabled in rows
            if enabled == "1" and name not in mounted and name != "perf_event"]
    groups = []
    if "net_cls" in free and "net_prio" in free:
        groups.append(("net_cls", "net_prio"))
    groups += [(name,) for name in free if name not in ("net_cls", "net_prio")]
    return groups


def cgroup_view_script(groups):
    """Shell: a private /sys/fs/cgroup holding the host's mounts plus `groups` mounted.

    Runs inside a private mount namespace: the new tmpfs, binds and cgroup mounts exist only
    there; a controller another hierarchy holds (EBUSY) is left out.
    """
    if not groups:
        return ""
    lines = ['v=$(mktemp -d /tmp/rt-cgview.XXXXXX)',
             'mount -t tmpfs -o mode=755 rt-cgview "$v"',
             'for d in /sys/fs/cgroup/*; do n=${d##*/}; '
             'if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$v/$n"; '
             'else mkdir "$v/$n" && mount --bind "$d" "$v/$n"; fi; done']
    for group in groups:
        name = ",".join(group)
        lines.append(f'mkdir "$v/{name}" && {{ mount -t cgroup -o {name} cgroup "$v/{name}" '
                     f'|| rmdir "$v/{name}"; }}')
        if len(group) > 1:
            lines += [f'[ -d "$v/{name}" ] && ln -s {name} "$v/{ctl}"' for ctl in group]
    lines += ['mount --move "$v" /sys/fs/cgroup', 'rmdir "$v"']
    return "; ".join(lines) + "; "


def namespace_prelude(kind, groups=()):
    """Shell run first inside the program's private mount namespace."""
    prelude = cgroup_view_script(groups)
    if kind == "crun":
        prelude += "umount /sys/fs/cgroup/unified 2>/dev/null; "
    return prelude


def cleanup(wrapper, state, kind, groups=()):
    """delete --force whatever the program left in its private --root; drop fixed cgroups.

    Both in the program's view of /sys/fs/cgroup, so that cgroups in a controller mounted
    only for the program are found and removed (a leftover would keep its hierarchy alive).
    """
    ids = [d for d in os.listdir(state) if d[0] not in "@."] if os.path.isdir(state) else []
    for cid in ids:
        subprocess.run(["unshare", "-m", "sh", "-c",
                        namespace_prelude(kind, groups) + 'exec "$0" delete --force "$1"',
                        wrapper, cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=False)
    rmdirs = " ".join(f'"$c/{rel}"' for rel in FIXED_CGROUPS)
    subprocess.run(["unshare", "-m", "sh", "-c", cgroup_view_script(groups)
                    + f"for c in /sys/fs/cgroup/*; do [ -L \"$c\" ] || rmdir {rmdirs} "
                    "2>/dev/null; done; true"], timeout=60, check=False)
    return ids


def run_program(prog, valdir, binary, kind, timeout, keep=False, groups=()):
    name = os.path.basename(prog)[:-2]
    scratch = tempfile.mkdtemp(prefix=f"rt-{kind}-{name}-", dir=os.environ.get("RT_SCRATCH"))
    os.chmod(scratch, 0o755)
    for f in ("runtimetest", "rootfs-amd64.tar.gz"):
        shutil.copy2(os.path.join(valdir, f), os.path.join(scratch, f))
    wrapper, state = write_wrapper(scratch, binary, kind)
    env = dict(os.environ, RUNTIME=wrapper, TMPDIR=scratch)
    cmd = ["unshare", "-m", "sh", "-c", namespace_prelude(kind, groups) + 'exec "$0"', prog]
    start = time.monotonic()
    timed_out = False
    proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    elapsed = time.monotonic() - start
    text = out.decode(errors="replace")
    leftovers = cleanup(wrapper, state, kind, groups)
    if not keep:
        shutil.rmtree(scratch, ignore_errors=True)
    ok, not_ok, skip, plan, failures = parse_tap(text)
    return {
        "test": name, "ok": ok, "not_ok": not_ok, "skip": skip, "plan": plan,
        "rc": proc.returncode, "verdict": verdict(proc.returncode, ok, not_ok, skip, plan,
                                                  timed_out),
        "failures": failures, "output": text, "seconds": elapsed, "leftovers": leftovers,
    }


def programs(valdir, only):
    found = sorted(p for p in os.listdir(valdir) if p.endswith(".t"))
    if only:
        found = [p for p in found if p[:-2] in only]
    return [os.path.join(valdir, p) for p in found]


def run_suite(runtime, valdir, timeout, only, verbose, keep=False, groups=()):
    binary = runtime_binary(runtime)
    if not binary or not os.access(binary, os.X_OK):
        sys.exit(f"run_upstream: runtime {runtime!r} not found")
    kind = runtime_kind(runtime, binary)
    results = []
    for prog in programs(valdir, only):
        r = run_program(prog, valdir, binary, kind, timeout, keep, groups)
        r["class"] = "" if r["verdict"] in ("pass", "skip") else classify(r["test"], kind)
        results.append(r)
        if verbose:
            print(f"  {kind:6} {r['test']:36} {r['verdict']:7} ({r['seconds']:.1f}s)",
                  file=sys.stderr, flush=True)
            if verbose > 1 and r["verdict"] != "pass":
                for line in r["failures"][:5]:
                    print(f"      {line}", file=sys.stderr)
    return kind, results


def passed(results):
    return sum(r["verdict"] == "pass" for r in results)


def table(kind, results):
    lines = [f"runtime: {kind}", f"{'test':36} {'ok':>5} {'not ok':>6} {'skip':>5}  "
             f"{'verdict':8} class"]
    for r in results:
        lines.append(f"{r['test']:36} {r['ok']:5} {r['not_ok']:6} {r['skip']:5}  "
                     f"{r['verdict']:8} {r['class']}")
    lines.append(f"{kind}: {passed(results)}/{len(results)} programs pass")
    return "\n".join(lines)


def compare_table(by_runtime):
    kinds = list(by_runtime)
    names = [r["test"] for r in next(iter(by_runtime.values()))]
    idx = {k: {r["test"]: r for r in v} for k, v in by_runtime.items()}
    head = f"{'test':36} " + " ".join(f"{k:14}" for k in kinds) + " pyrunc failure class"
    lines = [head]
    for n in names:
        cells = []
        for k in kinds:
            r = idx[k].get(n)
            cells.append(f"{r['verdict']} {r['ok']}/{r['not_ok']}/{r['skip']}" if r else "-")
        cls = idx.get("pyrunc", {}).get(n, {}).get("class", "")
        lines.append(f"{n:36} " + " ".join(f"{c:14}" for c in cells) + f" {cls}")
    lines.append("totals: " + ", ".join(f"{k} {passed(v)}/{len(v)}"
                                        for k, v in by_runtime.items()))
    return "\n".join(lines)


def markdown(by_runtime, path, groups=()):
    kinds = list(by_runtime)
    idx = {k: {r["test"]: r for r in v} for k, v in by_runtime.items()}
    names = [r["test"] for r in next(iter(by_runtime.values()))]
    out = ["# Upstream conformance: opencontainers/runtime-tools validation", "",
           "Generated by `conformance/run_upstream.py --compare --markdown` "
           f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
           "Each cell: verdict, then ok/not ok/skip TAP counts.  A program passes when it "
           "exits 0 with no `not ok` (and, for the `*_fail` programs that print no TAP, "
           "when it exits 0).", "",
           "The programs come from opencontainers/runtime-tools (commit 5e63903), built "
           "outside this repository with Debian's Go 1.19 from the vendored dependencies "
           "(the few newer standard-library functions they use, `slices.Contains`/"
           "`DeleteFunc`, `sync.OnceValue(s)` and `strings.CutPrefix`, supplied in a copy "
           "of GOROOT); `rootfs-amd64.tar.gz` is made like runtime-tools' own (busybox, its "
           "applet symlinks, /etc/passwd and /etc/group, empty /dev /proc /sys) from "
           "Debian's busybox-static.  runc 1.1.5 and crun 1.8.1 are Debian's.  Each program "
           "runs alone, in a private mount namespace, in a 0755 scratch directory (see the "
           "runner's docstring)."
           + (" In that namespace only, the v1 controllers this kernel has but the host never "
              "mounted are mounted: " + ", ".join(f"`{','.join(g)}`" for g in groups)
              + " (the host's own cgroup mounts are not touched)." if groups else ""), "",
           "| " + " | ".join(["runtime"] + kinds) + " |",
           "|---" * (len(kinds) + 1) + "|",
           "| programs passing | " + " | ".join(f"**{passed(by_runtime[k])}/"
                                               f"{len(by_runtime[k])}**" for k in kinds) + " |",
           "", "| test | " + " | ".join(kinds) + " | class of the pyrunc failure |",
           "|---" * (len(kinds) + 2) + "|"]
    for n in names:
        cells = []
        for k in kinds:
            r = idx[k].get(n)
            cells.append(f"{r['verdict']} {r['ok']}/{r['not_ok']}/{r['skip']}" if r else "-")
        r = idx.get("pyrunc", {}).get(n)
        cls = r["class"] if r else ""
        out.append(f"| {n} | " + " | ".join(cells) + f" | {cls} |")
    if "pyrunc" in idx:
        others_pass = [n for n in names if idx["pyrunc"][n]["verdict"] != "pass" and any(
            idx[k].get(n, {}).get("verdict") == "pass" for k in kinds if k != "pyrunc")]
        out += ["", "Programs that runc or crun pass and pyrunc fails: "
                + (", ".join(others_pass) or "none") + "."]
    out += ["", "## Every remaining pyrunc failure, classified", ""]
    for r in by_runtime.get("pyrunc", []):
        if r["verdict"] in ("pass", "skip"):
            continue
        cls, evidence = (CLASSIFICATION.get(f"{r['test']}@pyrunc")
                         or CLASSIFICATION.get(r["test"]) or ("UNCLASSIFIED", ""))
        others = ", ".join(f"{k}: {idx[k][r['test']]['verdict']}" for k in kinds
                           if k != "pyrunc" and r["test"] in idx[k])
        out.append(f"- **{r['test']}** ({cls}; {others}). {evidence}")
        for line in r["failures"][:4]:
            out.append(f"  - `{line[:160]}`")
    out.append("")
    pathlib.Path(path).write_text("\n".join(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=DEFAULT_DIR,
                    help="prebuilt validation programs + runtimetest + rootfs tarball")
    ap.add_argument("--runtime", default="pyrunc", help="pyrunc, runc, crun or a PATH")
    ap.add_argument("--compare", action="store_true", help="run pyrunc, runc and crun")
    ap.add_argument("--markdown", nargs="?", const=str(HERE / "RESULTS.md"),
                    help="write the (compare) table as markdown (default conformance/RESULTS.md)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per program")
    ap.add_argument("--only", nargs="*", help="program names (without .t)")
    ap.add_argument("--keep", action="store_true", help="keep scratch directories")
    ap.add_argument("--host-cgroups", action="store_true",
                    help="do not mount the host's unmounted v1 controllers for the programs")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run_upstream: needs root")
    for f in ("runtimetest", "rootfs-amd64.tar.gz"):
        if not os.path.exists(os.path.join(args.dir, f)):
            sys.exit(f"run_upstream: {args.dir}/{f} is missing (build runtime-tools first)")
    runtimes = RUNTIMES if args.compare else (args.runtime,)
    groups = [] if args.host_cgroups else unmounted_v1_controllers()
    if groups and args.verbose:
        print("run_upstream: mounting for the programs only: "
              + " ".join(",".join(g) for g in groups), file=sys.stderr)
    by_runtime = {}
    for rt in runtimes:
        kind, results = run_suite(rt, args.dir, args.timeout, args.only, args.verbose,
                                  args.keep, groups)
        by_runtime[kind] = results
        if not args.compare:
            print(table(kind, results))
            for r in results:
                if r["verdict"] not in ("pass", "skip"):
                    for line in r["failures"][:3]:
                        print(f"    {r['test']}: {line[:150]}")
    if args.compare:
        print(compare_table(by_runtime))
    if args.markdown:
        markdown(by_runtime, args.markdown, groups)
    return 0 if released(groups) else 1


def released(groups, wait=10.0):
    """Give the controllers mounted for the programs back to the kernel's default hierarchy.

    The kernel ends a v1 hierarchy at its last unmount only if no child cgroup is left then,
    and a removed cgroup stays counted until RCU has freed it: the programs' (and cleanup's)
    unmounts usually come too early.  So: wait until only the root cgroups are left, mount
    and unmount once more, and check.  False (and a message) if a hierarchy stays.
    """
    names = {name for group in groups for name in group}
    deadline = time.monotonic() + wait
    while True:
        with open("/proc/cgroups") as f:
            rows = [row.split() for row in f if not row.startswith("#")]
        held = {name: ncgroups for name, hierarchy, ncgroups, _e in rows
                if name in names and hierarchy != "0"}
        if not held:
            return True
        if time.monotonic() > deadline:
            print("run_upstream: still in a v1 hierarchy of their own (cgroups left in them?): "
                  + " ".join(sorted(held)), file=sys.stderr)
            return False
        if all(n == "1" for n in held.values()):
            subprocess.run(["unshare", "-m", "sh", "-c", cgroup_view_script(groups) + "true"],
                           timeout=60, check=False)
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
