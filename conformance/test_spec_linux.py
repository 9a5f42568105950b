"""runtime-linux.md and config-linux.md: file descriptors, /dev, namespaces, masked and
read-only paths, observed from inside (busybox) or from outside (/proc/PID/ns)."""

import os
import subprocess

from pyrunc_testlib import assert_nothing_left


def test_only_stdio_fds_are_open(runtime, bundle):
    # runtime-linux.md "File descriptors": by default only 0, 1, 2 stay open
    out = runtime.sh(bundle, "ls /proc/self/fd")
    # ls itself holds one fd open on the directory it lists
    assert len(set(out.split()) - {"0", "1", "2"}) == 1, out


def test_dev_symlinks(runtime, bundle):
    # runtime-linux.md "Dev symbolic links": /dev/fd, stdin, stdout, stderr
    out = runtime.sh(bundle, "for l in fd stdin stdout stderr; do readlink /dev/$l; done")
    assert out.split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                           "/proc/self/fd/2"]


def test_default_devices(runtime, bundle):
    # config-linux.md "Default Devices": null, zero, full, random, urandom, tty; ptmx
    out = runtime.sh(bundle, "for d in null zero full random urandom tty; do "
                             "stat -c '%n %F %t:%T' /dev/$d; done; readlink /dev/ptmx")
    lines = out.splitlines()
    expected = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7",
                "/dev/random": "1:8", "/dev/urandom": "1:9", "/dev/tty": "5:0"}
    for line in lines[:6]:
        name, kind, numbers = line.split(" ", 1)[0], line.split()[1:-1], line.split()[-1]
        assert kind == ["character", "special", "file"], line
        major, minor = (int(x, 16) for x in numbers.split(":"))
        assert f"{major}:{minor}" == expected[name], line
    assert lines[6] == "pts/ptmx"


def test_default_filesystems(runtime, bundle):
    # config-linux.md "Default Filesystems": /proc, /sys, /dev/pts, /dev/shm
    out = runtime.sh(bundle, "cat /proc/self/mounts")
    fstypes = {line.split()[1]: line.split()[2] for line in out.splitlines()}
    assert fstypes["/proc"] == "proc"
    assert fstypes["/sys"] == "sysfs"
    assert fstypes["/dev/pts"] == "devpts"
    assert fstypes["/dev/shm"] == "tmpfs"


def ns_inode(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_listed_namespaces_are_new_and_unlisted_are_inherited(runtime, bundle):
    # config-linux.md "namespaces": an entry without path creates a namespace; a type not
    # listed is inherited from the runtime
    bundle.linux["namespaces"] = [{"type": t} for t in ("pid", "mount", "ipc", "uts")]
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]
    for name in ("pid", "mnt", "ipc", "uts"):
        assert ns_inode(pid, name) != ns_inode("self", name), name
    assert ns_inode(pid, "net") == ns_inode("self", "net")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_namespace_path_is_joined_and_wrong_type_is_an_error(runtime, bundle):
    # config-linux.md "namespaces": the process MUST join the namespace at path; a path that
    # is not a namespace of that type MUST be an error
    first = runtime.create(bundle).cid
    first_pid = runtime.state(first)["pid"]
    netns = f"/proc/{first_pid}/ns/net"
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "network"] + [
        {"type": "network", "path": netns}]
    second = runtime.create(bundle).cid
    assert ns_inode(runtime.state(second)["pid"], "net") == ns_inode(first_pid, "net")
    runtime.delete(second, "--force")
    bundle.linux["namespaces"][-1] = {"type": "ipc", "path": netns}
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"][:-1]
                                  if ns["type"] != "ipc"] + [bundle.linux["namespaces"][-1]]
    bad = runtime.create(bundle, check=False)
    assert bad.returncode != 0
    assert_nothing_left(runtime, bundle, bad.cid)
    runtime.delete(first, "--force")


def test_duplicate_namespace_type_is_an_error(runtime, bundle):
    # config-linux.md "namespaces": a type given twice MUST be an error
    bundle.linux["namespaces"].append({"type": "pid"})
    result = runtime.create(bundle, check=False)
    assert result.returncode != 0
    assert_nothing_left(runtime, bundle, result.cid)


def test_masked_and_readonly_paths(runtime, bundle):
    # config-linux.md "maskedPaths" / "readonlyPaths"
    bundle.linux["maskedPaths"] = ["/proc/kcore", "/etc"]
    bundle.linux["readonlyPaths"] = ["/proc/sys"]
    out = runtime.sh(bundle, "{ echo kcore=$(cat /proc/kcore | wc -c); "
                             "echo etc=$(ls -A /etc | wc -l); "
                             "echo 1 > /proc/sys/kernel/domainname; echo rc=$?; } 2>&1")
    assert "kcore=0\n" in out and "etc=0\n" in out, out
    assert "rc=1" in out and "Read-only" in out, out


def test_uid_mappings(runtime, bundle):
    # config-linux.md "User namespace mappings": they become the user namespace's maps
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    out = runtime.sh(bundle, "cat /proc/self/uid_map /proc/self/gid_map")
    assert [line.split() for line in out.splitlines()] == [["0", "100000", "65536"]] * 2


def test_sysctl(runtime, bundle):
    # config-linux.md "sysctl": the parameters are set for the container
    bundle.linux["sysctl"] = {"kernel.domainname": "via-sysctl"}
    assert runtime.sh(bundle, "cat /proc/sys/kernel/domainname") == "via-sysctl\n"


def test_unlisted_mount_namespace_is_the_runtimes(runtime, bundle):
    # config-linux.md "namespaces": a type not listed (here: mount) MUST be inherited from
    # the runtime.  The runtime runs in a private mount namespace of the test's (`unshare
    # -m`), so the container's mounts land there, not in the host's; after `run` (which
    # deletes) none of them may be left in it.
    bundle.linux["namespaces"] = [{"type": "pid"}, {"type": "uts"}]
    bundle.sh("readlink /proc/self/ns/mnt; echo pid=$$; cat /etc/hostname 2>/dev/null; "
              "test -c /dev/null && echo dev-ok")
    bundle.write()
    cid = runtime.new_id()
    # the rootfs is a mount point before create (as an engine's overlay would be): that
    # one mount must survive delete, every mount the container made must not
    script = ('mount --bind "$2/rootfs" "$2/rootfs" || exit 9; readlink /proc/self/ns/mnt; '
              '"$0" --root "$1" run --bundle "$2" "$3"; echo rc=$?; '
              'echo left=$(grep -c " $2/" /proc/self/mountinfo)')
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                             runtime.binary, runtime.root, bundle.path, cid],
                            capture_output=True, text=True, timeout=60, check=False)
    lines = result.stdout.splitlines()
    assert lines[0] == lines[1], result  # the container's mount ns is the runtime's
    assert lines[0] != os.readlink("/proc/self/ns/mnt")
    assert "pid=1" in lines and "dev-ok" in lines, result
    assert lines[-2:] == ["rc=0", "left=1"], result
    assert_nothing_left(runtime, bundle, cid)
