"""CVE-2019-5736: a container overwriting the host runtime binary through /proc/<pid>/exe.

runc's bug: a process in the container opened /proc/<runc pid>/exe while `runc exec` (or
`runc init`) ran in it and rewrote the host's runc binary.  pyrunc's defence is that no
runtime process that a container can see ever runs a host file: the container init execs
the exec stage from a sealed memfd before anything of the container runs, and `pyrunc exec`
forks into the container only from the stage (execute.py, stage.py, exec_stage.c).  These
tests attack that from inside real containers, in the worst case runc's advisory names:
root in the container, CAP_SYS_PTRACE, no user namespace.
"""

import errno
import fcntl
import os
import shutil
import subprocess
import sys
import time

import pytest
from secutil import hash_files, mapped_files

import pyrunc_testlib as lib
from ociruntime.libcontainer.stage import STAGE_PATH

ALL_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
F_GET_SEALS = 1034
# how long a running attacker keeps at it: each test kills it when done, so this only has
# to outlast the test, also ~15x slower in the VM (tests/cgroupv2/test_old_kernel_in_vm.py)
ATTACK_SECONDS = 600


def attacker_bundle(make_bundle, attacker_bin, seconds, *host_paths, name="attacker"):
    """A bundle whose process is the attacker, root with CAP_SYS_PTRACE, no user ns."""
    bundle = make_bundle(name)
    shutil.copy(attacker_bin, os.path.join(bundle.rootfs, "attacker"))
    bundle.set_args("/attacker", str(seconds), *host_paths)
    caps = bundle.process["capabilities"]
    for set_name in ALL_SETS:
        names = set(caps.get(set_name, ())) | {"CAP_SYS_PTRACE"}
        caps[set_name] = sorted(names)
    return bundle


def findings(output):
    """The attacker's lines, by kind."""
    out = {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        out.setdefault(kind, []).append(rest)
    return out


def assert_no_escape(found, output):
    """No host file opened for writing, nothing written at all."""
    assert not found.get("WROTE"), f"the container wrote through a runtime handle:\n{output}"
    assert not found.get("OPEN-ROOT"), f"a runtime process's root was the host's:\n{output}"
    for kind in ("OPEN-EXE", "REOPEN-EXE"):
        # a finished stage's memfd may open for writing, but its seals refuse any write
        # (checked by WROTE above): it is no host file, and each process has its own copy
        host = [line for line in found.get(kind, ()) if " /memfd:pyrunc-stage" not in line]
        assert not host, f"{kind}: the container opened a host binary for writing: {host}"
    # fds 0-2 of an exec'd process are the stdio its caller handed over on purpose
    leaked = [line for line in found.get("OPEN-FD", ()) if line.split()[1] not in "012"]
    assert not leaked, f"writable fds of runtime processes reached from the container: {leaked}"
    dirs = found.get("OPEN-DIR", ())
    assert not dirs, f"directory fds of runtime processes reached from the container: {dirs}"


def exec_true(runtime, cid):
    """`pyrunc exec CID true`.  ETXTBSY is the attacker's doing, not a failure: each of its
    attempts to open the container's busybox for writing holds the inode's write count
    for an instant before the read-only mount refuses it, and an execve of busybox at that
    instant fails with "text file busy"."""
    result = runtime.run("exec", cid, "true", check=False)
    assert result.returncode == 0 or "text file busy" in result.stderr, result


def runtime_files(runtime, cid):
    """The host files a running `pyrunc exec` maps (interpreter, libpython if any, every
    shared library), plus the exec stage on disk: what CVE-2019-5736 overwrote."""
    proc = subprocess.Popen([runtime.binary, "--root", runtime.root, "exec", cid, "sleep", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + lib.TIMEOUT
        files = set()
        while time.monotonic() < deadline and proc.poll() is None:
            files = mapped_files(proc.pid)
            if any("_native/_sys" in f for f in files):  # its system calls' module: loaded
                break
            time.sleep(0.02)
    finally:
        proc.wait(lib.TIMEOUT)
    assert any("python" in f for f in files), files
    files |= {sys.executable, os.path.realpath(sys.executable), STAGE_PATH}
    return files


def test_proc_self_exe_as_the_program_reaches_only_the_stage(runtime, bundle):
    """Defence: the container's process is exec'd by the stage, itself run from a memfd;
    args ["/proc/self/exe"] re-runs that memfd (no host file), which fails on its own
    usage check instead of running a runtime."""
    for args in (["/proc/self/exe"], ["/proc/self/exe", "3"]):
        bundle.set_args(*args)
        result = runtime.run_container(bundle)
        assert result.returncode != 0, result
        assert "exec stage" in result.stderr or "plan" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "python" not in result.stderr.lower()


def test_parked_stage_is_a_sealed_memfd(runtime, bundle):
    """Defence: stage.sealed_stage_fd(): the created container's /proc/PID/exe is a memfd
    sealed against writes; neither O_WRONLY nor a write through a read fd can change it."""
    result = runtime.create(bundle)
    pid = runtime.state(result.cid)["pid"]
    exe = f"/proc/{pid}/exe"
    assert os.readlink(exe) == lib.STAGE_EXE
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        with pytest.raises(OSError) as info:
            os.close(os.open(exe, flags))
        assert info.value.errno in (errno.ETXTBSY, errno.EPERM, errno.EACCES), info.value
    fd = os.open(exe, os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
    finally:
        os.close(fd)
    for seal in (F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE):
        assert seals & seal, f"seals {seals:#x} lack {seal:#x}"
    runtime.delete(result.cid, "--force")


def test_a_stage_made_ahead_is_sealed_and_taken_once():
    """Defence: stage.make_ahead() (the shim's warm worker makes its Create's stage before
    the Create comes) makes the same sealed memfd as sealed_stage_fd(), handed out once:
    the next container gets a memfd of its own, never one another container ran."""
    from ociruntime.libcontainer import stage

    stage.make_ahead()
    made = stage._ahead
    first = stage.sealed_stage_fd()
    second = stage.sealed_stage_fd()
    try:
        assert first == made and second != first
        assert os.fstat(first).st_ino != os.fstat(second).st_ino
        with open(STAGE_PATH, "rb") as f:
            image = f.read()
        for fd in (first, second):
            seals = fcntl.fcntl(fd, F_GET_SEALS)
            for seal in (F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE):
                assert seals & seal, f"seals {seals:#x} lack {seal:#x}"
            assert os.get_inheritable(fd) is False
            assert os.pread(fd, len(image) + 1, 0) == image
            with pytest.raises(OSError) as info:
                os.pwrite(fd, b"\0", 0)
            assert info.value.errno == errno.EPERM
    finally:
        os.close(first)
        os.close(second)


def test_plan_memfd_is_sealed():
    """Defence: stage.Plan.to_fd seals the plan the stage reads at startup, so a process
    that reaches it through /proc/PID/fd (CAP_SYS_PTRACE in a shared pid namespace) cannot
    rewrite the new process's uid, capabilities or program."""
    from ociruntime.libcontainer.stage import Plan

    plan = Plan()
    plan.add("uid", 1000)
    fd = plan.to_fd()
    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
        assert seals & F_SEAL_WRITE and seals & F_SEAL_SEAL and seals & F_SEAL_GROW
        with pytest.raises(OSError) as info:
            os.pwrite(fd, b"uid=0\0", 0)
        assert info.value.errno == errno.EPERM
        assert os.pread(fd, 64, 0) == b"uid=1000\0"
    finally:
        os.close(fd)


def test_exec_loop_cannot_reach_host_binaries(runtime, make_bundle, attacker_bin, scratch):
    """Defence: execute.exec_in forks and execs the sealed stage before joining anything;
    the stage joins the namespaces and forks into the pid namespace (exec_stage.c
    join_container), so the only runtime process a container can see runs a memfd and has
    already left the host's root.  The attacker (root, CAP_SYS_PTRACE, no user namespace)
    tries /proc/*/exe, /proc/*/root and /proc/*/fd of everything it sees while the host
    runs `pyrunc exec` in a loop."""
    marker = os.path.join(scratch.path, "host-only-marker")
    with open(marker, "w") as f:
        f.write("host\n")
    bundle = attacker_bundle(make_bundle, attacker_bin, ATTACK_SECONDS, marker)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "READY")
    files = runtime_files(runtime, cid)
    before = hash_files(files | {marker})
    deadline = time.monotonic() + 20
    execs = 0
    while execs < 30 and time.monotonic() < deadline:
        exec_true(runtime, cid)
        execs += 1
    runtime.kill(cid, "KILL")
    output = runtime.program_output(cid)
    found = findings(output)
    assert_no_escape(found, output)
    assert found.get("SEEN"), f"the attacker saw no process at all:\n{output}"
    assert hash_files(before) == before
    runtime.delete(cid, "--force")


def test_exec_into_a_created_container_finds_no_host_directory(runtime, make_bundle,
                                                               attacker_bin, scratch):
    """Defence: the parked stage (pid 1 of a created container) holds only an O_PATH
    handle of exec.fifo (opened by the parent), which it reopens through /proc/self/fd, not the
    host's state directory; an attacker exec'd into the created container with
    CAP_SYS_PTRACE finds no directory fd in /proc/1/fd to climb out of with "..".  start
    still works afterwards."""
    marker = os.path.join(scratch.path, "host-only-marker")
    with open(marker, "w") as f:
        f.write("host\n")
    bundle = attacker_bundle(make_bundle, attacker_bin, 1, marker)
    bundle.set_args("sh", "-c", "echo started")
    cid = runtime.create(bundle).cid
    result = runtime.run("exec", cid, "/attacker", "1", marker)
    found = findings(result.stdout)
    assert found.get("SEEN"), result.stdout  # it saw the parked stage
    assert_no_escape(found, result.stdout)
    runtime.start(cid)
    runtime.wait_output(cid, "started")
    runtime.delete(cid, "--force")


def test_parked_stage_without_procfs_still_starts(runtime, bundle):
    """A container with no procfs: the stage reopens exec.fifo through a detached procfs
    (init._detached_procfs) and starts normally; test_state_faults attacks that case."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] != "/proc"]
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.set_args("echo", "no-proc")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "no-proc")
    runtime.delete(cid, "--force")


def _join_pid_ns(bundle, pid):
    for ns in bundle.linux["namespaces"]:
        if ns["type"] == "pid":
            ns["path"] = f"/proc/{pid}/ns/pid"


def test_shared_pid_namespace_exec_loop(runtime, make_bundle, attacker_bin, scratch):
    """Defence: as above, for a second container that joins the attacker's pid namespace
    (the processes `pyrunc exec` forks into it are visible to the attacker too): they are
    the memfd stage or the user's program, never a host binary."""
    marker = os.path.join(scratch.path, "host-only-marker")
    with open(marker, "w") as f:
        f.write("host\n")
    attacker = attacker_bundle(make_bundle, attacker_bin, ATTACK_SECONDS, marker)
    a = runtime.create(attacker).cid
    victim = make_bundle("victim")
    victim.set_args("sleep", "60")
    _join_pid_ns(victim, runtime.state(a)["pid"])
    b = runtime.create(victim).cid
    runtime.start(b)
    runtime.start(a)
    runtime.wait_output(a, "READY")
    files = runtime_files(runtime, b)
    before = hash_files(files | {marker})
    deadline = time.monotonic() + 20
    execs = 0
    while execs < 20 and time.monotonic() < deadline:
        exec_true(runtime, b)
        execs += 1
    runtime.kill(a, "KILL")
    output = runtime.program_output(a)
    found = findings(output)
    assert_no_escape(found, output)
    assert any("busybox" in s for s in found.get("SEEN", ())), output
    assert hash_files(before) == before


def _create_into_attackers_pid_ns(runtime, make_bundle, attacker_bin, scratch, ptrace):
    marker = os.path.join(scratch.path, "host-only-marker")
    with open(marker, "w") as f:
        f.write("host\n")
    attacker = attacker_bundle(make_bundle, attacker_bin, ATTACK_SECONDS, marker)
    if not ptrace:
        for set_name in ALL_SETS:
            attacker.process["capabilities"][set_name] = [
                c for c in attacker.process["capabilities"][set_name] if c != "CAP_SYS_PTRACE"]
    a = runtime.create(attacker).cid
    runtime.start(a)
    runtime.wait_output(a, "READY")
    before = hash_files({sys.executable, os.path.realpath(sys.executable), STAGE_PATH, marker})
    for i in range(5):
        victim = make_bundle(f"victim{i}")
        _join_pid_ns(victim, runtime.state(a)["pid"])
        cid = runtime.create(victim).cid
        runtime.delete(cid, "--force")
    runtime.kill(a, "KILL")
    output = runtime.program_output(a)
    assert hash_files(before) == before
    return findings(output), output


def test_create_into_a_shared_pid_namespace(runtime, make_bundle, attacker_bin, scratch):
    """Defence: the container init is made non-dumpable first thing (init.container_init),
    so a root process without CAP_SYS_PTRACE in the pid namespace a new container joins
    cannot open its /proc/PID/exe, root or fds while it builds the rootfs, and the stage
    it becomes is a sealed memfd."""
    found, output = _create_into_attackers_pid_ns(runtime, make_bundle, attacker_bin, scratch,
                                                  ptrace=False)
    assert_no_escape(found, output)


def test_create_into_a_shared_pid_namespace_with_ptrace(runtime, make_bundle, attacker_bin,
                                                        scratch):
    """Defence: the Python init of a container that joins a pid namespace stays out of it
    (init.intermediate hands the namespace to the stage, which does setns + fork); its
    /proc is opened in the joined namespace by the stage (procfs_pidns), from an empty
    root.  A root process with CAP_SYS_PTRACE there only ever sees the memfd stage, never
    with the host's root.  Also run on Debian's kernel in the VM (test_old_kernel_in_vm)."""
    found, output = _create_into_attackers_pid_ns(runtime, make_bundle, attacker_bin, scratch,
                                                  ptrace=True)
    assert_no_escape(found, output)
