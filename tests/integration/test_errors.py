"""Bad input: every failure is one clear line on stderr (naming the problem, e.g. its JSON
path), a non-zero exit, and nothing left behind.  Also what must NOT be an error."""

import json
import os
import resource
import subprocess
from datetime import datetime

import pytest

from pyrunc_testlib import (
    CGROUP_ROOT,
    assert_error,
    assert_nothing_left,
    processes_of,
    read_or_none,
)


def nofile_hard():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE has no hard limit here: nothing to exceed")
    return hard


def drop_ns(config, ns_type):
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != ns_type]


def failed_create(runtime, bundle, text=None):
    """create with the bundle's config (or exactly `text` as config.json), expected to fail;
    the caller checks the error."""
    cid = runtime.new_id()
    bundle.write(text)
    result = runtime.create(bundle, cid=cid, check=False, write=False)
    return result


# --- bundles that are not there ---------------------------------------------------------------


def test_missing_bundle_directory(runtime, scratch):
    missing = os.path.join(scratch.path, "no-such-bundle")
    cid = runtime.new_id()
    result = runtime.run("create", "--bundle", missing, cid, check=False)
    assert_error(result, "no-such-bundle")
    assert_nothing_left(runtime, missing, cid)
    assert not os.path.exists(missing)


def test_bundle_without_config_json(runtime, bundle):
    cid = runtime.new_id()
    result = runtime.run("create", "--bundle", bundle.path, cid, check=False)
    assert_error(result, "config.json")
    assert_nothing_left(runtime, bundle, cid)


# --- config.json problems, each named by its JSON path ------------------------------------------


def _rlimits(*entries):
    return [{"type": t, "soft": s, "hard": h} for t, s, h in entries]


def _userns(uids=((0, 100000, 65536),), gids=((0, 100000, 65536),)):
    """A mutation: a user namespace with these (containerID, hostID, size) maps."""
    def lines(maps):
        return [{"containerID": c, "hostID": h, "size": n} for c, h, n in maps]

    def mutate(config):
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"].update(uidMappings=lines(uids), gidMappings=lines(gids))
    return mutate


BAD_CONFIGS = {
    # id: (mutation of the config dict, words the error line must contain)
    "ociVersion-foo": (lambda c: c.update(ociVersion="foo"), ["ociVersion", "foo"]),
    "ociVersion-missing": (lambda c: c.pop("ociVersion"), ["ociVersion"]),
    "root-missing": (lambda c: c.pop("root"), ["root"]),
    "root-path-not-on-disk": (lambda c: c["root"].update(path="no-such-rootfs"),
                              ["root.path", "no-such-rootfs"]),
    "cwd-relative": (lambda c: c["process"].update(cwd="tmp"), ["process.cwd"]),
    "rlimit-unknown-type": (
        lambda c: c["process"].update(rlimits=_rlimits(("RLIMIT_FOO", 1, 1))),
        ["process.rlimits[0]", "RLIMIT_FOO"]),
    "rlimit-duplicate": (
        lambda c: c["process"].update(rlimits=_rlimits(
            ("RLIMIT_NOFILE", 100, 100), ("RLIMIT_CORE", 0, 0), ("RLIMIT_NOFILE", 200, 200))),
        ["process.rlimits", "RLIMIT_NOFILE"]),
    "namespace-duplicate": (lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
                            ["linux.namespaces", "pid"]),
    "namespace-path-wrong-type": (
        lambda c: (drop_ns(c, "pid"),
                   c["linux"]["namespaces"].append({"type": "pid",
                                                    "path": "/proc/self/ns/net"})),
        ["linux.namespaces", "/proc/self/ns/net", "pid"]),
    "namespace-unknown-type": (lambda c: c["linux"]["namespaces"].append({"type": "foo"}),
                               ["linux.namespaces", "foo"]),
    "rootfsPropagation-foo": (lambda c: c["linux"].update(rootfsPropagation="foo"),
                              ["linux.rootfsPropagation", "foo"]),
    "args-empty": (lambda c: c["process"].update(args=[]), ["process.args"]),
    # id maps the kernel refuses: one line before anything is made, not its EINVAL at the
    # write of the child's map
    "uidMappings-overlap": (_userns([(0, 100000, 65536), (1000, 300000, 10)]),
                            ["linux.uidMappings[1]", "containerID range 1000..1009 overlaps"]),
    "gidMappings-hosts-overlap": (_userns(gids=[(0, 100000, 10), (10, 100005, 10)]),
                                  ["linux.gidMappings[1]", "hostID range", "overlaps"]),
    "uidMappings-past-the-last-id": (_userns([(0, 4294967000, 65536)]),
                                     ["linux.uidMappings[0].size", "runs past 4294967294"]),
    "uidMappings-size-0": (_userns([(0, 100000, 0)]), ["linux.uidMappings[0].size", "got 0"]),
    "gidMappings-341-lines": (_userns(gids=[(i, 100000 + i, 1) for i in range(341)]),
                              ["linux.gidMappings", "at most 340"]),
    "uidMappings-longer-than-a-page": (
        _userns([(4294960000 + i, 4294960000 + i, 1) for i in range(200)]),
        ["linux.uidMappings", "less than a page"]),
    "mount-without-destination": (lambda c: c["mounts"].append({"type": "tmpfs",
                                                                "source": "tmpfs"}),
                                  ["mounts[", "destination"]),
}


@pytest.mark.parametrize("mutate, needles", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_invalid_config(runtime, bundle, mutate, needles):
    mutate(bundle.config)
    result = failed_create(runtime, bundle)
    assert_error(result, *needles)
    assert_nothing_left(runtime, bundle, result.cid)


def test_rlimit_above_current_hard_limit_needs_cap_sys_resource(runtime, bundle):
    hard = nofile_hard()
    bundle.process["rlimits"] = _rlimits(("RLIMIT_NOFILE", 64, hard + 1))
    result = failed_create(runtime, bundle)
    assert_error(result, "CAP_SYS_RESOURCE", "RLIMIT_NOFILE")
    assert_nothing_left(runtime, bundle, result.cid)


def test_broken_json(runtime, bundle):
    result = failed_create(runtime, bundle, '{"ociVersion": "1.3.0", "root": ')
    assert_error(result, "config.json", "JSON")
    assert_nothing_left(runtime, bundle, result.cid)


def test_repeated_json_key(runtime, bundle):
    text = json.dumps(bundle.config).replace('"readonly": true',
                                             '"readonly": true, "readonly": false')
    assert text.count('"readonly"') == 2
    result = failed_create(runtime, bundle, text)
    assert_error(result, "root.readonly")
    assert_nothing_left(runtime, bundle, result.cid)


def test_pid_file_that_cannot_be_written_leaves_nothing(runtime, bundle, scratch):
    """--pid-file naming a directory: the rename fails after the container exists; the
    container goes, and so does the temp file the pid was written to first."""
    where = os.path.join(scratch.path, "pids")
    os.mkdir(where)
    target = os.path.join(where, "taken")
    os.mkdir(target)
    bundle.write()
    cid = runtime.new_id()
    result = runtime.run("create", "--bundle", bundle.path, "--pid-file", target, cid,
                         check=False)
    assert_error(result, f"--pid-file {target}: Is a directory")
    assert_nothing_left(runtime, bundle, cid)
    assert os.listdir(where) == ["taken"]


def test_exec_pid_file_that_cannot_be_written_leaves_no_process(runtime, bundle, scratch):
    """As runc: an exec whose --pid-file cannot be written kills the process it started
    (it was running already), and leaves no temp file."""
    bundle.set_args("sleep", "1000")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    target = os.path.join(scratch.path, "taken")
    os.mkdir(target)
    for detach in (("-d",), ()):
        result = runtime.run("exec", *detach, "--pid-file", target, cid, "sleep", "777",
                             check=False)
        assert_error(result, f"--pid-file {target}: Is a directory")
        assert result.returncode == 255
        left = [pid for pid, _ in processes_of(cid)
                if "777" in (read_or_none(f"/proc/{pid}/cmdline") or "")]
        assert not left, "the exec'd process outlived the failed exec"
    assert not [name for name in os.listdir(scratch.path) if name.startswith("taken.tmp")]
    runtime.delete(cid, "--force")


# --- problems only the container process can find -------------------------------------------


@pytest.mark.parametrize("args, needles", [
    (["no-such-program"], ["no-such-program", "executable file not found in $PATH"]),
    (["/bin/no-such-file"], ["/bin/no-such-file", "no such file or directory"]),
    (["/etc/passwd"], ["/etc/passwd", "permission denied"]),
], ids=["not-in-path", "no-such-file", "not-executable"])
def test_program_cannot_be_run(runtime, bundle, args, needles):
    bundle.set_args(*args)
    result = failed_create(runtime, bundle)
    assert_error(result, *needles)
    assert_nothing_left(runtime, bundle, result.cid)


# --- operations on containers that do not exist ------------------------------------------


@pytest.mark.parametrize("op", [["state"], ["start"], ["kill"], ["kill", "--all"],
                                ["delete"]],
                         ids=lambda op: "-".join(op))
def test_unknown_container(runtime, op):
    cid = runtime.new_id()
    result = runtime.run(*op, cid, check=False)
    assert_error(result, cid, "does not exist")
    assert not os.path.lexists(os.path.join(runtime.root, cid))


def test_force_delete_of_unknown_container_succeeds(runtime):
    """As runc and crun: engines retry `delete --force` after a crash or a failed create."""
    cid = runtime.new_id()
    result = runtime.run("delete", "--force", cid, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not os.path.lexists(os.path.join(runtime.root, cid))


@pytest.mark.parametrize("op", ["create", "start", "state", "kill", "delete", "run"])
def test_missing_container_id(runtime, bundle, op):
    bundle.write()
    args = ["--bundle", bundle.path] if op in ("create", "run") else []
    assert_error(runtime.run(op, *args, check=False), op, "id")
    assert not os.path.exists(runtime.root) or os.listdir(runtime.root) == []


@pytest.mark.parametrize("suffix", ["/b", " b", ":b", "*"], ids=["slash", "space", "colon", "star"])
def test_invalid_container_id(runtime, bundle, suffix):
    bad_id = runtime.new_id() + suffix  # registered, so teardown would find a leak
    bundle.write()
    result = runtime.run("create", "--bundle", bundle.path, bad_id, check=False)
    assert_error(result, bad_id)
    assert not os.path.exists(runtime.root) or os.listdir(runtime.root) == []
    assert_nothing_left(runtime, bundle, bad_id)


@pytest.mark.parametrize("bad_id", ["..", "."])
def test_dot_ids_are_invalid(runtime, bundle, bad_id):
    bundle.write()
    result = runtime.run("create", "--bundle", bundle.path, bad_id, check=False)
    assert_error(result, "invalid")
    assert not os.path.exists(runtime.root) or os.listdir(runtime.root) == []


def test_unknown_flag(runtime, bundle):
    cid = runtime.new_id()
    bundle.write()
    result = runtime.run("create", "--bundle", bundle.path, "--no-such-flag", cid, check=False)
    assert_error(result, "--no-such-flag")
    assert_nothing_left(runtime, bundle, cid)


def test_duplicate_create_leaves_first_container_alone(runtime, bundle):
    bundle.sh("echo first")
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]

    bundle.sh("echo second")
    result = runtime.create(bundle, cid=cid, check=False)
    assert_error(result, cid, "exists")

    state = runtime.state(cid)
    assert (state["status"], state["pid"]) == ("created", pid)
    runtime.start(cid)
    runtime.wait_exit(pid)
    assert runtime.program_output(cid) == "first\n"
    runtime.delete(cid)
    assert_nothing_left(runtime, bundle, cid)


def test_json_log_format(runtime, bundle, scratch):
    log = os.path.join(scratch.out, "log.json")
    bundle.config["ociVersion"] = "foo"
    bundle.write()
    cid = runtime.new_id()
    result = runtime.run("create", "--bundle", bundle.path, cid, check=False,
                         global_args=["--log", log, "--log-format", "json"])
    assert_error(result, "ociVersion")
    with open(log) as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    errors = [line for line in lines if line.get("level") == "error"]
    assert len(errors) == 1, lines
    entry = errors[0]
    assert "ociVersion" in entry["msg"] and "foo" in entry["msg"]
    stamp = entry["time"]
    assert datetime.fromisoformat(stamp[:19]).year >= 2000, stamp
    assert_nothing_left(runtime, bundle, cid)


# --- what must NOT be an error ------------------------------------------------------------------


def test_unknown_properties_are_ignored(runtime, bundle):
    bundle.config["org.example.unknown"] = {"nested": [1, 2, 3]}
    bundle.process["zzUnknownProcessField"] = True
    bundle.linux["zzUnknownLinuxField"] = "x"
    bundle.config["root"]["zzUnknownRootField"] = 1
    bundle.config["annotations"] = {"org.example.anything": "goes"}
    bundle.sh("echo fine")
    result = runtime.run_container(bundle)
    assert (result.returncode, result.stdout) == (0, "fine\n"), result.stderr


@pytest.mark.parametrize("version", ["1.0.0", "1.3.0"])
def test_supported_oci_versions(runtime, bundle, version):
    bundle.config["ociVersion"] = version
    bundle.sh("echo ok")
    result = runtime.run_container(bundle)
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_config_without_process_creates_but_cannot_start(runtime, bundle):
    del bundle.config["process"]
    cid = runtime.create(bundle).cid
    state = runtime.state(cid)
    assert state["status"] == "created"
    assert_error(runtime.start(cid, check=False), cid, "process")
    after = runtime.state(cid)
    assert (after["status"], after["pid"]) == ("created", state["pid"])
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


# --- failures after the container process exists: still nothing left ----------------------------


@pytest.mark.parametrize("entry, needles", [
    ({"destination": "/data", "type": "none", "source": "no-such-source",
      "options": ["bind"]}, ["no-such-source"]),
    ({"destination": "/data", "type": "nosuchfs", "source": "x"}, ["nosuchfs"]),
], ids=["bind-source-missing", "unknown-fstype"])
def test_failed_mount_leaves_nothing(runtime, bundle, entry, needles):
    bundle.config["mounts"].append(entry)
    index = len(bundle.config["mounts"]) - 1
    result = failed_create(runtime, bundle)
    assert_error(result, f"mounts[{index}]", *needles)
    assert_nothing_left(runtime, bundle, result.cid)


def test_rlimit_soft_above_hard(runtime, bundle):
    bundle.process["rlimits"] = _rlimits(("RLIMIT_NOFILE", 2048, 1024))
    result = failed_create(runtime, bundle)
    assert_error(result, "RLIMIT_NOFILE")
    assert_nothing_left(runtime, bundle, result.cid)


def test_user_namespace_without_mappings(runtime, bundle):
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux.pop("uidMappings", None)
    bundle.linux.pop("gidMappings", None)
    result = failed_create(runtime, bundle)
    assert_error(result, "mapping")
    assert_nothing_left(runtime, bundle, result.cid)


@pytest.mark.parametrize("field, value, ns_type", [
    ("hostname", "box", "uts"),
    ("domainname", "example.org", "uts"),
])
def test_setting_that_needs_its_own_namespace(runtime, bundle, field, value, ns_type):
    bundle.config.pop("hostname", None)
    bundle.config[field] = value
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != ns_type]
    result = failed_create(runtime, bundle)
    assert_error(result, field, ns_type)
    assert_nothing_left(runtime, bundle, result.cid)


def test_id_mappings_without_a_user_namespace(runtime, bundle):
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 1000}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 1000}]
    result = failed_create(runtime, bundle)
    assert_error(result, "linux.uidMappings", "user")
    assert_nothing_left(runtime, bundle, result.cid)


@pytest.mark.parametrize("count", [str(2**64), str(2**31), "-1"])
def test_preserve_fds_out_of_range_is_a_usage_error(runtime, bundle, count):
    """A count no process could hold is refused as the flag's error, before anything is
    made (a huge one reached the init as "internal error ...: OverflowError")."""
    bundle.write()
    cid = runtime.new_id()
    result = runtime.run("create", "--bundle", bundle.path, "--preserve-fds", count, cid,
                         check=False)
    assert_error(result, "--preserve-fds")
    assert_nothing_left(runtime, bundle, cid)


@pytest.mark.parametrize("op", ["list", "spec", "features"])
def test_an_argument_to_a_command_that_takes_none_is_a_usage_error(runtime, scratch, op):
    """As runc's checkArgs(0, exactArgs): one error line, the command's help, exit 1 (it
    was a traceback: these commands name no argument at all)."""
    result = runtime.run(op, "extra", check=False, cwd=scratch.path)
    assert_error(result, op, "extra")
    assert "Incorrect Usage" in result.stdout
    assert not os.path.exists(os.path.join(scratch.path, "config.json"))


def test_force_delete_of_unknown_container_leaves_a_cgroup_of_that_name_alone(runtime,
                                                                              scratch):
    """The cgroup a container gets by default is named after its id under the caller's
    (runc's name too): one of that name there, while pyrunc has no such container, is
    someone else's (runc's container, a service).  delete --force killed what ran in it
    and removed it."""
    cid = runtime.new_id()
    with open("/proc/self/cgroup") as f:
        own = next(line.rstrip("\n").split(":", 2)[2] for line in f
                   if "pids" in line.split(":")[1].split(","))
    directory = os.path.join(CGROUP_ROOT, "pids", own.lstrip("/"), cid)
    os.mkdir(directory)
    scratch.add_finalizer(lambda: os.rmdir(directory) if os.path.isdir(directory) else None)
    sleeper = subprocess.Popen(["sleep", "1000"])
    scratch.add_finalizer(sleeper.wait)
    scratch.add_finalizer(sleeper.kill)
    with open(os.path.join(directory, "cgroup.procs"), "w") as f:
        f.write(str(sleeper.pid))
    result = runtime.run("delete", "--force", cid, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    assert sleeper.poll() is None, "delete --force killed a process it never started"
    assert os.path.isdir(directory)
