"""Hostile configs and hostile flags (issue #12): each one attacks a real container through
the `pyrunc` CLI and must end in exactly one error line, a non-zero exit and nothing left
behind.  runc 1.1.5 refuses or survives every one of them.

- cgroupsPath naming a hierarchy's root ("//" survived os.path.normpath): defence
  cgroups.resolve_path/below_root, and check_below in both managers' constructors.
- ids that are (uid_t)-1 (4294967295, -1) ran the program as root: config._ID and
  config.parse_id (exec --user, --additional-gids).
- mounts inside /proc (a read-write bind of the host's /proc/sys set host sysctls):
  config.proc_mount_problem, at parse time and again on the resolved destination in
  rootfs.Rootfs._check_proc.
- device rules with access "" or a negative number (they became "rwm" and "*"), device
  numbers the kernel has no room for: config._MAJOR/_MINOR, _device_access_problem.
- JSON the reader choked on (syntax error in the middle, deep nesting, huge integers):
  jsonlite.loads refuses each with a JSONDecodeError worded as json.loads words it.
- strings no system call can carry (NUL, lone surrogates): config._text_problem.
- a child's error text that was cut inside a UTF-8 sequence or was over 64 KiB: the
  exec stage's send_msg/utf8_trim, process._report and SyncSocket.recv.
- RLIMIT_NOFILE 0: create reported success for a dead container; the stage's
  check_fd_room makes create fail as runc's does.
"""

import json
import os

import pytest

import pyrunc_testlib as lib

# --------------------------------------------------------------------------------------------
# Helpers


def refused(runtime, bundle, *needles, text=None):
    """create with this bundle (config.json as given, or `text` verbatim) fails with one
    error line holding the needles, and leaves nothing behind.  Returns the line."""
    if text is not None:
        bundle.write(text)
    result = runtime.create(bundle, check=False, write=text is None)
    assert "Traceback" not in result.stderr, result.stderr
    line = lib.assert_error(result, *needles)
    lib.assert_nothing_left(runtime, bundle, result.cid)
    return line


@pytest.fixture
def running(runtime, bundle):
    """A started container running `sleep 1000`; its id."""
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    return cid


def exec_refused(runtime, cid, *args, needles=()):
    """`exec` with these arguments fails with one line; the container keeps running and no
    exec'd process is left in it."""
    before = sorted(pid for pid, _ in lib.processes_of(cid))
    result = runtime.run("exec", *args, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    line = lib.assert_error(result, *needles)
    assert runtime.status(cid) == "running"
    assert sorted(pid for pid, _ in lib.processes_of(cid)) == before
    return line


# --------------------------------------------------------------------------------------------
# 1. cgroupsPath at or above a hierarchy's root


def _own_depth():
    return max(path.strip("/").count("/") + 1 if path.strip("/") else 0
               for path in lib.own_cgroup_paths())


# CLIMB: relative, one '..' more than this process's cgroup is deep (a relative path starts
# from there)
ROOT_PATHS = ["//", "/", "/.", "/..", "///x/..", "/x/../..", "CLIMB", "a/../CLIMB/x"]


@pytest.mark.parametrize("cgroups_path", ROOT_PATHS)
def test_cgroups_path_at_the_hierarchy_root_is_refused(runtime, bundle, cgroups_path):
    """Defence: cgroups.resolve_path refuses any path that does not resolve strictly below
    the root ("//" kept its two slashes through os.path.normpath, so the container joined
    the host's root cgroups and its device rules went into the root devices cgroup)."""
    from ociruntime.errors import PyruncError
    from ociruntime.libcontainer.cgroups import resolve_path
    from ociruntime.libcontainer.cgroups.v1 import own_paths

    cgroups_path = cgroups_path.replace("CLIMB", "/".join([".."] * (_own_depth() + 1)))
    # Never hand the CLI a path its resolver would take: if the fix regressed, the test
    # must fail here rather than let a container into (and rules onto) the host's root.
    for own in own_paths().values():
        with pytest.raises(PyruncError):
            resolve_path(cgroups_path, "guard", own)
    bundle.linux["cgroupsPath"] = cgroups_path
    # Second guard, for a binary under test older than this source tree: no device rules
    # (written right after the cgroup is resolved), and a limit whose file no host has, so
    # that a runtime without the fix still fails its dry run of the limits, before any
    # process could join the root cgroups.
    bundle.linux["resources"] = {"hugepageLimits": [{"pageSize": "64KB", "limit": 0}]}
    devices_root = os.path.join(lib.CGROUP_ROOT, "devices", "devices.list")
    before = lib._read(devices_root)
    refused(runtime, bundle, "cgroupsPath", "below the root")
    assert lib._read(devices_root) == before


def test_the_second_guard_fails_before_any_process(runtime, bundle):
    """The limit the test above adds as its second guard really stops create before the
    container's process exists, here with a harmless cgroupsPath of the container's own."""
    cid = runtime.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    bundle.linux["resources"] = {"hugepageLimits": [{"pageSize": "64KB", "limit": 0}]}
    result = runtime.create(bundle, cid=cid, check=False)
    lib.assert_error(result, "hugepageLimits")
    lib.assert_nothing_left(runtime, bundle, cid)


def test_cgroups_path_with_nul_is_refused(runtime, bundle):
    bundle.linux["cgroupsPath"] = "/pyrunc-test\0/x"
    refused(runtime, bundle, "linux.cgroupsPath", "NUL")


# --------------------------------------------------------------------------------------------
# 2. ids that are (uid_t)-1


@pytest.mark.parametrize("field, value", [
    ("uid", 4294967295), ("uid", -1), ("gid", 4294967295), ("gid", -1),
    ("additionalGids", [4294967295]), ("additionalGids", [-1]),
])
def test_process_user_minus_one_is_refused(runtime, bundle, field, value):
    """Defence: config._ID (0..4294967294): setresuid(-1) changes nothing, so the program
    ran as the runtime's uid 0."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000, field: value}
    refused(runtime, bundle, f"process.user.{field}", "4294967294")


@pytest.mark.parametrize("flags", [
    ("--user", "-1"), ("--user", "4294967295"), ("--user", "0:-1"),
    ("--user", "0:4294967295"), ("--user", "1000:"), ("--user", "+1"),
    ("--user", "9" * 5000), ("--additional-gids", "-1"), ("--additional-gids", "4294967295"),
])
def test_exec_user_minus_one_is_refused(runtime, running, flags):
    """Defence: config.parse_id for exec's --user and --additional-gids."""
    exec_refused(runtime, running, *flags, running, "id", needles=(flags[0],))


@pytest.mark.parametrize("user", [{"uid": 4294967295, "gid": 0}, {"uid": 0, "gid": -1}])
def test_exec_process_file_user_minus_one_is_refused(runtime, running, scratch, user):
    path = os.path.join(scratch.path, "process.json")
    with open(path, "w") as f:
        json.dump({"args": ["id"], "cwd": "/", "user": user}, f)
    exec_refused(runtime, running, "--process", path, running, needles=("process.user",))


# --------------------------------------------------------------------------------------------
# 5. mounts inside /proc


@pytest.mark.parametrize("destination", ["/proc/sys", "//proc/sys", "/proc/./sys/kernel",
                                         "/proc/../proc/sys", "proc/sys", "/proc/1"])
def test_bind_mount_inside_proc_is_refused(runtime, bundle, destination):
    """Defence: config.proc_mount_problem (runc's checkProcMount list): a read-write bind of
    the host's /proc/sys let the container write host sysctls."""
    bundle.mount(destination, "bind", "/proc/sys", ["rbind", "rw"])
    refused(runtime, bundle, "mounts[", "inside /proc")


def test_bind_mount_into_proc_through_a_symlink_is_refused(runtime, bundle):
    """Defence: rootfs.Rootfs._check_proc runs the same rule on the destination as the
    kernel resolved it: /sysctl is a symlink to /proc/sys in the image."""
    os.symlink("/proc/sys", os.path.join(bundle.rootfs, "sysctl"))
    bundle.mount("/sysctl", "bind", "/proc/sys", ["rbind", "rw"])
    refused(runtime, bundle, "mounts[", "resolves to /proc/sys", "inside /proc")


def test_non_procfs_on_proc_is_refused(runtime, bundle, scratch):
    """Only a procfs goes on /proc itself: a bind of anything else would hide the real one
    (and what masked and read-only paths protect)."""
    fake = os.path.join(scratch.path, "fakeproc")
    os.mkdir(fake)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    bundle.mount("/proc", "bind", fake, ["rbind"])
    refused(runtime, bundle, "mounts[", "procfs")


def test_allowed_proc_files_can_be_mounted(runtime, bundle, scratch):
    """What lxcfs does stays possible: a bind onto /proc/cpuinfo (runc's list)."""
    fake = os.path.join(scratch.path, "cpuinfo")
    with open(fake, "w") as f:
        f.write("processor : 42\n")
    bundle.mount("/proc/cpuinfo", "bind", fake, ["bind", "ro"])
    assert runtime.sh(bundle, "cat /proc/cpuinfo") == "processor : 42\n"


# --------------------------------------------------------------------------------------------
# 6. device rules and device numbers


@pytest.mark.parametrize("rule, where", [
    ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": ""}, "access"),
    ({"allow": True, "type": "c", "major": -1, "minor": 3, "access": "rwm"}, "major"),
    ({"allow": True, "type": "b", "major": 8, "minor": -2, "access": "r"}, "minor"),
])
def test_device_rule_without_access_or_with_negative_number_is_refused(runtime, bundle, rule,
                                                                      where):
    """Defence: config._device_access_problem and _MAJOR/_MINOR: "" became "rwm" and a
    negative number the wildcard "*"."""
    bundle.linux.setdefault("resources", {})["devices"] = [
        {"allow": False, "access": "rwm"}, rule]
    refused(runtime, bundle, f"linux.resources.devices[1].{where}")


@pytest.mark.parametrize("major, minor, where", [(-1, 3, "major"), (2**40, 3, "major"),
                                                 (1, 2**40, "minor"), (1, -1, "minor")])
def test_device_number_out_of_range_is_refused(runtime, bundle, major, minor, where):
    """os.makedev raised OverflowError inside the init (a traceback)."""
    bundle.linux["devices"] = [{"type": "c", "path": "/dev/x", "major": major,
                                "minor": minor}]
    refused(runtime, bundle, f"linux.devices[0].{where}")


# --------------------------------------------------------------------------------------------
# JSON that broke the reader


def _with_unknown(bundle, raw_value):
    """config.json text with an unknown top-level property holding raw JSON text."""
    text = json.dumps(bundle.config)
    return text[:-1] + f', "zz-unknown": {raw_value}}}'


def test_syntax_error_in_the_middle_of_config_json(runtime, bundle):
    """_json's C scanner, which jsonlite once drove, raised SystemError here under
    `python -I` (json.decoder not imported)."""
    text = json.dumps(bundle.config, indent=1).replace('"terminal": false',
                                                      '"terminal": false,,', 1)
    assert ",," in text
    refused(runtime, bundle, "not valid JSON", "line", text=text)


@pytest.mark.parametrize("nesting", ["[" * 5000 + "]" * 5000,
                                     '{"a":' * 100000 + "1" + "}" * 100000])
def test_deep_nesting_under_an_unknown_key(runtime, bundle, nesting):
    refused(runtime, bundle, "not valid JSON", "nested too deeply",
            text=_with_unknown(bundle, nesting))


def test_integer_literal_over_4300_digits(runtime, bundle):
    refused(runtime, bundle, "not valid JSON", "integer literal too long",
            text=_with_unknown(bundle, "9" * 5000))


def test_update_resources_with_a_syntax_error(runtime, running, scratch):
    path = os.path.join(scratch.path, "resources.json")
    with open(path, "w") as f:
        f.write('{"pids": {"limit": 100,, }}')
    result = runtime.run("update", "-r", path, running, check=False)
    assert "Traceback" not in result.stderr
    lib.assert_error(result, "not valid JSON")
    assert runtime.status(running) == "running"


@pytest.mark.parametrize("body", ['{"args": ["id"],, "cwd": "/"}', "[" * 5000,
                                  '{"args": [' + "1" * 5000 + "]}"])
def test_exec_process_file_with_broken_json(runtime, running, scratch, body):
    path = os.path.join(scratch.path, "process.json")
    with open(path, "w") as f:
        f.write(body)
    exec_refused(runtime, running, "--process", path, running, needles=("not valid JSON",))


# --------------------------------------------------------------------------------------------
# Strings no system call can carry


def _hook(**fields):
    return {"path": "/bin/true", **fields}


@pytest.mark.parametrize("where, change", [
    ("process.args[0]", lambda c: c["process"].update(args=["tr\0ue"])),
    ("process.env[0]", lambda c: c["process"].update(env=["A=b\0c"])),
    ("process.cwd", lambda c: c["process"].update(cwd="/\0tmp")),
    ("mounts[0].source", lambda c: c["mounts"][0].update(source="pr\0oc")),
    ("mounts[0].destination", lambda c: c["mounts"][0].update(destination="/pr\0oc")),
    ("hooks.prestart[0].path", lambda c: c.update(hooks={"prestart": [_hook(path="/bin\0")]})),
    ("hooks.prestart[0].args[0]",
     lambda c: c.update(hooks={"prestart": [_hook(args=["a\0b"])]})),
    ("hooks.poststop[0].env[0]",
     lambda c: c.update(hooks={"poststop": [_hook(env=["A=\0"])]})),
    ("hostname", lambda c: c.update(hostname="h\0st")),
    ("linux.sysctl", lambda c: c["linux"].update(sysctl={"kernel.\0x": "1"})),
])
def test_nul_in_a_string_is_refused(runtime, bundle, where, change):
    """Defence: config._text_problem: a NUL ended as ValueError in the runtime or in the
    container's init ("internal error in container init")."""
    change(bundle.config)
    refused(runtime, bundle, where, "NUL")


@pytest.mark.parametrize("where, raw", [
    ("process.args[0]", '"\\ud800"'), ("process.env[0]", '"A=\\udfff"'),
])
def test_lone_surrogate_is_refused(runtime, bundle, where, raw):
    section, _, rest = where.partition(".")
    key = rest.split("[")[0]
    bundle.config[section][key] = ["PLACEHOLDER"]
    text = json.dumps(bundle.config).replace('"PLACEHOLDER"', raw)
    refused(runtime, bundle, where, "lone surrogate", text=text)


# --------------------------------------------------------------------------------------------
# Error texts from the container's side


def test_long_non_ascii_program_name_not_found(runtime, bundle):
    """The exec stage cut "exec: "<args[0]>": not found" inside a UTF-8 sequence, and the
    runtime crashed decoding it (UnicodeDecodeError)."""
    name = "é" * 3000 + "x"
    bundle.set_args(name)
    line = refused(runtime, bundle, "exec:", "...")
    assert "é" * 100 in line and "\ufffd" not in line


def test_exec_of_a_non_utf8_program_name_not_found(runtime, running):
    """A program name with bytes that are no UTF-8 reaches the stage as they are."""
    name = os.fsdecode(b"/no-such-\xff\xfe" + "é".encode() * 100)
    exec_refused(runtime, running, running, name, needles=("exec:", "no such file"))


def test_init_error_over_64_kib_is_one_clean_line(runtime, bundle):
    """An error text the init sends is bounded (process._report): a mount destination of
    ~80 KB made a datagram larger than the parent reads, and the cut JSON crashed it."""
    bundle.mount("/" + "é" * 40000, "tmpfs", "tmpfs")
    line = refused(runtime, bundle, "mounts[")
    assert len(line) < 8000 and line.endswith("...")


# --------------------------------------------------------------------------------------------
# RLIMIT_NOFILE 0


@pytest.mark.parametrize("limit", [0, 3])
def test_nofile_limit_too_low_to_start_fails_create(runtime, bundle, limit):
    """create exited 0 for a container whose stage could not even open exec.fifo (it died
    right after "ready"); runc 1.1.5's create fails for these limits too."""
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": limit, "hard": limit}]
    refused(runtime, bundle, "RLIMIT_NOFILE")


def test_low_nofile_limit_that_leaves_room_still_works(runtime, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 16, "hard": 16}]
    assert runtime.sh(bundle, "ulimit -n") == "16\n"
