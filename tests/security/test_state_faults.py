"""Hostile local users, hostile containers and faults against the state directory (#12).

Each test attacks real containers: an unprivileged host user (uid 65534, a forked child
that really drops to it) against exec.fifo and state.json; a process exec'd with every
capability into a parked container with no procfs, hunting for a host directory through
/proc/1/fd; `create` and `run` killed with SIGKILL at random moments; damaged, partial,
old and future state records.  After each, `delete --force` must leave nothing behind.
"""

import fcntl
import json
import os
import random
import signal
import stat
import subprocess
import time
import uuid

import pytest

import pyrunc_testlib as lib

NOBODY = 65534
ALL_CAPS = ("CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
            "CAP_CHOWN", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETUID", "CAP_SETGID")


def as_nobody(fn):
    """Run fn() in a forked child that has dropped to uid/gid 65534 (no groups, no
    capabilities); returns what fn returned (a short string)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            result = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            result = f"child failed: {type(e).__name__}: {e}"
        os.write(w, result.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


def try_open(path, flags):
    """"ok" or the errno name of opening path with flags (never blocks: O_NONBLOCK)."""
    import errno

    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    os.close(fd)
    return "ok"


def sleeper(make_bundle, name="bundle", seconds=60):
    bundle = make_bundle(name)
    bundle.set_args("sh", "-c", f"echo started; sleep {seconds}")
    return bundle


def assert_runs_then_delete(runtime, bundle, cid):
    """The container's program runs (it said so, the status says so); then it goes and
    leaves nothing."""
    runtime.wait_output(cid, "started")
    assert runtime.status(cid) == "running"
    runtime.delete(cid, "--force")
    lib.assert_nothing_left(runtime, bundle, cid)


# --- 3. nobody but root reaches the state directory ----------------------------------------

@pytest.mark.parametrize("old_root_mode", [None, 0o711])
def test_unprivileged_user_cannot_reach_fifo_or_state(runtime, make_bundle, old_root_mode):
    """uid 65534 can neither open exec.fifo (for reading it would start the container, for
    writing feed `start` garbage) nor read state.json nor list the root: the root and the
    container directory are 0700, also under a root that an older pyrunc made 0711."""
    if old_root_mode is not None:
        os.makedirs(runtime.root, mode=old_root_mode)
        os.chmod(runtime.root, old_root_mode)
    bundle = sleeper(make_bundle)
    cid = runtime.create(bundle).cid
    cdir = os.path.join(runtime.root, cid)
    fifo = os.path.join(cdir, "exec.fifo")
    assert stat.S_IMODE(os.stat(cdir).st_mode) == 0o700
    if old_root_mode is None:
        assert stat.S_IMODE(os.stat(runtime.root).st_mode) == 0o700

    def attack():
        return " ".join([try_open(fifo, os.O_RDONLY), try_open(fifo, os.O_WRONLY),
                         try_open(os.path.join(cdir, "state.json"), os.O_RDONLY),
                         try_open(cdir, os.O_RDONLY | os.O_DIRECTORY)])

    assert as_nobody(attack) == "EACCES EACCES EACCES EACCES"
    assert runtime.status(cid) == "created"
    runtime.start(cid)
    assert_runs_then_delete(runtime, bundle, cid)


def test_start_does_not_hang_when_someone_else_took_the_fifo(runtime, make_bundle):
    """Someone who did reach exec.fifo (root here) opens it and takes the stage's "0": the
    program runs without `start`.  `start` then says so in one line and returns, and the
    container is left running, not destroyed."""
    bundle = sleeper(make_bundle)
    cid = runtime.create(bundle).cid
    fifo = os.path.join(runtime.root, cid, "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)  # the stage's open completes
    try:
        assert os.read(fd, 16) == b"0"
        runtime.wait_output(cid, "started")
        result = runtime.start(cid, check=False)
    finally:
        os.close(fd)
    lib.assert_error(result, "already running")
    assert_runs_then_delete(runtime, bundle, cid)


def test_garbage_written_to_the_fifo_does_not_destroy_the_container(runtime, make_bundle):
    """A second writer on exec.fifo puts text before or after the stage's answer: `start`
    warns, the program runs, the container stays."""
    bundle = sleeper(make_bundle)
    cid = runtime.create(bundle).cid
    fifo = os.path.join(runtime.root, cid, "exec.fifo")
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(fifo, os.O_WRONLY)  # blocks until `start` opens the other end
            os.write(fd, b"1hooks.evil: not really")
            time.sleep(0.5)
        finally:
            os._exit(0)
    try:
        result = runtime.start(cid, check=False)
    finally:
        os.waitpid(pid, 0)
    assert result.returncode == 0, result.stderr
    assert_runs_then_delete(runtime, bundle, cid)


# --- 4. no host fd in the parked container, even without a procfs -------------------------

ATTACK = r"""
mkdir -p /p && mount -t proc proc /p || { echo NO-PROC-MOUNT; exit 0; }
for pid in /p/[0-9]*; do
  for fd in $pid/fd/*; do
    echo "FD $fd -> $(readlink $fd)"
    up="$fd/../../../../../../../../../../.."
    for target in "$fd$CANARY" "$up$CANARY" "$fd/1/root$CANARY" \
                  "$fd/etc/shadow" "$up/etc/shadow"; do
      cat "$target" >/dev/null 2>&1 && echo "READ $target"  # never the content in a log
    done
    for dir in "$fd$CANARY_DIR" "$up$CANARY_DIR"; do
      echo pwned 2>/dev/null > "$dir/written-$$" && echo "WROTE $dir"
    done
  done
done
echo ATTACK-DONE
"""


@pytest.mark.parametrize("proc", ["none", "tmpfs"])
def test_exec_with_all_caps_finds_no_host_fd_in_parked_container(runtime, make_bundle,
                                                                  scratch, proc):
    """A created container whose /proc is no procfs (none, or a tmpfs): a process exec'd
    with CAP_SYS_ADMIN and CAP_SYS_PTRACE mounts a procfs itself and goes through every fd
    of the parked stage (pid 1) and of itself, reading a canary and /etc/shadow of the host
    and writing next to the canary.  Nothing of the host is reachable; start still works."""
    canary_dir = os.path.join(scratch.path, f"canary-{uuid.uuid4().hex[:8]}")
    os.mkdir(canary_dir, 0o777)
    token = uuid.uuid4().hex
    canary = os.path.join(canary_dir, "canary")
    with open(canary, "w") as f:
        f.write(f"CANARY-{token}\n")
    bundle = make_bundle()
    bundle.config["root"]["readonly"] = False
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    if proc == "tmpfs":
        bundle.mount("/proc", "tmpfs", "tmpfs", ["nosuid", "nodev"])
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.set_args("sh", "-c", "echo started")
    cid = runtime.create(bundle).cid
    caps = [arg for cap in ALL_CAPS for arg in ("--cap", cap)]
    result = runtime.run("exec", "--env", f"CANARY={canary}", "--env",
                         f"CANARY_DIR={canary_dir}", *caps, cid, "sh", "-c", ATTACK,
                         check=False)
    out = result.stdout
    assert "ATTACK-DONE" in out, f"the attack did not run: {result.stdout!r} {result.stderr!r}"
    assert "NO-PROC-MOUNT" not in out
    assert "/p/1/fd/" in out, f"the attacker saw no fd of the parked stage:\n{out}"
    assert token not in out
    assert "READ " not in out, f"the container read a host file through a runtime fd:\n{out}"
    assert "WROTE " not in out, f"the container wrote into the host:\n{out}"
    assert os.listdir(canary_dir) == ["canary"]
    state_dir = os.path.join(runtime.root, cid)
    for line in out.splitlines():
        if line.startswith("FD "):
            target = line.split(" -> ", 1)[1]
            assert target == os.path.join(state_dir, "exec.fifo") or not (
                target.startswith(runtime.root) or target.startswith(bundle.path)), line
    runtime.start(cid)
    runtime.wait_output(cid, "started")
    runtime.delete(cid, "--force")
    lib.assert_nothing_left(runtime, bundle, cid)


# --- faults: SIGKILL of create / run at any moment -----------------------------------------

KILL_ROUNDS = int(os.environ.get("PYRUNC_KILL_ROUNDS", "30"))


def _kill_after(runtime, argv, delay):
    proc = subprocess.Popen([runtime.binary, "--root", runtime.root, *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("command", ["create", "run"])
def test_create_killed_at_any_moment_leaves_nothing_after_delete_force(runtime, make_bundle,
                                                                       command):
    """`create` (or `run -d`) SIGKILLed at a random moment of its run (spread over how long
    one takes here): whatever it made is visible to `state` and `list` (a record in phase
    creating, or nothing at all), and `delete --force` removes every process, cgroup,
    mount and state directory."""
    bundle = sleeper(make_bundle)
    bundle.write()
    began = time.monotonic()
    cid = runtime.create(bundle, write=False).cid
    took = time.monotonic() - began
    runtime.delete(cid, "--force")
    rng = random.Random(12)
    seen = {"creating": 0, "created": 0, "running": 0, "absent": 0}
    for _ in range(KILL_ROUNDS):
        cid = runtime.new_id()
        argv = [command, "--bundle", bundle.path, cid]
        if command == "run":
            argv.insert(1, "-d")
        _kill_after(runtime, argv, rng.uniform(0, took * 1.2))
        state = runtime.run("state", cid, check=False)
        if state.returncode == 0:
            seen[json.loads(state.stdout)["status"]] = (
                seen.get(json.loads(state.stdout)["status"], 0) + 1)
            listed = runtime.run("list", "-q").stdout.split()
            assert cid in listed
        else:
            lib.assert_error(state, "does not exist")
            seen["absent"] += 1
        runtime.delete(cid, "--force")
        lib.assert_nothing_left(runtime, bundle, cid)
    print(seen)


# --- damaged, partial, old and future records ----------------------------------------------

def _state_file(runtime, cid):
    return os.path.join(runtime.root, cid, "state.json")


def test_delete_refuses_a_running_container_with_an_unreadable_record(runtime, make_bundle):
    """Without --force, a record that cannot be read is no proof that the container has
    stopped: delete refuses in one line and leaves it all; --force kills and removes it."""
    bundle = sleeper(make_bundle)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "started")
    pid = runtime.state(cid)["pid"]
    with open(_state_file(runtime, cid), "w") as f:
        f.write('{"ociVersion": "1.3.0", "id": tru')
    lib.assert_error(runtime.delete(cid, check=False), "state.json", "damaged")
    assert os.path.exists(_state_file(runtime, cid))
    assert lib.processes_of(cid), "delete killed the container"
    assert lib.container_cgroup_dirs(cid)
    lib.assert_error(runtime.run("state", cid, check=False), "state.json", "damaged")
    runtime.delete(cid, "--force")
    runtime.wait_exit(pid)
    lib.assert_nothing_left(runtime, bundle, cid)


def test_list_reports_damaged_records_and_lists_the_rest(runtime, make_bundle):
    """One damaged state.json (garbage, a JSON array, a directory) does not hide the other
    containers: list prints them and one warning line per damaged one."""
    bundle = sleeper(make_bundle)
    good = runtime.create(bundle).cid
    damaged = {}
    for kind, damage in (("garbage", b"\x00\xffnot json"), ("array", b"[1, 2]"),
                         ("fields", b'{"id": "x"}'), ("directory", None)):
        cid = runtime.create(make_bundle(kind)).cid
        path = _state_file(runtime, cid)
        os.unlink(path)
        if damage is None:
            os.mkdir(path)
        else:
            with open(path, "wb") as f:
                f.write(damage)
        damaged[cid] = kind
    result = runtime.run("list")
    assert good in result.stdout
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == len(damaged), result.stderr
    for cid in damaged:
        assert any(cid in line for line in warnings), result.stderr
        assert cid not in result.stdout
        lib.assert_error(runtime.run("state", cid, check=False), cid, "state.json")
    assert json.loads(runtime.run("list", "--format", "json").stdout)[0]["id"] == good
    for cid in [good, *damaged]:
        runtime.delete(cid, "--force")
        lib.assert_nothing_left(runtime, bundle, cid)


def test_state_records_carry_a_version_old_ones_are_read_future_ones_refused(runtime,
                                                                             make_bundle):
    """state.json says which layout and which pyrunc wrote it.  A record without a version
    (version 0, what pyrunc wrote before) still works end to end; a record from a newer
    layout is refused in one clear line, and only --force deletes it."""
    bundle = sleeper(make_bundle)
    cid = runtime.create(bundle).cid
    with open(_state_file(runtime, cid)) as f:
        record = json.load(f)
    assert record["pyruncStateVersion"] == 1 and record["pyruncVersion"]
    assert "phase" not in record
    old = {k: v for k, v in record.items() if k not in ("pyruncStateVersion", "pyruncVersion")}
    with open(_state_file(runtime, cid), "w") as f:
        json.dump(old, f)
    assert runtime.status(cid) == "created"
    runtime.start(cid)
    runtime.wait_output(cid, "started")
    assert runtime.status(cid) == "running"
    with open(_state_file(runtime, cid), "w") as f:
        json.dump(dict(record, pyruncStateVersion=99, pyruncVersion="9.9"), f)
    lib.assert_error(runtime.run("state", cid, check=False), "newer pyrunc", "9.9", "99")
    lib.assert_error(runtime.delete(cid, check=False), "newer pyrunc")
    assert lib.processes_of(cid)
    runtime.delete(cid, "--force")
    lib.assert_nothing_left(runtime, bundle, cid)


def test_delete_force_clears_every_partial_state(runtime, make_bundle):
    """delete --force works on what a crash can leave: a state directory without
    state.json, a record whose lock another process holds."""
    bundle = sleeper(make_bundle)
    # a state dir without state.json (plain delete too)
    for flags in ((), ("--force",)):
        cid = runtime.new_id()
        os.makedirs(os.path.join(runtime.root, cid), mode=0o700)
        runtime.delete(cid, *flags)
        lib.assert_nothing_left(runtime, bundle, cid)
    # a live container whose lock is held by someone else (a wedged pyrunc)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    # held here (flock(1) holding it left its `sleep` behind when killed)
    holder = os.open(os.path.join(runtime.root, cid), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = runtime.delete(cid, "--force")
        assert "lock" in result.stderr
    finally:
        os.close(holder)
    lib.assert_nothing_left(runtime, bundle, cid)
    # (a cgroup of the container's name with no state directory at all is not ours to
    # kill: test_errors' test_force_delete_of_unknown_container_leaves_a_cgroup_...)
