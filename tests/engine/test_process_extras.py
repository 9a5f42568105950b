"""Process attributes an engine asks for: scheduler, I/O priority, personality, the session
keyring, execCPUAffinity, and the LSM fields, observed from inside real containers."""

import json
import os

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left

SCHED_BATCH, SCHED_IDLE = 3, 5


def stat_fields(line):
    """/proc/PID/stat fields after the command name: index 0 is field 3 (state)."""
    return line[line.rindex(")") + 2:].split()


def test_scheduler_policy_and_nice(runtime, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    out = runtime.sh(bundle, "cat /proc/self/stat")
    fields = stat_fields(out.strip())
    assert int(fields[19 - 3]) == 7  # nice
    assert int(fields[41 - 3]) == SCHED_BATCH  # policy


def test_scheduler_idle(runtime, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_IDLE"}
    out = runtime.sh(bundle, "cat /proc/self/stat")
    assert int(stat_fields(out.strip())[41 - 3]) == SCHED_IDLE


@pytest.mark.parametrize("scheduler, needle", [
    ({"policy": "SCHED_OTHER", "priority": 5}, "priority"),
    ({"policy": "SCHED_FIFO"}, "1..99"),
    ({"policy": "SCHED_OTHER", "nice": 30}, "nice"),
    ({"policy": "SCHED_BATCH", "runtime": 1000}, "SCHED_DEADLINE"),
])
def test_bad_scheduler_is_refused_before_anything_exists(runtime, bundle, scheduler, needle):
    bundle.process["scheduler"] = scheduler
    result = runtime.create(bundle, check=False)
    assert_error(result, "process.scheduler", needle)
    assert_nothing_left(runtime, bundle, result.cid)


def test_io_priority(runtime, bundle):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    out = runtime.sh(bundle, "ionice -p $$")
    assert out.strip() == "best-effort: prio 6"


def test_io_priority_without_priority_is_level_0(runtime, bundle):
    # the prose says REQUIRED; runc and crun take a missing priority as 0
    # (conformance/CHECKLIST.md "Deviations")
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE"}
    out = runtime.sh(bundle, "ionice -p $$")
    assert out.strip() == "best-effort: prio 0"


def test_io_priority_idle(runtime, bundle):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    out = runtime.sh(bundle, "ionice")
    assert out.strip().startswith("idle")


def test_personality_linux32(runtime, bundle):
    if os.uname().machine != "x86_64":
        pytest.skip("LINUX32 shows as i686 on x86_64 only")
    bundle.linux["personality"] = {"domain": "LINUX32"}
    assert runtime.sh(bundle, "uname -m").strip() == "i686"
    bundle.set_args("sleep", "30")
    cid = runtime.create(bundle).cid
    assert runtime.run("exec", cid, "uname", "-m").stdout.strip() == "i686"
    runtime.run("delete", "--force", cid)
    bundle.linux["personality"] = {"domain": "LINUX"}
    assert runtime.sh(bundle, "uname -m").strip() == "x86_64"


def test_personality_flags_are_refused(runtime, bundle):
    bundle.linux["personality"] = {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.personality.flags")
    assert_nothing_left(runtime, bundle, result.cid)


def unmask_keys(bundle):
    """/proc/keys is one of the default masked paths."""
    bundle.linux["maskedPaths"] = [p for p in bundle.linux.get("maskedPaths", [])
                                   if p != "/proc/keys"]
    bundle.sh("cat /proc/keys")


def test_new_session_keyring_named_after_the_container(runtime, bundle):
    unmask_keys(bundle)
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    session = [line for line in result.stdout.splitlines() if " keyring " in line
               and f"_ses.{result.cid}" in line]
    assert len(session) == 1, result.stdout


def test_exec_joins_a_session_keyring_of_the_container(runtime, bundle):
    unmask_keys(bundle)
    bundle.set_args("sleep", "30")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    out = runtime.run("exec", cid, "cat", "/proc/keys").stdout
    (line,) = [x for x in out.splitlines() if f"_ses.{cid}" in x]
    # joined by name, like runc: the init's keyring, now held by the exec'd process too
    assert int(line.split()[2]) >= 2, line
    runtime.run("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid)


def test_no_new_keyring_keeps_the_callers(runtime, bundle):
    unmask_keys(bundle)
    result = runtime.run_container(bundle, "--no-new-keyring")
    assert result.returncode == 0, result.stderr
    assert "keyring" in result.stdout  # /proc/keys is readable: the absence means something
    assert f"_ses.{result.cid}" not in result.stdout


def test_exec_cpu_affinity_final(runtime, bundle, scratch):
    if len(os.sched_getaffinity(0)) < 2 or 1 not in os.sched_getaffinity(0):
        pytest.skip("needs CPUs 0 and 1")
    bundle.set_args("sleep", "30")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    process = dict(bundle.process)
    process["args"] = ["grep", "Cpus_allowed_list", "/proc/self/status"]
    process["execCPUAffinity"] = {"initial": "0", "final": "1"}
    path = os.path.join(scratch.path, "process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    out = runtime.run("exec", "--process", path, cid).stdout
    assert out.split() == ["Cpus_allowed_list:", "1"]
    # the scheduler and the I/O priority of an exec'd process are its own
    process["args"] = ["sh", "-c", "cat /proc/self/stat; ionice -p $$"]
    process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 3}
    process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 2}
    with open(path, "w") as f:
        json.dump(process, f)
    stat_line, ionice = runtime.run("exec", "--process", path, cid).stdout.splitlines()
    fields = stat_fields(stat_line)
    assert (int(fields[19 - 3]), int(fields[41 - 3])) == (3, SCHED_BATCH)
    assert ionice == "best-effort: prio 2"
    del process["scheduler"], process["ioPriority"]
    process["execCPUAffinity"] = {"final": "0-1,7-3"}
    with open(path, "w") as f:
        json.dump(process, f)
    result = runtime.run("exec", "--process", path, cid, check=False)
    assert_error(result, "execCPUAffinity")
    runtime.kill(cid, "KILL")
    runtime.run("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid)


def test_apparmor_profile_is_refused_without_apparmor(runtime, bundle):
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            if f.read().strip() == "Y":
                pytest.skip("AppArmor is enabled on this host")
    except OSError:
        pass
    bundle.process["apparmorProfile"] = "docker-default"
    result = runtime.create(bundle, check=False)
    assert_error(result, "process.apparmorProfile", "AppArmor is not enabled")
    assert_nothing_left(runtime, bundle, result.cid)


def test_selinux_labels_are_ignored_without_selinux(runtime, bundle):
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled on this host")
    bundle.process["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"
    bundle.linux["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    assert runtime.sh(bundle, "echo ok").strip() == "ok"


def test_intel_rdt_without_resctrl_is_an_error(runtime, bundle):
    """runtime-spec: intelRdt MUST error if no resctrl filesystem is mounted."""
    with open("/proc/self/mountinfo") as f:
        if any(" - resctrl " in line for line in f):
            pytest.skip("this host has resctrl mounted")
    bundle.linux["intelRdt"] = {"closID": "pyrunc-test"}
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.intelRdt", "resctrl")
    assert_nothing_left(runtime, bundle, result.cid)
