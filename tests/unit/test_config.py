"""ociruntime.config: config.json -> typed records, and the errors the spec requires."""

import copy
import json
import os
import resource
import subprocess
import sys
from types import MappingProxyType

import pytest

import ociruntime
from ociruntime import config as cfg
from ociruntime.config import ConfigError, load_config, load_process, parse_config

# What `runc spec` (runc 1.1) writes, as a realistic everyday config.
RUNC_DEFAULT = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                       {"type": "mount"}],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}

HOOK = {"path": "/usr/bin/hook", "args": ["hook", "--flag"], "env": ["A=1"], "timeout": 5}

# Every property of runtime-spec v1.3.0 for Linux, each with a valid value.
EVERY_FIELD = {
    "ociVersion": "1.3.0",
    "root": {"path": "/var/lib/bundle/rootfs", "readonly": False},
    "mounts": [
        {"destination": "/data", "source": "/srv/data", "type": "none",
         "options": ["rbind", "ro", "idmap"],
         "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
         "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
    ],
    "process": {
        "terminal": True,
        "consoleSize": {"height": 25, "width": 80},
        "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [5, 6]},
        "args": ["/bin/sh", "-c", "echo hi"],
        "commandLine": "sh -c 'echo hi'",
        "env": ["PATH=/bin", "TERM=xterm"],
        "cwd": "/home/user",
        "capabilities": {
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "inheritable": [],
            "permitted": ["CAP_KILL", "CAP_BOGUS"], "ambient": [],
        },
        "rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
            {"type": "RLIMIT_LOCKS", "soft": 18446744073709551615, "hard": 18446744073709551615},
        ],
        "noNewPrivileges": True,
        "apparmorProfile": "acme_secure_profile",
        "oomScoreAdj": -500,
        "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 10,
                      "flags": ["SCHED_FLAG_RESET_ON_FORK"], "runtime": 10000,
                      "deadline": 20000, "period": 30000},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "execCPUAffinity": {"initial": "0-3,7", "final": "4"},
    },
    "hostname": "box",
    "domainname": "example.org",
    "hooks": {
        # (copies: deepcopy would keep one shared dict shared)
        "prestart": [dict(HOOK)], "createRuntime": [dict(HOOK)],
        "createContainer": [{"path": "/h"}], "startContainer": [dict(HOOK)],
        "poststart": [dict(HOOK)],
        "poststop": [dict(HOOK), {"path": "/h2"}],
    },
    "annotations": {"com.example.key": "value", "org.opencontainers.image.os": ""},
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "cgroup",
                                             "time")]
        + [{"type": "network", "path": "/var/run/netns/blue"}],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "timeOffsets": {"boottime": {"secs": -3600, "nanosecs": 5},
                        "monotonic": {"secs": 86400}},
        "devices": [
            {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438,
             "uid": 0, "gid": 0},
            {"type": "p", "path": "/dev/fifo"},
        ],
        "netDevices": {"eth1": {"name": "ctr1"}, "eth2": {}},
        "cgroupsPath": "/pyrunc/box",
        "resources": {
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
            "memory": {"limit": 536870912, "reservation": 268435456, "swap": -1, "kernel": -1,
                       "kernelTCP": -1, "swappiness": 0, "disableOOMKiller": False,
                       "useHierarchy": True, "checkBeforeUpdate": True},
            "cpu": {"shares": 1024, "quota": 1000000, "burst": 1000, "period": 500000,
                    "realtimeRuntime": 950000, "realtimePeriod": 1000000, "cpus": "2-3",
                    "mems": "0-7", "idle": 0},
            "pids": {"limit": 32771},
            "blockIO": {
                "weight": 10, "leafWeight": 10,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                                 {"major": 8, "minor": 16, "weight": 500}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 16, "rate": 300}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 60}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 30}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200},
                               {"pageSize": "64KB", "limit": 1000000}],
            "network": {"classID": 1048577,
                        "priorities": [{"name": "eth0", "priority": 500}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1}},
            "unified": {"io.weight": "10", "memory.high": "max"},
        },
        "intelRdt": {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0;1=1f",
                     "memBwSchema": "MB:0=20;1=70", "schemata": ["L2:0=f;1=f"],
                     "enableMonitoring": True},
        "rootfsPropagation": "rslave",
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/seccomp-agent.socket",
            "listenerMetadata": "metadata",
            "syscalls": [
                {"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "args": [{"index": 1, "value": 0o700, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
                          {"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_NE"}]},
                {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
                {"names": ["bpf"], "action": "SCMP_ACT_NOTIFY"},
            ],
        },
        "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
        "personality": {"domain": "LINUX32", "flags": []},
        "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "2-3",
                         "flags": ["MPOL_F_STATIC_NODES"]},
    },
}


def node_at(doc, path):
    """The node at a "/"-separated path ("linux/namespaces/0"; "" is the document)."""
    node = doc
    for part in path.split("/") if path else []:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def changed(doc, path, value=None, delete=False):
    """A deep copy of doc with the value at a "/"-separated path replaced (or deleted);
    an index one past an array's end appends."""
    doc = copy.deepcopy(doc)
    parent, _, last = path.rpartition("/")
    node = node_at(doc, parent)
    key = int(last) if isinstance(node, list) else last
    if delete:
        del node[key]
    elif isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value
    return doc


def parse_error(doc):
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    return caught.value


# --------------------------------------------------------------------------------------------
# Valid documents


def test_runc_default_config_gives_the_expected_records():
    config = parse_config(RUNC_DEFAULT)
    assert config.oci_version == "1.0.2-dev"
    assert config.root == cfg.Root(path="rootfs", readonly=True)
    assert config.hostname == "runc" and config.domainname is None
    process = config.process
    assert process.args == ("sh",) and process.cwd == "/" and process.terminal is True
    assert process.user == cfg.User(uid=0, gid=0, umask=None, additional_gids=())
    assert process.capabilities.bounding == ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert process.capabilities.inheritable is None
    assert process.rlimits == (
        cfg.Rlimit(type="RLIMIT_NOFILE", resource=resource.RLIMIT_NOFILE, soft=1024, hard=1024),
    )
    assert process.no_new_privileges is True and process.oom_score_adj is None
    assert process.console_size is None and process.scheduler is None
    assert [m.destination for m in config.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    assert config.mounts[0] == cfg.Mount(destination="/proc", source="proc", type="proc",
                                         options=(), uid_mappings=(), gid_mappings=())
    assert config.mounts[5].options == ("nosuid", "noexec", "nodev", "ro")
    linux = config.linux
    assert [ns.type for ns in linux.namespaces] == ["pid", "network", "ipc", "uts", "mount"]
    assert all(ns.path is None for ns in linux.namespaces)
    assert linux.resources.devices == (
        cfg.DeviceRule(allow=False, type=None, major=None, minor=None, access="rwm"),
    )
    assert linux.resources.memory is None and linux.resources.unified == {}
    assert linux.masked_paths[0] == "/proc/acpi"
    assert linux.readonly_paths[-1] == "/proc/sysrq-trigger"
    assert linux.seccomp is None and linux.rootfs_propagation is None
    assert config.hooks == cfg.Hooks() and config.annotations == {}


def test_every_field_lands_on_its_snake_case_attribute(model_matches):
    config = parse_config(EVERY_FIELD)
    model_matches(config, EVERY_FIELD)
    # A few spot checks of what the generic comparison cannot name.
    assert config.process.io_priority.class_ == "IOPRIO_CLASS_BE"
    assert config.process.rlimits[1].resource == cfg.RLIMITS["RLIMIT_LOCKS"] == 10
    assert config.process.capabilities.permitted == ("CAP_KILL", "CAP_BOGUS")
    assert config.hooks.poststop[1] == cfg.Hook(path="/h2", args=(), env=None, timeout=None)
    assert config.linux.devices[1].major is None
    assert config.linux.time_offsets["monotonic"] == cfg.TimeOffset(secs=86400, nanosecs=None)
    assert config.linux.net_devices["eth2"] == cfg.NetDevice(name=None)
    assert config.linux.resources.rdma["mlx4_0"].hca_handles is None
    assert config.linux.resources.block_io.weight_device[1].leaf_weight is None
    assert config.linux.seccomp.syscalls[0].errno_ret is None
    assert config.linux.seccomp.syscalls[1].args[1].value_two is None


def test_minimal_config_has_empty_containers_not_none():
    config = parse_config({"ociVersion": "1.0.0"})
    assert config.process is None and config.root is None
    assert config.mounts == () and config.annotations == {}
    assert isinstance(config.annotations, MappingProxyType)
    assert config.hooks == cfg.Hooks(prestart=(), create_runtime=(), create_container=(),
                                     start_container=(), poststart=(), poststop=())
    linux = config.linux
    assert linux == cfg.Linux()
    assert linux.namespaces == () and linux.devices == () and linux.masked_paths == ()
    assert linux.sysctl == {} and linux.time_offsets == {} and linux.net_devices == {}
    assert linux.resources is None and linux.seccomp is None and linux.cgroups_path is None


def test_spec_defaults_for_absent_process_fields():
    process = parse_config({"ociVersion": "1.3.0",
                            "process": {"args": ["true"], "cwd": "/"}}).process
    assert process.terminal is False and process.no_new_privileges is False
    assert process.user == cfg.User(uid=0, gid=0, umask=None, additional_gids=())
    assert process.env == () and process.rlimits == () and process.capabilities is None
    scheduler = parse_config(changed(EVERY_FIELD, "process/scheduler",
                                     {"policy": "SCHED_OTHER"})).process.scheduler
    assert scheduler == cfg.Scheduler(policy="SCHED_OTHER", nice=0, priority=0, flags=(),
                                      runtime=0, deadline=0, period=0)


UNKNOWN = {"zz-unknown-number": 1.5, "zz-unknown-object": {"a": [None]}}


@pytest.mark.parametrize("where", [
    "", "root", "mounts/0", "mounts/0/uidMappings/0", "process", "process/user",
    "process/capabilities", "process/rlimits/0", "process/scheduler", "process/ioPriority",
    "hooks", "hooks/poststop/0", "linux", "linux/namespaces/0", "linux/timeOffsets",
    "linux/devices/0", "linux/netDevices/eth1", "linux/resources", "linux/resources/memory",
    "linux/resources/blockIO/weightDevice/0", "linux/resources/rdma/mlx5_1",
    "linux/seccomp", "linux/seccomp/syscalls/1", "linux/seccomp/syscalls/1/args/0",
    "linux/intelRdt", "linux/personality", "linux/memoryPolicy",
])
def test_unknown_properties_are_ignored(where):
    doc = copy.deepcopy(EVERY_FIELD)
    node_at(doc, where).update(UNKNOWN)
    assert parse_config(doc) == parse_config(EVERY_FIELD)


def test_other_platforms_and_unknown_clocks_are_ignored():
    doc = dict(EVERY_FIELD, windows={"layerFolders": 5}, solaris=[], vm=None)
    doc = changed(doc, "linux/timeOffsets/realtime", "not even an object")
    assert parse_config(doc) == parse_config(EVERY_FIELD)


@pytest.mark.parametrize("version", [
    "1.0.0", "1.3.0", "1.0.2-dev", "1.2.1-rc.1", "1.0.0-alpha.1+build.5", "1.10.0+x-y.z",
    "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
])
def test_accepted_oci_versions(version):
    assert parse_config({"ociVersion": version}).oci_version == version


@pytest.mark.parametrize("version", [
    "", "1", "1.0", "1.0.0.0", "01.0.0", "1.00.0", "1.0.00", "v1.0.0", "1.0.0-", "1.0.0+",
    "1.0.0-01", "1.0.0-a..b", "1.0.0+a..b", "1.0.0+a+b", "1.0.0-a_b", " 1.0.0", "1.0.0\n",
    "1.٣.0", "1.0.0-é",
])
def test_rejected_oci_versions(version):
    error = parse_error({"ociVersion": version})
    assert error.path == "ociVersion" and "SemVer 2.0.0" in error.problem


@pytest.mark.parametrize("version", ["0.5.0-dev", "2.0.0"])
def test_other_major_versions_are_unsupported(version):
    error = parse_error({"ociVersion": version})
    assert error.path == "ociVersion" and "is not supported" in error.problem


# --------------------------------------------------------------------------------------------
# Errors the spec requires: each names the JSON path of the problem.

# (where in EVERY_FIELD, its new value or DELETE, words the message must contain[, the error's
# path when it is not where the change was])
DELETE = object()
ERRORS = [
    ("ociVersion", DELETE, "is required"),
    ("ociVersion", 1, "must be a string, got 1"),
    ("root", "rootfs", "must be an object"),
    ("root/path", DELETE, "is required"),
    ("root/readonly", "yes", "must be true or false"),
    ("mounts", {}, "must be an array"),
    ("mounts/0/destination", DELETE, "is required"),
    ("mounts/0/options/1", 7, "must be a string, got 7"),
    ("mounts/0/gidMappings", DELETE, "must come with uidMappings"),
    ("mounts/0/uidMappings", DELETE, "must come with gidMappings"),
    ("mounts/0/uidMappings/0/size", DELETE, "is required"),
    ("mounts/0/uidMappings/0/hostID", -1, "0..4294967294"),
    ("mounts/0/gidMappings/0/size", 0, "must be an integer in 1..4294967295"),
    ("mounts/0/uidMappings/1", {"containerID": 65535, "hostID": 0, "size": 2}, "overlaps"),
    ("process/cwd", "tmp", 'must be an absolute path, got "tmp"'),
    ("process/cwd", DELETE, "is required"),
    ("process/args", [], "at least one entry"),
    ("process/args", DELETE, "is required"),
    ("process/env/0", None, "must be a string, got null"),
    ("process/terminal", 1, "must be true or false, got 1"),
    ("process/consoleSize", {"height": 25}, "is required", "process.consoleSize.width"),
    ("process/consoleSize/height", -1, "uint64"),
    ("process/user/uid", "0", 'must be an integer in 0..4294967294 (a uid or gid; 4294967295 '
                              'is -1, no id), got "0"'),
    ("process/user/gid", DELETE, "is required"),
    ("process/user/uid", True, "got true"),
    ("process/user/uid", 1.0, "got 1.0"),
    ("process/user/uid", 2**32, "0..4294967294"),
    ("process/user/uid", 2**32 - 1, "4294967295 is -1"),
    ("process/user/gid", -1, "0..4294967294"),
    ("process/user/additionalGids/0", 2**32 - 1, "4294967295 is -1"),
    ("process/user/additionalGids/1", -5, "0..4294967294"),
    ("linux/devices/0/uid", 2**32 - 1, "4294967295 is -1"),
    ("linux/devices/0/gid", 2**32 - 1, "4294967295 is -1"),
    ("process/capabilities/ambient", "CAP_KILL", "must be an array"),
    ("process/capabilities/bounding/0", 3, "must be a string"),
    ("process/rlimits/0/type", "RLIMIT_FOO", "RLIMIT_NOFILE"),
    ("process/rlimits/0/type", "RLIMIT_OFILE", "must be one of"),
    ("process/rlimits/1/type", "RLIMIT_NOFILE", '"RLIMIT_NOFILE" appears twice'),
    ("process/rlimits/0/soft", DELETE, "is required"),
    ("process/rlimits/0/hard", 2**64, "uint64"),
    ("process/oomScoreAdj", "1", "int64"),
    ("process/scheduler/policy", "SCHED_FAST", "SCHED_OTHER"),
    ("process/scheduler/policy", DELETE, "is required"),
    ("process/scheduler/flags/0", "SCHED_FLAG_X", "must be one of"),
    ("process/scheduler/nice", 2**31, "int32"),
    ("process/ioPriority/class", "IOPRIO_CLASS_NONE", "IOPRIO_CLASS_RT"),
    ("process/ioPriority/class", DELETE, "is required"),
    ("process/ioPriority/priority", 8, "0..7"),
    ("process/ioPriority/priority", -1, "0..7"),
    ("process/execCPUAffinity/final", "all", "CPU list"),
    ("hooks/prestart/0/path", "hook", "absolute path"),
    ("hooks/poststop/1/path", DELETE, "is required"),
    ("hooks/createRuntime/0/timeout", 0, "1.."),
    ("hooks/createRuntime/0/timeout", -3, "got -3"),
    ("hooks/startContainer", {}, "must be an array"),
    ("annotations", [], "must be an object"),
    ("annotations/", "x", "non-empty", 'annotations[""]'),
    ("annotations/com.x", 1, "must be a string, got 1", 'annotations["com.x"]'),
    ("linux", [], "must be an object"),
    ("linux/namespaces/0/type", "net", "must be one of"),
    ("linux/namespaces/0/type", DELETE, "is required"),
    ("linux/namespaces/1/type", "pid", '"pid" appears twice'),
    ("linux/namespaces/7/path", "netns/blue", "absolute path"),
    ("linux/uidMappings/0/containerID", DELETE, "is required"),
    ("linux/gidMappings/0/size", "1", "1..4294967295"),
    ("linux/uidMappings/0/size", 0, "1..4294967295 (how many ids the line maps), got 0"),
    ("linux/uidMappings/0/size", 2**32, "1..4294967295"),
    ("linux/uidMappings/0/hostID", 2**32 - 1, "4294967295 is -1"),
    ("linux/uidMappings/0/containerID", 2**32 - 1, "4294967295 is -1"),
    # the kernel's map_write: a range may not reach 4294967295 (first + size wraps a u32)
    ("linux/uidMappings/0/containerID", 2**32 - 32000, "the range from containerID "
     "4294935296 with size 32000 runs past 4294967294", "linux.uidMappings[0].size"),
    ("linux/gidMappings/0/hostID", 2**32 - 32000, "hostID 4294935296", "linux.gidMappings[0].size"),
    ("linux/uidMappings/0", {"containerID": 1, "hostID": 0, "size": 2**32 - 1}, "runs past",
     "linux.uidMappings[0].size"),
    ("linux/uidMappings/1", {"containerID": 31999, "hostID": 50000, "size": 1},
     "its containerID range 31999..31999 overlaps that of linux.uidMappings[0] (0..31999)"),
    ("linux/gidMappings/1", {"containerID": 40000, "hostID": 0, "size": 1001},
     "its hostID range 0..1000 overlaps that of linux.gidMappings[0] (1000..32999)"),
    ("linux/uidMappings", [{"containerID": i, "hostID": 100000 + i, "size": 1} for i in range(341)],
     "has 341 entries; the kernel takes at most 340"),
    ("linux/timeOffsets/boottime/nanosecs", -1, "uint32"),
    ("linux/timeOffsets/monotonic", 5, "must be an object"),
    ("linux/devices/0/type", "x", "must be one of c, b, u, p"),
    ("linux/devices/0/type", DELETE, "is required"),
    ("linux/devices/0/major", DELETE, 'only type "p"'),
    ("linux/devices/0/minor", DELETE, "is required"),
    ("linux/devices/0/path", DELETE, "is required"),
    ("linux/devices/0/fileMode", 0o1777, "0..511"),
    ("linux/netDevices/eth1/name", 23, "must be a string", 'linux.netDevices["eth1"].name'),
    ("linux/netDevices/eth1", "ctr1", "must be an object", 'linux.netDevices["eth1"]'),
    ("linux/rootfsPropagation", "foo", "must be one of shared"),
    ("linux/resources/devices/0/allow", DELETE, "is required"),
    ("linux/resources/devices/1/access", "rx", "r, w and m"),
    ("linux/resources/devices/1/access", "", 'r, w and m, got ""'),
    ("linux/resources/devices/1/major", -1, "0..4095"),
    ("linux/resources/devices/1/minor", -5, "0..1048575"),
    ("linux/devices/0/major", -1, "0..4095"),
    ("linux/devices/0/major", 2**40, "0..4095"),
    ("linux/devices/0/minor", 2**20, "0..1048575"),
    ("linux/cgroupsPath", "/a\0b", "NUL"),
    ("hooks/prestart/0/path", "/bin/\0x", "NUL"),
    ("hooks/prestart/0/args/0", "a\0", "NUL"),
    ("hooks/prestart/0/env/0", "A=\0", "NUL"),
    ("mounts/0/source", "\0", "NUL"),
    ("mounts/0/destination", "/a\0", "NUL"),
    ("process/args/0", "\ud800", "lone surrogate"),
    ("process/env/0", "A=\udfff", "lone surrogate"),
    ("process/cwd", "/\0", "NUL"),
    ("mounts/0/destination", "/proc/sys", "inside /proc"),
    ("mounts/0/destination", "//proc/../proc/./sys/kernel", "inside /proc"),
    ("linux/resources/devices/1/type", "u", "one of a, c, b"),
    ("linux/resources/memory/limit", 2**63, "int64"),
    ("linux/resources/memory/swappiness", -1, "uint64"),
    ("linux/resources/cpu/quota", "max", "int64"),
    ("linux/resources/pids", {}, "is required", "linux.resources.pids.limit"),
    ("linux/resources/blockIO/weight", 65536, "uint16"),
    ("linux/resources/blockIO/weightDevice/1", {"major": 8, "minor": 1},
     "needs at least one of weight, leafWeight"),
    ("linux/resources/blockIO/throttleReadBpsDevice/0/rate", DELETE, "is required"),
    ("linux/resources/hugepageLimits/0/pageSize", "2mb", "64KB, 2MB or 1GB"),
    ("linux/resources/hugepageLimits/0/pageSize", "02MB", 'got "02MB"'),
    ("linux/resources/hugepageLimits/0/limit", DELETE, "is required"),
    ("linux/resources/network/priorities/0/name", DELETE, "is required"),
    ("linux/resources/rdma/mlx4_0", {}, "hcaHandles, hcaObjects", 'linux.resources.rdma["mlx4_0"]'),
    ("linux/resources/unified/io.weight", 10,
     "must be a string, got 10", 'linux.resources.unified["io.weight"]'),
    ("linux/intelRdt/memBwSchema", "L3:0=1", "must start with MB:"),
    ("linux/intelRdt/memBwSchema", "MB:0=20\nMB:1=7", "newline"),
    ("linux/intelRdt/schemata/0", "L2:0=f\n", "newline"),
    ("linux/seccomp/defaultAction", DELETE, "is required"),
    ("linux/seccomp/defaultAction", "SCMP_ACT_BOGUS", "must be one of"),
    ("linux/seccomp/defaultAction", "SCMP_ACT_KILL",
     "defaultAction SCMP_ACT_KILL cannot return an errno", "linux.seccomp.defaultErrnoRet"),
    ("linux/seccomp/listenerPath", DELETE,
     "must not be set without listenerPath", "linux.seccomp.listenerMetadata"),
    ("linux/seccomp/architectures/0", "SCMP_ARCH_Z80", "must be one of"),
    ("linux/seccomp/flags/0", "TSYNC", "must be one of"),
    ("linux/seccomp/syscalls/0/names", [], "at least one entry"),
    ("linux/seccomp/syscalls/0/names", DELETE, "is required"),
    ("linux/seccomp/syscalls/0/action", "SCMP_ACT_PANIC", "must be one of"),
    ("linux/seccomp/syscalls/0/action", DELETE, "is required"),
    ("linux/seccomp/syscalls/1/action", "SCMP_ACT_LOG",
     "action SCMP_ACT_LOG cannot return an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE can)",
     "linux.seccomp.syscalls[1].errnoRet"),
    ("linux/seccomp/syscalls/1/errnoRet", -1, "uint32"),
    ("linux/seccomp/syscalls/1/args/0/op", "SCMP_CMP_IN", "SCMP_CMP_NE"),
    ("linux/seccomp/syscalls/1/args/0/op", DELETE, "is required"),
    ("linux/seccomp/syscalls/1/args/0/index", DELETE, "is required"),
    ("linux/seccomp/syscalls/1/args/1/value", 2**64, "uint64"),
    ("linux/sysctl/kernel.shmmax", 5, "must be a string", 'linux.sysctl["kernel.shmmax"]'),
    ('linux/sysctl/a\nb"', 5, "must be a string", 'linux.sysctl["a\\nb\\""]'),
    ("linux/maskedPaths/0", "proc/kcore", "absolute path"),
    ("linux/readonlyPaths/0", "proc/sys", "absolute path"),
    ("linux/personality/domain", "LINUX64", "must be one of LINUX, LINUX32"),
    ("linux/personality/domain", DELETE, "is required"),
    ("linux/personality/flags", ["ADDR_NO_RANDOMIZE"], "must be empty"),
    ("linux/memoryPolicy/mode", "MPOL_FAST", "must be one of"),
    ("linux/memoryPolicy/mode", DELETE, "is required"),
    ("linux/memoryPolicy/flags/0", "MPOL_F_X", "must be one of"),
]


def json_path(path):
    """How errors name the place of a "/"-separated path: "a/0/b" -> "a[0].b"."""
    parts = [f"[{part}]" if part.isdigit() else f".{part}" for part in path.split("/")]
    return "".join(parts).lstrip(".")


@pytest.mark.parametrize("case", ERRORS, ids=[case[0] for case in ERRORS])
def test_spec_errors_name_the_json_path(case):
    where, value, words, *error_path = case
    if value is DELETE:
        doc = changed(EVERY_FIELD, where, delete=True)
    else:
        doc = changed(EVERY_FIELD, where, value)
    error = parse_error(doc)
    path = error_path[0] if error_path else json_path(where)
    assert error.path == path
    assert words in error.problem
    assert str(error) == f"{path}: {error.problem}"


def test_the_first_problem_is_reported():
    doc = changed(changed(EVERY_FIELD, "process/cwd", "rel"), "linux/devices/0/type", "x")
    assert parse_error(doc).path == "process.cwd"


def test_missing_process_user_means_root_but_user_needs_uid_and_gid():
    doc = changed(EVERY_FIELD, "process/user", delete=True)
    assert parse_config(doc).process.user.uid == 0
    assert parse_error(changed(EVERY_FIELD, "process/user", {})).path == "process.user.uid"


def test_pipe_devices_need_no_numbers_but_others_do():
    fifo = {"type": "p", "path": "/dev/fifo"}
    devices = parse_config(changed(EVERY_FIELD, "linux/devices", [fifo])).linux.devices
    assert devices[0].minor is None
    for kind in "cbu":
        error = parse_error(changed(EVERY_FIELD, "linux/devices", [dict(fifo, type=kind)]))
        assert error.path == "linux.devices[0].major"


@pytest.mark.parametrize("action", cfg.SECCOMP_ERRNO_ACTIONS)
def test_errno_ret_is_allowed_with_actions_that_return_errno(action):
    doc = changed(EVERY_FIELD, "linux/seccomp/syscalls/0",
                  {"names": ["x"], "action": action, "errnoRet": 0})
    assert parse_config(doc).linux.seccomp.syscalls[0].errno_ret == 0


@pytest.mark.parametrize("propagation", cfg.ROOTFS_PROPAGATIONS)
def test_rootfs_propagations(propagation):
    doc = changed(EVERY_FIELD, "linux/rootfsPropagation", propagation)
    assert parse_config(doc).linux.rootfs_propagation == propagation


def test_rlimit_names_map_to_the_kernel_numbers():
    assert len(cfg.RLIMITS) == 16
    for name, number in cfg.RLIMITS.items():
        assert number == getattr(resource, name, 10)
        resource.getrlimit(number)  # the spec: getrlimit on the type MUST succeed


def test_error_without_path_is_just_the_problem():
    error = parse_error(["not", "an", "object"])
    assert error.path == "" and str(error) == error.problem
    assert "must hold a JSON object, got an array" in error.problem
    assert isinstance(error, ValueError)


def test_long_values_are_shortened_in_messages():
    error = parse_error(changed(EVERY_FIELD, "process/cwd", "x" * 500))
    assert len(str(error)) < 120 and error.problem.endswith('xxxx...')


# --------------------------------------------------------------------------------------------
# Records are immutable


def test_records_cannot_be_changed():
    config = parse_config(EVERY_FIELD)
    with pytest.raises(AttributeError):
        config.hostname = "other"
    with pytest.raises(AttributeError):
        config.process.user.uid = 0
    with pytest.raises(AttributeError):
        del config.linux.seccomp
    with pytest.raises(AttributeError):
        config.process.new_field = 1
    with pytest.raises(TypeError):
        config.annotations["com.example.key"] = "other"
    with pytest.raises(TypeError):
        config.linux.resources.unified["memory.max"] = "1"
    assert isinstance(config.process.args, tuple)
    assert isinstance(config.linux.sysctl, MappingProxyType)


def test_records_compare_and_hash_by_value():
    first, second = parse_config(EVERY_FIELD), parse_config(copy.deepcopy(EVERY_FIELD))
    assert first == second and hash(first) == hash(second)
    assert first != parse_config(changed(EVERY_FIELD, "hostname", "other"))
    assert first.replace(hostname="other").hostname == "other" and first.hostname == "box"


def test_model_keeps_no_dicts():
    def walk(node):
        assert not isinstance(node, (dict, list)), repr(node)
        if isinstance(node, cfg.Frozen):
            for name in type(node).__slots__:
                walk(getattr(node, name))
        elif isinstance(node, (tuple, MappingProxyType)):
            for item in node.values() if isinstance(node, MappingProxyType) else node:
                walk(item)

    walk(parse_config(EVERY_FIELD))


# --------------------------------------------------------------------------------------------
# load_config: reading the bundle


def write_config(bundle, content):
    path = bundle / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return bundle


def test_load_config_reads_the_bundle(tmp_path):
    write_config(tmp_path, json.dumps(EVERY_FIELD, indent=4))
    assert load_config(str(tmp_path)) == parse_config(EVERY_FIELD)


def test_missing_config_json(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path))
    assert str(caught.value) == f"config.json not found in bundle {tmp_path}"


def test_unreadable_config_json(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ConfigError, match="cannot read .*config.json: Is a directory"):
        load_config(str(tmp_path))


@pytest.mark.parametrize(("content", "where"), [
    ('{\n  "ociVersion": "1.0.0",\n  "hostname": "a",,\n}', "line 3 column 19"),
    ('{"ociVersion": "1.0.0"} {}', "line 1 column 25"),
    ("", "line 1 column 1"),
    ('{"ociVersion": "1.0.0",\n "hostname": "a}', "line 2 column 14"),
])
def test_broken_json_is_rejected_with_its_position(tmp_path, content, where):
    write_config(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path))
    assert caught.value.path == ""
    assert caught.value.problem.startswith("config.json is not valid JSON: ")
    assert where in caught.value.problem


def test_invalid_utf8_is_rejected_with_its_position(tmp_path):
    write_config(tmp_path, b'{"ociVersion": "1.0.0",\n "hostname": "caf\xe9"}')
    with pytest.raises(ConfigError, match=r"not valid UTF-8 \(line 2 column 18\)"):
        load_config(str(tmp_path))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_rejected(tmp_path, constant):
    write_config(tmp_path, '{"ociVersion": "1.0.0", "zz-unknown": ' + constant + "}")
    with pytest.raises(ConfigError, match=f"{constant} is not a JSON value"):
        load_config(str(tmp_path))


@pytest.mark.parametrize(("content", "path"), [
    ('{"ociVersion": "1.0.0", "ociVersion": "1.0.0"}', "ociVersion"),
    ('{"ociVersion": "1.0.0", "process": {"cwd": "/", "args": ["a"], "cwd": "/x"}}',
     "process.cwd"),
    ('{"ociVersion": "1.0.0", "mounts": [{"destination": "/a"},'
     ' {"destination": "/b", "type": "x", "type": "y"}]}', "mounts[1].type"),
    ('{"ociVersion": "1.0.0", "zz-unknown": {"a": 1, "a": 2}}', "zz-unknown.a"),
    ('{"ociVersion": "1.0.0", "annotations": {"k": "1", "k": "1"}}', "annotations.k"),
])
def test_repeated_keys_are_rejected(tmp_path, content, path):
    write_config(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path))
    assert caught.value.path == path
    assert "appears twice in one object" in caught.value.problem


def test_reordered_keys_mean_the_same(tmp_path):
    write_config(tmp_path, json.dumps(dict(reversed(list(EVERY_FIELD.items())))))
    assert load_config(str(tmp_path)) == parse_config(EVERY_FIELD)


# --------------------------------------------------------------------------------------------
# Import cost: this module is on the path of every `pyrunc create`.


def test_import_pulls_in_no_heavy_modules():
    root = os.path.dirname(os.path.dirname(os.path.abspath(ociruntime.__file__)))
    code = "import sys, ociruntime.config; print(' '.join(sorted(sys.modules)))"
    # -S: without site, so only what the import itself brings in is counted.
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": root}, check=True)
    loaded = set(result.stdout.split())
    assert "ociruntime.config" in loaded
    heavy = {"json", "re", "enum", "typing", "dataclasses", "jsonschema", "inspect", "functools",
             "collections"}
    assert not loaded & heavy, sorted(loaded & heavy)


# --------------------------------------------------------------------------------------------
# Parts of a config on their own: exec --process FILE, update --resources FILE


def test_load_process_reads_a_process_object(tmp_path):
    path = tmp_path / "process.json"
    path.write_text(json.dumps(EVERY_FIELD["process"]))
    assert load_process(str(path)) == parse_config(EVERY_FIELD).process


@pytest.mark.parametrize(("content", "error"), [
    ('{"args": ["sh"], "cwd": "tmp"}', 'process.cwd: must be an absolute path, got "tmp"'),
    ('{"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0, "uid": 1}}',
     "process.user.uid: appears twice in one object (keys must be unique)"),
    ('{"args": ["sh"],', "is not valid JSON: Expecting property name"),
])
def test_load_process_errors_name_the_file_and_path(tmp_path, content, error):
    path = tmp_path / "process.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_process(str(path))
    assert error in str(caught.value)
    if "JSON:" in error:
        assert str(caught.value).startswith(f"{path} is not valid JSON")


def test_missing_process_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*nope.json: No such file"):
        load_process(str(tmp_path / "nope.json"))


def test_resources_on_their_own():
    resources = EVERY_FIELD["linux"]["resources"]
    expected = parse_config(EVERY_FIELD).linux.resources
    assert cfg.load_resources(json.dumps(resources).encode()) == expected
    error = parse_error_of(cfg.parse_resources, {"pids": {}}, "linux.resources")
    assert error.path == "linux.resources.pids.limit"
    with pytest.raises(ConfigError, match="the resources JSON is not valid JSON"):
        cfg.load_resources(b"{")


def parse_error_of(parse, *args):
    with pytest.raises(ConfigError) as caught:
        parse(*args)
    return caught.value
