"""CVE-2024-21626: a host fd leaked into the container, reached through cwd or /proc/self/fd.

runc leaked an fd of a host cgroup directory into `runc init`; process.cwd
"/proc/self/fd/7" then put the container's process in a host directory, from where
../../.. reached the host's root.  pyrunc's defences: init.close_other_fds marks every fd
above 2 (and --preserve-fds) close-on-exec before anything else, the exec stage closes all
but 0-2 before the final execve, and the stage's enter_cwd refuses a working directory
that getcwd cannot place under the container's root.
"""

import os
import re

import pytest

MARKER = "host-only-marker-21626"


@pytest.fixture
def host_dir(scratch):
    """A host directory holding a marker file: what a leaked fd would expose."""
    path = os.path.join(scratch.path, "hostdir")
    os.mkdir(path)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("host\n")
    return path


def open_dirs(path, count):
    fds = [os.open(path, os.O_RDONLY | os.O_DIRECTORY) for _ in range(count)]
    return fds


def fd_numbers(ls_output):
    """The fd numbers `ls -l /proc/self/fd` lists, with their targets."""
    found = {}
    for line in ls_output.splitlines():
        m = re.search(r"\s(\d+) -> (.*)$", line)
        if m:
            found[int(m.group(1))] = m.group(2)
    return found


def test_inherited_fds_do_not_reach_the_container(runtime, bundle, host_dir):
    """Defence: close_other_fds (CLOSE_RANGE_CLOEXEC from fd 3 on, in the intermediate) and
    the stage's close_range before execve: fds the caller passes without --preserve-fds
    never reach the program."""
    fds = open_dirs(host_dir, 4)
    try:
        bundle.sh("ls -l /proc/self/fd")
        result = runtime.run_container(bundle, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert result.returncode == 0, result
    found = fd_numbers(result.stdout)
    assert {0, 1, 2} <= set(found), result.stdout
    extra = {n: t for n, t in found.items() if n > 2 and "/proc/" not in t}
    assert not extra, f"fds leaked into the container: {extra}"
    assert len(found) <= 4, found  # 0-2 and ls's own directory fd
    assert host_dir not in result.stdout


def test_exec_does_not_leak_inherited_fds(runtime, make_bundle, host_dir):
    """Defence: execute.exec_in marks fds from 3 on close-on-exec before the stage, and
    the stage closes them before execve."""
    b = make_bundle()
    b.set_args("sleep", "30")
    cid = runtime.create(b).cid
    runtime.start(cid)
    fds = open_dirs(host_dir, 3)
    try:
        result = runtime.run("exec", cid, "ls", "-l", "/proc/self/fd", pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    found = fd_numbers(result.stdout)
    extra = {n: t for n, t in found.items() if n > 2 and "/proc/" not in t}
    assert not extra, f"fds leaked into the exec'd process: {extra}"
    assert host_dir not in result.stdout
    runtime.delete(cid, "--force")


@pytest.mark.parametrize("fd", range(3, 10))
def test_cwd_through_proc_self_fd(runtime, bundle, host_dir, fd):
    """Defence: the stage's enter_cwd: chdir("/proc/self/fd/N") onto any fd the stage still
    holds (its sync socket, the state directory it parks on, the seccomp program) either
    fails or lands outside the root, which getcwd reports and the stage refuses; it can
    never make a host directory the program's working directory."""
    fds = open_dirs(host_dir, 7)
    try:
        bundle.process["cwd"] = f"/proc/self/fd/{fd}"
        bundle.sh("ls -a; ls -a ..; ls ../../../../..; echo CWD=$(pwd)")
        result = runtime.run_container(bundle, pass_fds=fds)
    finally:
        for f in fds:
            os.close(f)
    assert MARKER not in result.stdout, result.stdout
    assert "exec.fifo" not in result.stdout and "state.json" not in result.stdout
    if result.returncode == 0:
        # it landed inside the container: the directory is one of the container's own
        cwd = re.search(r"CWD=(.*)", result.stdout).group(1)
        assert cwd.startswith("/") and "unreachable" not in cwd, result.stdout
    else:
        assert "cwd" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fd", (3, 4, 5, 6))
def test_exec_cwd_through_proc_self_fd(runtime, make_bundle, host_dir, fd):
    """Defence: the same check for `pyrunc exec --cwd /proc/self/fd/N`: the stage joined
    the container holding its sync socket, plan and cgroup/namespace fds; none of them is
    a directory it may stay in."""
    b = make_bundle()
    b.set_args("sleep", "30")
    cid = runtime.create(b).cid
    runtime.start(cid)
    fds = open_dirs(host_dir, 4)
    try:
        result = runtime.run("exec", "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c",
                             "ls -a; ls ../../../..; echo CWD=$(pwd)", check=False,
                             pass_fds=fds)
    finally:
        for f in fds:
            os.close(f)
    assert MARKER not in result.stdout, result.stdout
    if result.returncode == 0:
        cwd = re.search(r"CWD=(.*)", result.stdout).group(1)
        assert cwd.startswith("/") and "unreachable" not in cwd, result.stdout
    else:
        assert "Traceback" not in result.stderr
    runtime.delete(cid, "--force")
