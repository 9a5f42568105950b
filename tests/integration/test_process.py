"""The container process: args, env, cwd, user, umask, rlimits, no_new_privs,
capabilities, oom_score_adj, file descriptors and signal state, each read from inside
the container (/proc/self/status, id, ulimit, umask, pwd, env)."""

import os
import resource
import signal

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left

CAP_BITS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24, "CAP_AUDIT_WRITE": 29,
}


def cap_mask(names):
    mask = 0
    for name in names:
        mask |= 1 << CAP_BITS[name]
    return f"{mask:016x}"


def parse_status(text):
    return {key: value.strip() for key, _, value in
            (line.partition(":") for line in text.splitlines())}


def self_status(runtime, bundle, **kw):
    """/proc/self/status of the container program itself (args: cat /proc/self/status)."""
    bundle.set_args("cat", "/proc/self/status")
    result = runtime.run_container(bundle, **kw)
    assert result.returncode == 0, result.stderr
    return parse_status(result.stdout), result


# --- args, env, cwd ---------------------------------------------------------------------------


def test_args_found_through_path(runtime, bundle):
    # "echo" is only in /bin, the second PATH entry
    bundle.process["env"] = ["PATH=/no/such/dir:/bin"]
    bundle.set_args("echo", "one", "two  three", "")
    result = runtime.run_container(bundle)
    assert (result.returncode, result.stdout) == (0, "one two  three \n"), result.stderr


def test_no_env_means_only_home(runtime, bundle):
    # nothing of the runtime's environment; HOME is runc's addition (from the image's
    # /etc/passwd: tests/integration/test_runc_parity.py)
    bundle.process.pop("env", None)
    bundle.set_args("/bin/env")
    result = runtime.run_container(bundle, env=dict(os.environ, PYRUNC_TEST_HOST_ONLY="x"))
    assert (result.returncode, result.stdout) == (0, "HOME=/root\n"), result.stderr


def test_env_is_exactly_the_config_list(runtime, bundle):
    env = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "MULTI=a=b=c"]
    bundle.process["env"] = env
    bundle.set_args("env")
    host_env = dict(os.environ, PYRUNC_TEST_HOST_ONLY="leaked")
    result = runtime.run_container(bundle, env=host_env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(env + ["HOME=/root"])


def test_cwd(runtime, bundle):
    bundle.process["cwd"] = "/etc"
    assert runtime.sh(bundle, "pwd; ls passwd") == "/etc\npasswd\n"


def test_missing_cwd_is_created_inside_the_root(runtime, bundle):
    # as runc (tests/integration/test_runc_parity.py): created, resolved inside the rootfs,
    # so a symlink in the image cannot make the runtime create a directory on the host
    name = "made-" + os.path.basename(os.path.dirname(bundle.path))
    os.symlink("../" * 40 + name, os.path.join(bundle.rootfs, "escape"))
    bundle.process["cwd"] = "/escape/dir"
    assert runtime.sh(bundle, "pwd") == f"/{name}/dir\n"  # the symlink's target, inside
    assert not os.path.lexists("/" + name)
    assert os.path.isdir(os.path.join(bundle.rootfs, name, "dir"))


def test_cwd_that_cannot_be_created_is_one_error(runtime, bundle):
    with open(os.path.join(bundle.rootfs, "file"), "w"):
        pass
    bundle.process["cwd"] = "/file/dir"
    result = runtime.run_container(bundle)
    assert_error(result, "/file/dir")
    assert_nothing_left(runtime, bundle, result.cid)


# --- user, groups, umask ----------------------------------------------------------------------


def test_root_user_by_default(runtime, bundle):
    # the caller's supplementary groups must not leak in either
    status, _ = self_status(runtime, bundle, preexec_fn=lambda: os.setgroups([4, 24]))
    assert status["Uid"].split() == ["0"] * 4
    assert status["Gid"].split() == ["0"] * 4
    assert status["Groups"] == ""


def test_uid_gid_and_additional_gids(runtime, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    out = runtime.sh(bundle, "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' "
                             "/proc/self/status")
    lines = out.splitlines()
    assert lines[:3] == ["1000", "1001", "1001 10 20"]
    status = parse_status("\n".join(lines[3:]))
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1001"] * 4
    assert status["Groups"].split() == ["10", "20"]


@pytest.mark.parametrize("umask, shown", [(0o027, "0027"), (0, "0000")])
def test_umask_from_config(runtime, bundle, umask, shown):
    bundle.process["user"]["umask"] = umask
    out = runtime.sh(bundle, "umask; grep ^Umask: /proc/self/status", umask=0o022)
    assert out.split() == [shown, "Umask:", shown]


def test_umask_unset_keeps_callers(runtime, bundle):
    bundle.process["user"].pop("umask", None)
    out = runtime.sh(bundle, "umask", umask=0o037)
    assert out.strip() == "0037"


# --- rlimits, no_new_privs, oom_score_adj -------------------------------------------------------


def test_rlimits_soft_and_hard_exact(runtime, bundle):
    core_hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    core = (1024, 4096) if core_hard == resource.RLIM_INFINITY else (0, min(core_hard, 4096))
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": core[0], "hard": core[1]},
    ]
    out = runtime.sh(bundle, "ulimit -Sn; ulimit -Hn; "
                             "grep -E '^Max (open files|core file size)' /proc/self/limits")
    lines = out.splitlines()
    assert lines[:2] == ["512", "1024"]
    limits = {line[:26].strip(): line[26:].split()[:2] for line in lines[2:]}
    assert limits["Max open files"] == ["512", "1024"]
    assert limits["Max core file size"] == [str(core[0]), str(core[1])]


@pytest.mark.parametrize("nnp, expected", [(True, "1"), (False, "0")])
def test_no_new_privileges(runtime, bundle, nnp, expected):
    bundle.process["noNewPrivileges"] = nnp
    status, _ = self_status(runtime, bundle)
    assert status["NoNewPrivs"] == expected


@pytest.mark.parametrize("value", [200, 0])
def test_oom_score_adj_set(runtime, bundle, value):
    bundle.process["oomScoreAdj"] = value
    out = runtime.sh(bundle, "cat /proc/self/oom_score_adj", preexec_fn=_oom_adj(123))
    assert out.strip() == str(value)


def test_oom_score_adj_unset_keeps_callers(runtime, bundle):
    bundle.process.pop("oomScoreAdj", None)
    out = runtime.sh(bundle, "cat /proc/self/oom_score_adj", preexec_fn=_oom_adj(123))
    assert out.strip() == "123"


def _oom_adj(value):
    def set_it():
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    return set_it


# --- capabilities ------------------------------------------------------------------------------


def test_capabilities_of_root(runtime, bundle):
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.process["capabilities"] = {"bounding": caps, "effective": caps,
                                      "permitted": caps}
    status, _ = self_status(runtime, bundle)
    assert status["CapBnd"] == cap_mask(caps)
    assert status["CapEff"] == cap_mask(caps)
    assert status["CapPrm"] == cap_mask(caps)
    assert status["CapInh"] == cap_mask([])
    assert status["CapAmb"] == cap_mask([])


def test_all_five_capability_sets_exact(runtime, bundle):
    # A non-root user keeps exactly its ambient set across execve (as permitted and
    # effective), so every set can be observed as configured.
    sets = {
        "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                     "CAP_AUDIT_WRITE"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
    }
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = sets
    status, _ = self_status(runtime, bundle)
    assert status["CapBnd"] == cap_mask(sets["bounding"])
    assert status["CapEff"] == cap_mask(sets["effective"])
    assert status["CapPrm"] == cap_mask(sets["permitted"])
    assert status["CapInh"] == cap_mask(sets["inheritable"])
    assert status["CapAmb"] == cap_mask(sets["ambient"])


def test_unknown_or_ungrantable_capability_only_warns(runtime, bundle):
    caps = ["CAP_KILL", "CAP_BOGUS", "CAP_SYS_RESOURCE"]
    bundle.process["capabilities"] = {"bounding": caps, "effective": caps,
                                      "permitted": caps}
    status, result = self_status(runtime, bundle)
    assert "CAP_BOGUS" in result.stderr  # the warning
    assert status["CapBnd"] == cap_mask(["CAP_KILL"])
    assert status["CapEff"] == cap_mask(["CAP_KILL"])


# --- file descriptors and signals ------------------------------------------------------------


def test_only_stdio_fds_are_open(runtime, bundle, scratch):
    # the caller leaks an extra fd into the runtime; the container must not get it
    with open(os.path.join(scratch.out, "leak"), "w") as leak:
        out = runtime.sh(bundle, "ls /proc/self/fd", pass_fds=(leak.fileno(),))
    assert out.split() == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


def test_preserve_fds_passes_fd_3(runtime, bundle, scratch):
    path = os.path.join(scratch.out, "fd3")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        out = runtime.sh(bundle, "echo via-fd3 >&3; ls /proc/self/fd", "--preserve-fds", "1",
                         preexec_fn=lambda: os.dup2(fd, 3), pass_fds=(3,))
    finally:
        os.close(fd)
    assert out.split() == ["0", "1", "2", "3", "4"]  # 4 is ls's own directory fd
    with open(path) as f:
        assert f.read() == "via-fd3\n"


def test_signals_are_not_ignored_or_blocked(runtime, bundle):
    def caller_ignores_and_blocks():
        for sig in (signal.SIGPIPE, signal.SIGHUP, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})

    status, _ = self_status(runtime, bundle, preexec_fn=caller_ignores_and_blocks)
    assert status["SigIgn"] == "0" * 16
    assert status["SigBlk"] == "0" * 16


def test_terminal_belongs_to_the_process_user(runtime, bundle):
    # runc's fixStdioPermissions (libcontainer/init_linux.go): the pty becomes the user's,
    # its group (tty) stays.  (runc itself needs a terminal of its own for `run -t`, so
    # this is not compared side by side in test_runc_parity.py.)
    bundle.process["terminal"] = True
    bundle.process["user"] = {"uid": 65534, "gid": 65534}
    out = runtime.sh(bundle, "stat -c '%u %g' $(readlink /proc/self/fd/0)")
    assert out.replace("\r", "").strip() == "65534 5"
