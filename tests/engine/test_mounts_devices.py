"""Mounts an engine asks for (recursive attributes, nosymfollow, idmapped mounts, tmpcopyup),
linux.devices and linux.sysctl, observed from inside real containers."""

import os

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left, mount, parse_mountinfo

USERNS_MAPS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


def entries_at(mountinfo_text, mountpoint):
    return [m for m in parse_mountinfo(mountinfo_text) if m["mountpoint"] == mountpoint]


def host_tree(scratch, name):
    """A host directory with a tmpfs submount "sub" (detached at teardown)."""
    src = os.path.join(scratch.path, name)
    os.makedirs(os.path.join(src, "sub"))
    mount("tmpfs", os.path.join(src, "sub"), "tmpfs", 0, "mode=755")
    with open(os.path.join(src, "sub", "file"), "w") as f:
        f.write("hello\n")
    return src


def use_userns(bundle, *mountpoints):
    """A user namespace; its root cannot create mount points in the host-owned rootfs, so
    they are made here."""
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux.update(USERNS_MAPS)
    for point in mountpoints:
        os.makedirs(os.path.join(bundle.rootfs, point.lstrip("/")), exist_ok=True)


# --- recursive attributes -----------------------------------------------------------------


def test_rro_and_friends_reach_submounts(runtime, bundle, scratch):
    src = host_tree(scratch, "tree")
    bundle.mount("/rec", "bind", src, ["rbind", "rro", "rnosuid", "rnoexec", "rnodev"])
    bundle.mount("/plain", "bind", src, ["rbind"])
    out = runtime.sh(bundle, "cat /proc/self/mountinfo; echo ===; "
                             "touch /rec/sub/new 2>/dev/null && echo rec-writable; "
                             "touch /plain/sub/new && echo plain-writable")
    info, _, tail = out.partition("===")
    for point in ("/rec", "/rec/sub"):
        (entry,) = entries_at(info, point)
        for flag in ("ro", "nosuid", "noexec", "nodev"):
            assert flag in entry["options"], (point, entry["line"])
    (plain_sub,) = entries_at(info, "/plain/sub")
    assert "rw" in plain_sub["options"]
    assert "rec-writable" not in tail and "plain-writable" in tail
    # the host's own mount is untouched
    assert not os.statvfs(os.path.join(src, "sub")).f_flag & os.ST_RDONLY


def test_recursive_atime_and_rrw(runtime, bundle, scratch):
    src = host_tree(scratch, "tree")
    bundle.mount("/a", "bind", src, ["rbind", "ro", "rnoatime", "rrw"])
    out = runtime.sh(bundle, "cat /proc/self/mountinfo")
    for point in ("/a", "/a/sub"):
        (entry,) = entries_at(out, point)
        assert "noatime" in entry["options"] and "rw" in entry["options"], entry["line"]


# --- nosymfollow --------------------------------------------------------------------------


def test_nosymfollow_refuses_symlinks(runtime, bundle, scratch):
    src = host_tree(scratch, "links")
    os.symlink("sub/file", os.path.join(src, "link"))
    os.symlink("file", os.path.join(src, "sub", "link"))
    bundle.mount("/nf", "bind", src, ["rbind", "nosymfollow"])
    bundle.mount("/rnf", "bind", src, ["rbind", "rnosymfollow"])
    bundle.mount("/ok", "bind", src, ["rbind"])
    out = runtime.sh(bundle, "cat /nf/link 2>&1; echo nf=$?; cat /nf/sub/link; "
                             "cat /rnf/sub/link 2>&1; echo rnf=$?; cat /ok/link; "
                             "readlink /nf/link; grep ' /nf ' /proc/self/mountinfo")
    assert "nf=1" in out and "rnf=1" in out
    assert "ymbolic link" in out  # busybox: "Too many levels of symbolic links" (ELOOP)
    assert out.count("hello") == 2  # /nf/sub/link (not recursive) and /ok/link
    assert "sub/file" in out
    assert "nosymfollow" in out.splitlines()[-1]


# --- idmapped mounts -----------------------------------------------------------------------


def owned_tree(scratch):
    src = os.path.join(scratch.path, "owned")
    os.mkdir(src)
    for name, owner in (("root", (0, 0)), ("five", (5, 7))):
        path = os.path.join(src, name)
        with open(path, "w") as f:
            f.write(name)
        os.chown(path, *owner)
    return src


def test_idmap_with_the_mounts_own_mappings(runtime, bundle, scratch):
    src = owned_tree(scratch)
    entry = bundle.mount("/idm", "bind", src, ["bind", "idmap"])
    entry["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 100}]
    entry["gidMappings"] = [{"containerID": 0, "hostID": 2000, "size": 100}]
    bundle.mount("/raw", "bind", src, ["bind"])
    out = runtime.sh(bundle, "stat -c '%n %u %g' /idm/root /idm/five /raw/root /raw/five")
    assert out.split("\n")[:4] == ["/idm/root 1000 2000", "/idm/five 1005 2007",
                                   "/raw/root 0 0", "/raw/five 5 7"]
    assert os.stat(os.path.join(src, "five")).st_uid == 5  # nothing chowned on the host


def test_idmap_takes_the_containers_user_namespace_maps(runtime, bundle, scratch):
    src = owned_tree(scratch)
    use_userns(bundle, "/idm", "/raw")
    bundle.mount("/idm", "bind", src, ["bind", "idmap"])
    bundle.mount("/raw", "bind", src, ["bind"])
    out = runtime.sh(bundle, "stat -c '%n %u %g' /idm/root /idm/five /raw/root")
    assert out.split("\n")[:3] == ["/idm/root 0 0", "/idm/five 5 7", "/raw/root 65534 65534"]


def test_ridmap_maps_submounts_and_idmap_does_not(runtime, bundle, scratch):
    src = host_tree(scratch, "tree")
    with open(os.path.join(src, "top"), "w") as f:
        f.write("top")
    maps = {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]}
    bundle.mount("/one", "bind", src, ["rbind", "idmap"]).update(maps)
    bundle.mount("/all", "bind", src, ["rbind", "ridmap"]).update(maps)
    out = runtime.sh(bundle, "stat -c '%n %u' /one/top /one/sub/file /all/top /all/sub/file")
    assert out.splitlines() == ["/one/top 1000", "/one/sub/file 0", "/all/top 1000",
                                "/all/sub/file 1000"]


def test_tmpcopyup_in_a_user_namespace(runtime, bundle):
    data = os.path.join(bundle.rootfs, "srv")
    os.makedirs(data)
    with open(os.path.join(data, "mine"), "w") as f:
        f.write("mapped\n")
    os.chown(os.path.join(data, "mine"), 100000 + 5, 100000 + 6)
    use_userns(bundle)
    bundle.mount("/srv", "tmpfs", "tmpfs", ["tmpcopyup"])
    out = runtime.sh(bundle, "cat /srv/mine; stat -c '%u %g' /srv/mine")
    assert out.splitlines() == ["mapped", "5 6"]


def test_idmap_without_any_mapping_is_an_error(runtime, bundle, scratch):
    src = owned_tree(scratch)
    bundle.mount("/idm", "bind", src, ["bind", "idmap"])
    index = len(bundle.config["mounts"]) - 1
    result = runtime.create(bundle, check=False)
    assert_error(result, f"mounts[{index}]", "user namespace")
    assert_nothing_left(runtime, bundle, result.cid)


# --- tmpcopyup -------------------------------------------------------------------------------


def test_tmpcopyup_copies_what_it_covers(runtime, bundle):
    data = os.path.join(bundle.rootfs, "srv", "data")
    os.makedirs(os.path.join(data, "nested"))
    with open(os.path.join(data, "nested", "f"), "w") as f:
        f.write("copied\n")
    os.chmod(os.path.join(data, "nested", "f"), 0o604)
    os.chown(os.path.join(data, "nested", "f"), 3, 4)
    os.symlink("nested/f", os.path.join(data, "link"))
    bundle.mount("/srv/data", "tmpfs", "tmpfs", ["tmpcopyup", "nosuid"])
    out = runtime.sh(bundle, "cat /srv/data/link; stat -c '%a %u %g' /srv/data/nested/f; "
                             "echo new > /srv/data/added && cat /srv/data/added; "
                             "grep ' /srv/data ' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[:3] == ["copied", "604 3 4", "new"], out
    assert " - tmpfs " in lines[3]
    assert not os.path.exists(os.path.join(data, "added"))  # the image is untouched


# --- devices ---------------------------------------------------------------------------------


def test_devices_are_created_with_mode_and_owner(runtime, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 1, "gid": 2},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
        {"path": "/dev/mypipe", "type": "p", "fileMode": 0o600},
        {"path": "/dev/loopx", "type": "b", "major": 7, "minor": 99, "fileMode": 0o660},
    ]
    out = runtime.sh(bundle, "ls -l /dev/fuse; stat -c '%F %t %T %a %u %g' /dev/fuse "
                             "/dev/net/tun /dev/mypipe /dev/loopx")
    lines = out.splitlines()
    assert lines[0].startswith("crw-r-----") and "10, 229" in lines[0]
    assert lines[1:] == ["character special file a e5 640 1 2",
                         "character special file a c8 666 0 0",
                         "fifo 0 0 600 0 0",
                         "block special file 7 63 660 0 0"]


def test_a_mismatching_file_at_a_device_path_is_an_error(runtime, bundle):
    # /dev is a tmpfs in the default config: the file goes where the image shows through
    with open(os.path.join(bundle.rootfs, "etc", "fuse"), "w") as f:
        f.write("not a device")
    bundle.linux["devices"] = [{"path": "/etc/fuse", "type": "c", "major": 10, "minor": 229}]
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.devices[0]", "/etc/fuse", "already exists")
    assert_nothing_left(runtime, bundle, result.cid)


def test_devices_in_a_user_namespace_are_the_hosts_nodes(runtime, bundle):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the host has no /dev/fuse")
    use_userns(bundle)
    bundle.linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    out = runtime.sh(bundle, "stat -c '%F %t %T' /dev/fuse; grep ' /dev/fuse ' "
                             "/proc/self/mountinfo | wc -l")
    assert out.splitlines() == ["character special file a e5", "1"]


# --- sysctl ----------------------------------------------------------------------------------


def test_sysctls_are_written_in_the_containers_namespaces(runtime, bundle):
    with open("/proc/sys/net/core/somaxconn") as f:
        host_somaxconn = f.read()
    with open("/proc/sys/kernel/shmmax") as f:
        host_shmmax = f.read()
    bundle.linux["sysctl"] = {"net.core.somaxconn": "1234", "kernel.shmmax": "123456789",
                              "net/ipv4/ip_forward": "1"}
    out = runtime.sh(bundle, "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmax "
                             "/proc/sys/net/ipv4/ip_forward")
    assert out.split() == ["1234", "123456789", "1"]
    with open("/proc/sys/net/core/somaxconn") as f:
        assert f.read() == host_somaxconn
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_shmmax


def test_sysctl_in_a_user_namespace(runtime, bundle):
    use_userns(bundle)
    bundle.linux["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "80"}
    out = runtime.sh(bundle, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert out.split() == ["80"]


@pytest.mark.parametrize("key, drop, needle", [
    ("kernel.panic", None, "namespace"),
    ("vm.swappiness", None, "namespace"),
    ("kernel.hostname", None, "hostname"),
    ("net.core.somaxconn", "network", "network namespace"),
    ("kernel.shmmax", "ipc", "ipc namespace"),
    ("fs.mqueue.msg_max", "ipc", "ipc namespace"),
])
def test_sysctls_that_would_change_the_host_are_refused(runtime, bundle, key, drop, needle):
    if drop:
        bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                      if ns["type"] != drop]
    bundle.linux["sysctl"] = {key: "1"}
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.sysctl", key, needle)
    assert_nothing_left(runtime, bundle, result.cid)
