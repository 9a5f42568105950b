"""Namespaces: created when listed, shared with the host when not, joined by path; and
what lives in them (loopback, hostname, id maps, clock offsets, the cgroup view)."""

import os
import socket
import subprocess
import time

import pytest

from pyrunc_testlib import assert_nothing_left

ALL_TYPES = ("cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts")
PROC_NAME = {"cgroup": "cgroup", "ipc": "ipc", "mount": "mnt", "network": "net", "pid": "pid",
             "time": "time", "user": "user", "uts": "uts"}
PRINT_NS = "; ".join(f"echo {t} $(readlink /proc/self/ns/{PROC_NAME[t]})" for t in ALL_TYPES)


def host_ns(ns_type, pid="self"):
    return os.readlink(f"/proc/{pid}/ns/{PROC_NAME[ns_type]}")


def container_ns(runtime, bundle):
    """{type: 'net:[inode]'} as seen by the container program."""
    out = runtime.sh(bundle, PRINT_NS)
    return dict(line.split(" ", 1) for line in out.splitlines())


def set_namespaces(bundle, *types, **paths):
    bundle.linux["namespaces"] = [{"type": t} for t in types] + [
        {"type": t, "path": p} for t, p in paths.items()]
    if "uts" not in types and "uts" not in paths:
        # a hostname needs a uts namespace of the container's own (runc refuses it too)
        bundle.config.pop("hostname", None)
        bundle.config.pop("domainname", None)


def test_listed_namespaces_are_new_and_others_shared(runtime, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces")
    listed = ("pid", "network", "ipc", "uts", "mount", "cgroup", "time")
    set_namespaces(bundle, *listed)
    seen = container_ns(runtime, bundle)
    for ns_type in ALL_TYPES:
        if ns_type in listed:
            assert seen[ns_type] != host_ns(ns_type), f"{ns_type} namespace is the host's"
        else:
            assert seen[ns_type] == host_ns(ns_type), f"{ns_type} namespace is not the host's"


def test_unlisted_namespaces_are_the_hosts(runtime, bundle):
    set_namespaces(bundle, "mount")
    seen = container_ns(runtime, bundle)
    for ns_type in ALL_TYPES:
        if ns_type != "mount" and os.path.exists(f"/proc/self/ns/{PROC_NAME[ns_type]}"):
            assert seen[ns_type] == host_ns(ns_type), f"{ns_type} namespace is not the host's"
    assert seen["mount"] != host_ns("mount")


def test_pid_namespace_shows_only_container_processes(runtime, bundle):
    out = runtime.sh(bundle, "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n")
    pids = [int(x) for x in out.split()]
    assert pids[0] == 1
    # the shell (pid 1) and at most its pipeline (ls, grep, sort): none of the host's
    assert 1 in pids[1:] and len(pids[1:]) <= 4, pids


@pytest.fixture
def ns_holder(scratch):
    """A sleeping process in new network, ipc and uts namespaces (to be joined by path);
    killed at teardown."""
    proc = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "sleep", "600"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def stop():
        proc.kill()
        proc.wait()

    scratch.add_finalizer(stop)
    deadline = time.monotonic() + 10
    while host_ns("network", proc.pid) == host_ns("network"):  # until unshare has run
        assert time.monotonic() < deadline and proc.poll() is None, "unshare did not start"
        time.sleep(0.01)
    return proc


def test_join_namespaces_by_path(runtime, bundle, ns_holder):
    holder = {t: host_ns(t, ns_holder.pid) for t in ("network", "ipc", "uts")}
    bundle.config.pop("hostname", None)
    set_namespaces(bundle, "pid", "mount", "cgroup",
                   **{t: f"/proc/{ns_holder.pid}/ns/{PROC_NAME[t]}" for t in holder})
    seen = container_ns(runtime, bundle)
    for ns_type, ns in holder.items():
        assert seen[ns_type] == ns, f"did not join the {ns_type} namespace"
    # delete removed only what the container created: the joined namespaces live on
    assert ns_holder.poll() is None
    assert {t: host_ns(t, ns_holder.pid) for t in holder} == holder


def test_loopback_is_up_in_new_network_namespace(runtime, bundle):
    out = runtime.sh(bundle, "cat /sys/class/net/lo/flags; ls /sys/class/net; ip -o link")
    lines = out.splitlines()
    assert int(lines[0], 16) & 0x1, f"lo is down: flags {lines[0]}"  # IFF_UP
    assert lines[1] == "lo"  # the only device
    links = lines[2:]
    assert len(links) == 1 and links[0].split(":")[1].strip() == "lo", links
    assert "UP" in links[0].split("<")[1].split(">")[0].split(","), links


def test_hostname_and_domainname(runtime, bundle):
    host_name = socket.gethostname()
    with open("/proc/sys/kernel/domainname") as f:
        host_domain = f.read()
    bundle.config["hostname"] = "pyrunc-box"
    bundle.config["domainname"] = "example.test"
    out = runtime.sh(bundle, "hostname; cat /proc/sys/kernel/hostname "
                             "/proc/sys/kernel/domainname")
    assert out.split() == ["pyrunc-box", "pyrunc-box", "example.test"]
    assert socket.gethostname() == host_name
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read() == host_domain


def test_user_namespace_with_mappings(runtime, bundle):
    set_namespaces(bundle, "user", "pid", "network", "ipc", "uts", "mount", "cgroup")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    mapped = os.path.join(bundle.rootfs, "etc", "mapped")
    with open(mapped, "w") as f:
        f.write("x")
    os.chown(mapped, 100005, 200007)
    out = runtime.sh(bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
                             "stat -c '%u %g' /bin/busybox /etc/mapped; "
                             "readlink /proc/self/ns/user; "
                             "echo x > /dev/null && head -c 2 /dev/zero | wc -c")
    lines = out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "200000", "65536"]
    assert lines[2:4] == ["0", "0"]
    assert lines[4] == "65534 65534"  # owned by host root: not mapped, so the overflow id
    assert lines[5] == "5 7"
    assert lines[6] != host_ns("user")
    assert lines[7] == "2"  # the default devices work in a user namespace too



def test_user_namespace_with_more_bind_mounts_than_one_message_carries(runtime, bundle,
                                                                         scratch):
    """The bind sources of a container with a user namespace come from a helper over
    SCM_RIGHTS, at most 253 fds (SCM_MAX_FD) a message: 300 were "idmapped mounts:
    Invalid argument"."""
    set_namespaces(bundle, "user", "pid", "network", "ipc", "uts", "mount")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    source = os.path.join(scratch.path, "source")
    os.mkdir(source)
    with open(os.path.join(source, "file"), "w") as f:
        f.write("x")
    for n in range(300):
        os.mkdir(os.path.join(bundle.rootfs, "mnt", f"m{n}"))
        bundle.mount(f"/mnt/m{n}", "bind", source, ["bind", "ro"])
    out = runtime.sh(bundle, "cat /mnt/m0/file /mnt/m299/file; echo; "
                             "grep -c ' /mnt/m' /proc/mounts")
    assert out.splitlines() == ["xx", "300"]

def test_time_namespace_offsets(runtime, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces")
    year = 365 * 86400
    set_namespaces(bundle, "pid", "network", "ipc", "uts", "mount", "cgroup", "time")
    bundle.linux["timeOffsets"] = {"monotonic": {"secs": 7 * 86400, "nanosecs": 250},
                                   "boottime": {"secs": year, "nanosecs": 0}}
    out = runtime.sh(bundle, "cat /proc/self/timens_offsets /proc/uptime")
    lines = out.splitlines()
    offsets = {line.split()[0]: line.split()[1:] for line in lines[:-1]}
    assert offsets == {"monotonic": [str(7 * 86400), "250"], "boottime": [str(year), "0"]}
    uptime = float(lines[-1].split()[0])
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert uptime >= year and uptime < year + host_uptime + 1, uptime


def test_cgroup_namespace_shows_root_paths(runtime, bundle):
    # runc's default spec has no cgroup namespace: ask for one
    set_namespaces(bundle, "pid", "network", "ipc", "uts", "mount", "cgroup")
    out = runtime.sh(bundle, "cat /proc/self/cgroup")
    lines = out.splitlines()
    assert lines and all(line.split(":", 2)[2] == "/" for line in lines), lines


def test_without_cgroup_namespace_host_paths_show(runtime, bundle):
    set_namespaces(bundle, "pid", "network", "ipc", "uts", "mount")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    bundle.sh("cat /proc/self/cgroup")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    paths = {line.split(":", 2)[2] for line in result.stdout.splitlines()}
    assert paths and all(result.cid in path for path in paths), paths
    assert_nothing_left(runtime, bundle, result.cid)
