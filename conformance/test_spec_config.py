"""config.md: the fields of config.json, observed from inside the container with busybox."""

import os

from pyrunc_testlib import assert_nothing_left


def test_args_env_and_cwd_are_exactly_as_configured(runtime, bundle):
    # config.md "process": args (PATH lookup of args[0]), env (exactly these), cwd.  HOME
    # is given: without one, pyrunc adds it as runc and crun do (CHECKLIST.md "Deviations")
    bundle.process["env"] = ["PATH=/bin", "ONLY=this", "HOME=/h"]
    bundle.process["cwd"] = "/etc"
    out = runtime.sh(bundle, "pwd; env | sort; tr '\\0' ' ' < /proc/self/cmdline")
    lines = out.splitlines()
    assert lines[0] == "/etc"
    env = [line for line in lines[1:] if "=" in line and not line.startswith("PWD=")
           and not line.startswith("SHLVL=") and not line.startswith("_=")]
    assert sorted(env) == ["HOME=/h", "ONLY=this", "PATH=/bin"]


def test_relative_cwd_is_an_error(runtime, bundle):
    # config.md "process.cwd": MUST be an absolute path
    bundle.process["cwd"] = "etc"
    result = runtime.create(bundle, check=False)
    assert result.returncode != 0
    assert_nothing_left(runtime, bundle, result.cid)


def test_rlimits_soft_and_hard(runtime, bundle):
    # config.md "rlimits": rlim_cur MUST equal soft, rlim_max MUST equal hard
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
    assert runtime.sh(bundle, "ulimit -Sn; ulimit -Hn").split() == ["123", "456"]


def test_unknown_and_duplicate_rlimits_are_errors(runtime, bundle):
    # config.md "rlimits": MUST error for an unmappable type, and for a type given twice
    for rlimits in ([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}],
                    [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}] * 2):
        bundle.process["rlimits"] = rlimits
        result = runtime.create(bundle, check=False)
        assert result.returncode != 0, rlimits
        assert_nothing_left(runtime, bundle, result.cid)


def test_user_ids_and_additional_gids(runtime, bundle):
    # config.md "user": uid, gid, additionalGids as the process sees them
    bundle.process["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [3456, 4567]}
    out = runtime.sh(bundle, "id -u; id -g; grep '^Groups:' /proc/self/status")
    uid, gid, groups = out.splitlines()
    assert (uid, gid) == ("1234", "2345")
    assert sorted(groups.split()[1:]) == ["3456", "4567"]


def test_hostname_and_domainname(runtime, bundle):
    # config.md "hostname"/"domainname": set in the container's UTS namespace
    bundle.config["hostname"] = "spec-host"
    bundle.config["domainname"] = "spec.domain"
    out = runtime.sh(bundle, "hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == ["spec-host", "spec.domain"]
    assert os.uname().nodename != "spec-host"


def test_readonly_root(runtime, bundle):
    # config.md "root.readonly": true -> the root filesystem MUST be read-only
    bundle.config["root"]["readonly"] = True
    out = runtime.sh(bundle, "touch /x 2>&1; echo rc=$?")
    assert "Read-only file system" in out and "rc=1" in out


def test_mounts_in_order_and_relative_destination(runtime, bundle):
    # config.md "mounts": MUST mount in array order (a later one sits on top);
    # a relative destination is taken relative to /
    bundle.mount("/mnt", "tmpfs", "tmpfs", ["size=64k"])
    bundle.mount("/mnt", "tmpfs", "tmpfs", ["size=128k"])
    bundle.mount("mnt2", "tmpfs", "tmpfs", ["size=64k"])
    out = runtime.sh(bundle, "df -k /mnt | tail -1; grep ' /mnt2 ' /proc/self/mountinfo")
    first, second = out.splitlines()
    assert first.split()[1] == "128"
    assert " /mnt2 " in second


def test_bind_mount_relative_source(runtime, bundle):
    # config.md "mounts": a bind source relative to the bundle
    os.mkdir(os.path.join(bundle.path, "data"))
    with open(os.path.join(bundle.path, "data", "f"), "w") as f:
        f.write("from-bundle\n")
    bundle.mount("/data", "none", "data", ["bind", "ro"])
    assert runtime.sh(bundle, "cat /data/f") == "from-bundle\n"


def test_unknown_properties_and_annotations_are_ignored(runtime, bundle):
    # config.md "extensibility": unknown properties MUST be ignored; unknown annotation keys
    # likewise
    bundle.config["org.example.unknown"] = {"x": 1}
    bundle.linux["unknownLinuxField"] = True
    bundle.config["annotations"] = {"com.example.whatever": ""}
    assert runtime.sh(bundle, "echo fine") == "fine\n"


def test_oci_versions_are_accepted(runtime, bundle):
    # config.md "ociVersion": a 1.x config runs on a runtime supporting a later 1.y
    for version in ("1.0.0", "1.0.2", "1.3.0"):
        bundle.config["ociVersion"] = version
        assert runtime.sh(bundle, "echo ok") == "ok\n", version


def test_capabilities_sets(runtime, bundle):
    # config-linux.md / config.md "capabilities": exactly the listed caps in each set
    caps = ["CAP_CHOWN", "CAP_KILL"]  # bits 0 and 5
    bundle.process["capabilities"] = {k: caps for k in
                                      ("bounding", "effective", "permitted", "inheritable")}
    out = runtime.sh(bundle, "grep -E '^Cap(Inh|Prm|Eff|Bnd)' /proc/self/status")
    values = dict(line.split(":\t") for line in out.splitlines())
    assert set(values.values()) == {"0000000000000021"}, values


def test_no_new_privileges(runtime, bundle):
    # config.md "noNewPrivileges": true sets no_new_privs
    bundle.process["noNewPrivileges"] = True
    assert runtime.sh(bundle, "grep NoNewPrivs /proc/self/status").split() == [
        "NoNewPrivs:", "1"]


def test_oom_score_adj(runtime, bundle):
    # config.md "oomScoreAdj": MUST be written to the process's oom_score_adj
    bundle.process["oomScoreAdj"] = 345
    assert runtime.sh(bundle, "cat /proc/self/oom_score_adj") == "345\n"
