"""How the container's first process joins its cgroups (process.spawn, init.intermediate,
init.init_direct): without cgroup_threadgroup_rwsem's write side, whose first taker after a
quiet spell waits a whole RCU grace period.  The v1 hierarchies by writing "0" to their
`tasks` (the single-threaded child moves itself), the cgroup2 one by creating the child in
it (clone3 CLONE_INTO_CGROUP); where clone3 is refused (ENOSYS, as container engines'
seccomp profiles answer it), by cgroup.procs as before.  The child is the container init
itself, made in its namespaces, when no intermediate is needed (init.direct: this bundle's
namespaces are all new, none a user or time namespace), else the intermediate.  strace
shows which way was taken; every hierarchy's line of the container's /proc/self/cgroup
shows where it landed."""

import os
import re
import sys

import pytest

from pyrunc_testlib import traced_cgroup_joins

CLONE3 = re.compile(r"^(\d+) +clone3\((\{.*\}), \d+\) += (-?\d+)")
OPENED = re.compile(r'^(\d+) +openat\(AT_FDCWD, "(/sys/fs/cgroup/[^"]+)", ([A-Z_|]+)')

# run argv with clone3 answered ENOSYS by a seccomp filter (x86_64's syscall number)
NO_CLONE3 = """
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
filt = b"".join(struct.pack("HBBI", *insn) for insn in (
    (0x20, 0, 0, 0),                     # ld seccomp_data.nr
    (0x15, 0, 1, 435),                   # jeq clone3
    (0x06, 0, 0, 0x00050000 | 38),       # ret ERRNO(ENOSYS)
    (0x06, 0, 0, 0x7FFF0000)))           # ret ALLOW
buf = ctypes.create_string_buffer(filt)
prog = struct.pack("HxxxxxxQ", len(filt) // 8, ctypes.addressof(buf))
prog_buf = ctypes.create_string_buffer(prog)
assert libc.prctl(38, 1, 0, 0, 0) == 0                      # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_ulong(ctypes.addressof(prog_buf)), 0, 0) == 0  # FILTER
os.execv(sys.argv[1], sys.argv[1:])
"""


def _kernel():
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int(re.match(r"\d+", minor).group())


pytestmark = [
    pytest.mark.skipif(_kernel() < (5, 7), reason="clone3 CLONE_INTO_CGROUP is Linux 5.7"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="NO_CLONE3 is x86_64's"),
]


def _clones(trace):
    """[(caller pid, flags text, result)] of every clone3 in the trace."""
    return [(int(m[1]), m[2], int(m[3])) for m in map(CLONE3.match, trace) if m]


def _written(trace):
    """[(pid, path)] of every cgroup file opened for writing."""
    return [(int(m[1]), m[2]) for m in map(OPENED.match, trace)
            if m and ("O_WRONLY" in m[3] or "O_RDWR" in m[3])]


def _assert_in_own_cgroups(lines, cid):
    assert lines and all(line.endswith("/" + cid) for line in lines), lines


def test_the_init_is_created_in_cgroup2_and_its_namespaces_and_moves_itself_in_v1(
        runtime, bundle, scratch):
    cid, lines, trace = traced_cgroup_joins(runtime, bundle, scratch)
    _assert_in_own_cgroups(lines, cid)
    into = [c for c in _clones(trace) if "CLONE_INTO_CGROUP" in c[1]]
    assert len(into) == 1 and into[0][2] > 0, _clones(trace)
    child = into[0][2]
    # no intermediate: the child is made in the container's new namespaces and is the
    # container's process (it forks nothing: it execs the stage, which execs cat)
    assert "CLONE_NEWPID" in into[0][1] and "CLONE_NEWNS" in into[0][1], into
    forks = [line for line in trace if line.startswith(f"{child} ")
             and re.search(r" (clone3?|v?fork)\(", line)]
    assert not forks, forks
    written = _written(trace)
    joins = [path for pid, path in written if path.endswith(("/tasks", "/cgroup.procs"))]
    v1 = [line for line in lines if not line.startswith("0::")]
    assert sorted(joins) == sorted(p for pid, p in written
                                   if pid == child and p.endswith("/tasks")), written
    assert len(joins) == len(v1) and all(p.endswith(f"/{cid}/tasks") for p in joins), joins


def test_without_clone3_the_child_joins_by_cgroup_procs(runtime, bundle, scratch):
    wrapper = (sys.executable, "-c", NO_CLONE3)
    cid, lines, trace = traced_cgroup_joins(runtime, bundle, scratch, wrapper)
    _assert_in_own_cgroups(lines, cid)
    refused = [c for c in _clones(trace) if "CLONE_INTO_CGROUP" in c[1]]
    assert refused and all(c[2] == -1 for c in refused), refused
    procs = [(pid, p) for pid, p in _written(trace) if p.endswith("/cgroup.procs")]
    tasks = [(pid, p) for pid, p in _written(trace) if p.endswith("/tasks")]
    has_v2 = any(line.startswith("0::") for line in lines)
    assert len(procs) == (1 if has_v2 else 0), procs
    assert procs[0][1].endswith(f"/{cid}/cgroup.procs") if procs else True
    # the same child (the intermediate: no clone3 for the init either) joins them all
    assert len({pid for pid, _ in procs + tasks}) == 1, procs + tasks

