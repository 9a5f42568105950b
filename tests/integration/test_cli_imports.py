"""Each lifecycle call imports only what it needs: every pyrunc call pays for its imports
(the interpreter's floor is ~10 ms, the modules below cost ~0.2-12 ms each), so a module
that creeps onto the path of state, start, kill or delete is a regression.  The imported
set is read from `python -X importtime`, as the launcher runs (-I -S); no time is asserted.
"""

import subprocess

import pytest

from pyrunc_testlib import TIMEOUT

# none of these on any of the four calls: typing/re/enum/json and friends cost 1-12 ms;
# the config model, cffi's helper and subprocess are create's and exec's; _json is
# CPython-private (issue #15), jsonlite is plain Python; signal and socket bring enum (and
# selectors): kill's signals come from _native._sys (~0.2 ms); cliextra holds the commands
# engines seldom call, clihelp the help texts (~0.1 ms)
NEVER = {"typing", "re", "enum", "json", "_json", "dataclasses", "functools", "collections",
         "inspect", "subprocess", "threading", "atexit", "_cffi_backend", "ociruntime.config",
         "ociruntime.libcontainer.init", "ociruntime.libcontainer.hooks", "signal", "socket",
         "selectors", "ociruntime.cliextra", "ociruntime.clihelp"}
# nor os (~1 ms: its _collections_abc, posixpath, stat): posix and ociruntime.paths do
NO_OS = {"os", "posixpath", "genericpath", "_collections_abc", "stat"}
CGROUPS = "ociruntime.libcontainer.cgroups"
CONTAINER = "ociruntime.libcontainer.container"
CREATE = "ociruntime.libcontainer.create"  # create's code, not read by the other operations


def interpreter(launcher):
    with open(launcher) as f:
        line = f.readline()
    assert line.startswith("#!"), line
    return line[2:].split()[0]


def imported(runtime, *args):
    """The modules `pyrunc --root ROOT ARGS...` imports (the call must succeed)."""
    argv = [interpreter(runtime.binary), "-X", "importtime", "-I", "-S", runtime.binary,
            "--root", runtime.root, *args]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert lines, result.stderr
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}


@pytest.fixture
def created(runtime, bundle):
    bundle.config["process"]["args"] = ["sleep", "1000"]
    return runtime.create(bundle).cid


def test_state_reads_the_record_only(runtime, created):
    mods = imported(runtime, "state", created)
    assert "ociruntime.state" in mods
    assert not mods & (NEVER | NO_OS), mods & (NEVER | NO_OS)
    assert CONTAINER not in mods and CGROUPS not in mods, mods


def test_start_kill_delete_import_no_more_than_they_need(runtime, created):
    pid = runtime.state(created)["pid"]
    mods = imported(runtime, "start", created)
    assert "ociruntime.libcontainer.start" in mods  # start's code, not the operations'
    unwanted = NEVER | NO_OS | {CGROUPS, CREATE, CONTAINER}
    assert not mods & unwanted, mods & unwanted
    mods = imported(runtime, "kill", created, "KILL")
    # select is start's poll; kill's code is in kill.py, not in the operations' module
    assert "ociruntime.libcontainer.kill" in mods
    assert not mods & (unwanted | {"select"}), mods & (unwanted | {"select"})
    runtime.wait_exit(pid)
    mods = imported(runtime, "delete", created)
    assert "ociruntime.libcontainer.delete" in mods  # delete's code, not the operations'
    unwanted = NEVER | NO_OS | {"select", CREATE, CONTAINER}
    assert not mods & unwanted, mods & unwanted
    # the limits' code is create's and update's (v1limits, v2limits: the files module, os);
    # a stopped container with a pid namespace of its own needs no Manager either (nothing
    # to list, kill or thaw): its record's directories go without the v1 or v2 module
    limits = {CGROUPS + ".v1limits", CGROUPS + ".v2limits", CGROUPS + ".files",
              CGROUPS + ".v1", CGROUPS + ".v2"}
    assert not mods & limits, mods & limits
    assert runtime.run("state", created, check=False).returncode != 0


# each module of ours costs a call ~0.06-0.3 ms of CPU (finding, reading and running it,
# whatever its size): these are all the four calls read, a new one on their path is a
# regression unless it is worth its cost
OURS = {"ociruntime", "ociruntime.cli", "ociruntime.errors",
        "ociruntime.jsonlite", "ociruntime.log", "ociruntime.paths", "ociruntime.state"}
LIB = "ociruntime.libcontainer"


def test_each_call_reads_these_modules_of_ours_and_no_other(runtime, created):
    def ours(*args):
        return {m for m in imported(runtime, *args) if m.split(".")[0] in ("ociruntime", "shim")}

    pid = runtime.state(created)["pid"]
    assert ours("state", created) == OURS
    assert ours("start", created) == OURS | {LIB, LIB + ".start"}
    assert ours("kill", created, "KILL") == OURS | {"ociruntime._native",
                                                     "ociruntime._native._sys", LIB,
                                                     LIB + ".kill"}
    runtime.wait_exit(pid)
    assert ours("delete", created) == OURS | {LIB, LIB + ".delete", LIB + ".cgroups"}


def test_run_imports_no_enum_or_json(runtime, bundle):
    """run (create, start, wait, delete in one call) imports the config model and the fork
    chain, but not signal/socket/json and the enum, functools, collections they bring:
    execute's `signal` (for foreground_pipes) cost every run ~5 ms.  The bundle has no
    hooks, no idmapped mount and no seccomp profile."""
    bundle.set_args("true")
    bundle.write()
    cid = runtime.new_id()
    mods = imported(runtime, "run", "-b", bundle.path, cid)
    assert "ociruntime.config" in mods
    heavy = NEVER - {"ociruntime.config", "ociruntime.libcontainer.init"}
    assert not mods & heavy, mods & heavy
    # nor os (~1 ms of every create and run) nor stat: the config model, the fork chain
    # and the rootfs use posix and ociruntime.paths
    assert not mods & NO_OS, mods & NO_OS
    # nor what only some configs need (cffi: bpf and libseccomp; hooks: above; idmapped
    # mounts), exec's module, the stdlib modules config once took one name or a
    # feature from, struct (set_mempolicy's mask), pwd (the owner is read from
    # /etc/passwd), resource (the rlimits' check without CAP_SYS_RESOURCE: _sys's
    # getrlimit), and the cgroup limits' modules (this config sets none)
    unused = {"ociruntime.libcontainer.idmap", "ociruntime.libcontainer.execute", "types",
              "__future__", "struct", "_struct", "pwd", "resource",
              "ociruntime.libcontainer.cgroups.v1limits", "ociruntime.libcontainer.cgroups.files"}
    assert not mods & unused, mods & unused


def test_a_profile_cached_imports_neither_hashlib_nor_libseccomp(runtime, bundle):
    """A create with a seccomp profile (every engine's containers) keys the compiled
    program's cache by a SHA-256 of the profile: _native._sys's, as hashlib would load
    libcrypto (~4 ms of every such create); on a cache hit no libseccomp (cffi) either."""
    bundle.set_args("true")
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["kexec_load"],
                                             "action": "SCMP_ACT_ERRNO"}]}
    bundle.write()
    first = imported(runtime, "run", "-b", bundle.path, runtime.new_id())
    assert "hashlib" not in first and "_hashlib" not in first
    assert "ociruntime.libcontainer.seccomp" in first
    again = imported(runtime, "run", "-b", bundle.path, runtime.new_id())
    assert not again & {"hashlib", "_hashlib", "_cffi_backend"}, again
