"""The container's filesystem: mounts (order, bind/rbind, flags, data, propagation,
relative destinations), the read-only root, default devices and /dev links, masked and
read-only paths, rootfsPropagation, --no-pivot, and symlinks that try to leave the rootfs.
Mostly observed through the container's own /proc/self/mountinfo."""

import os
import shutil
import subprocess
import tempfile

import pytest

from pyrunc_testlib import (
    MS_BIND,
    MS_REC,
    MS_SHARED,
    TIMEOUT,
    assert_error,
    assert_nothing_left,
    mount,
    mounts_under,
    parse_mountinfo,
    read_mountinfo,
)

MOUNTINFO = "cat /proc/self/mountinfo"


def container_mounts(runtime, bundle, before="", *flags):
    """The container program's mountinfo, after running the shell code `before`."""
    script = f"{before}; {MOUNTINFO}" if before else MOUNTINFO
    return parse_mountinfo(runtime.sh(bundle, script, *flags))


def at(mounts, mountpoint):
    """The entries mounted at mountpoint, in mount order (the last one is on top)."""
    found = [m for m in mounts if m["mountpoint"] == mountpoint]
    assert found, f"nothing mounted at {mountpoint}: {[m['mountpoint'] for m in mounts]}"
    return found


def propagation(entry):
    """The propagation fields of a mountinfo entry without their numbers."""
    return sorted(field.split(":")[0] for field in entry["optional"])


# --- mounts ------------------------------------------------------------------------------------


def test_mounts_in_order_later_on_top(runtime, bundle):
    bundle.mount("/mnt/stack", "tmpfs", "first", ["size=1m"])
    bundle.mount("/mnt/stack", "tmpfs", "second", ["size=2m"])
    mounts = container_mounts(runtime, bundle)
    first, second = at(mounts, "/mnt/stack")
    assert (first["source"], second["source"]) == ("first", "second")
    assert second["parent"] == first["id"]
    assert "size=1024k" in first["super_options"] and "size=2048k" in second["super_options"]


def test_bind_with_bundle_relative_source(runtime, bundle):
    os.mkdir(os.path.join(bundle.path, "data"))
    with open(os.path.join(bundle.path, "data", "hello.txt"), "w") as f:
        f.write("from the bundle\n")
    bundle.mount("/data", "none", "data", ["bind", "ro"])
    assert runtime.sh(bundle, "cat /data/hello.txt") == "from the bundle\n"


def test_a_bind_source_is_looked_up_once_and_mounted_from_that_handle(runtime, bundle,
                                                                      scratch):
    """The source of a bind is opened once (O_PATH) and its type, the /proc rule and the
    mount all use that handle: a path walked again for each could be swapped in between
    (a symlink planted after the check).  strace shows every syscall naming the path."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace(1) is needed to see the syscalls that name the source")
    src = os.path.join(scratch.path, f"bind-source-{os.urandom(4).hex()}")
    os.mkdir(src)
    with open(os.path.join(src, "f"), "w") as f:
        f.write("seen\n")
    bundle.mount("/data", "none", src, ["bind", "ro"])
    bundle.sh("cat /data/f")
    bundle.write()
    cid = runtime.new_id()
    trace = os.path.join(scratch.path, "trace")
    done = subprocess.run(
        [strace, "-f", "-qq", "-s", "4096", "-o", trace, "-e", "trace=%file,mount",
         runtime.binary, "--root", runtime.root, "run", "--bundle", bundle.path, cid],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    runtime.delete(cid, "--force", check=False)
    assert done.returncode == 0 and done.stdout == "seen\n", (done.returncode, done.stderr)
    with open(trace) as f:
        naming = [line for line in f if f'"{src}"' in line]
    assert len(naming) == 1 and "O_PATH" in naming[0], naming
    with open(trace) as f:
        mounts = [line for line in f if "mount(" in line and "MS_BIND" in line
                  and "/proc/self/fd/" in line.split(",")[0]]
    assert mounts, "no bind mounted from a handle"


def test_bind_versus_rbind(runtime, bundle, scratch):
    src = os.path.join(scratch.path, "src")
    os.makedirs(os.path.join(src, "sub"))
    with open(os.path.join(src, "top.txt"), "w") as f:
        f.write("top")
    mount("tmpfs", os.path.join(src, "sub"), "tmpfs", 0, "size=64k")
    with open(os.path.join(src, "sub", "sub.txt"), "w") as f:
        f.write("sub")
    bundle.mount("/bind", "none", src, ["bind"])
    bundle.mount("/rbind", "none", src, ["rbind"])
    out = runtime.sh(bundle, "ls /bind /bind/sub; echo --; ls /rbind /rbind/sub")
    bind, rbind = out.split("--\n")
    assert "top.txt" in bind and "sub.txt" not in bind
    assert "top.txt" in rbind and "sub.txt" in rbind


def test_mount_flags(runtime, bundle, scratch):
    src = os.path.join(scratch.path, "flags-src")
    os.mkdir(src)
    bundle.mount("/fs", "tmpfs", "tmpfs", ["ro", "nosuid", "nodev", "noexec", "noatime"])
    bundle.mount("/bound", "none", src, ["bind", "ro", "nosuid", "nodev", "noexec"])
    bundle.mount("/plain", "tmpfs", "tmpfs", ["rw", "suid", "dev", "exec"])
    mounts = container_mounts(runtime, bundle)
    fs, bound, plain = at(mounts, "/fs")[-1], at(mounts, "/bound")[-1], at(mounts, "/plain")[-1]
    for flag in ("ro", "nosuid", "nodev", "noexec", "noatime"):
        assert flag in fs["options"], (flag, fs["line"])
    for flag in ("ro", "nosuid", "nodev", "noexec"):
        assert flag in bound["options"], (flag, bound["line"])
    assert "rw" in plain["options"]
    for flag in ("ro", "nosuid", "nodev", "noexec"):
        assert flag not in plain["options"], (flag, plain["line"])


def test_tmpfs_data_options(runtime, bundle):
    bundle.mount("/t", "tmpfs", "tmpfs", ["nosuid", "size=65536k", "mode=750"])
    out = runtime.sh(bundle, f"stat -c %a /t; {MOUNTINFO}")
    mode, _, rest = out.partition("\n")
    assert mode == "750"
    entry = at(parse_mountinfo(rest), "/t")[-1]
    assert "size=65536k" in entry["super_options"] and "mode=750" in entry["super_options"]


def test_relative_destination_is_under_root(runtime, bundle):
    bundle.mount("mnt2", "tmpfs", "reltmpfs", ["size=64k"])
    mounts = container_mounts(runtime, bundle)
    assert at(mounts, "/mnt2")[-1]["source"] == "reltmpfs"


@pytest.fixture
def shared_host_dir(scratch):
    """A host directory that is a shared mount (a bind of itself, made shared): a peer
    group for the container's mounts to be slaves of."""
    path = os.path.join(scratch.path, "shared")
    os.mkdir(path)
    mount(path, path, None, MS_BIND)
    mount(None, path, None, MS_SHARED)
    return path


def test_mount_propagation_options(runtime, bundle, shared_host_dir):
    bundle.mount("/p/shared", "tmpfs", "tmpfs", ["shared"])
    bundle.mount("/p/unbindable", "tmpfs", "tmpfs", ["unbindable"])
    bundle.mount("/p/private", "tmpfs", "tmpfs", ["private"])
    # binds of a host shared mount: slaves of it unless told otherwise
    bundle.mount("/p/inherited", "none", shared_host_dir, ["bind"])
    bundle.mount("/p/made-private", "none", shared_host_dir, ["bind", "private"])
    bundle.mount("/p/made-shared", "none", shared_host_dir, ["bind", "rshared"])
    mounts = container_mounts(runtime, bundle)
    assert propagation(at(mounts, "/p/shared")[-1]) == ["shared"]
    assert propagation(at(mounts, "/p/unbindable")[-1]) == ["unbindable"]
    assert propagation(at(mounts, "/p/private")[-1]) == []
    assert propagation(at(mounts, "/p/inherited")[-1]) == ["master"]
    assert propagation(at(mounts, "/p/made-private")[-1]) == []
    assert propagation(at(mounts, "/p/made-shared")[-1]) == ["master", "shared"]


# --- the root ----------------------------------------------------------------------------------


def test_readonly_root(runtime, bundle):
    bundle.config["root"]["readonly"] = True
    out = runtime.sh(bundle, f"touch /x 2>&1; echo rc=$?; echo --; "
                             f"{MOUNTINFO}")
    result, _, mountinfo = out.partition("--\n")
    assert "Read-only file system" in result and result.endswith("rc=1\n"), result
    assert "ro" in at(parse_mountinfo(mountinfo), "/")[-1]["options"]
    assert not os.path.exists(os.path.join(bundle.rootfs, "x"))


def test_writable_root(runtime, bundle):
    bundle.config["root"]["readonly"] = False
    runtime.sh(bundle, "echo written > /x")
    with open(os.path.join(bundle.rootfs, "x")) as f:
        assert f.read() == "written\n"


@pytest.mark.parametrize("value, expected", [
    ("shared", ["master", "shared"]),
    ("slave", ["master"]),
    ("private", []),
    ("unbindable", ["unbindable"]),
])
def test_rootfs_propagation(runtime, bundle, scratch, value, expected):
    # make the rootfs a shared mount on the host, so that each value is visible
    mount(bundle.rootfs, bundle.rootfs, None, MS_BIND | MS_REC)
    mount(None, bundle.rootfs, None, MS_SHARED)
    host_before = mounts_under(bundle.rootfs)
    bundle.linux["rootfsPropagation"] = value
    root = at(container_mounts(runtime, bundle), "/")[-1]
    assert propagation(root) == expected, root["line"]
    # and the container's mounts did not propagate back to the host
    assert mounts_under(bundle.rootfs) == host_before


def test_no_pivot(runtime, bundle):
    out = runtime.sh(bundle, "cat /etc/passwd; ls /bin/busybox; echo $$", "--no-pivot")
    assert out.splitlines() == ["root:x:0:0:root:/root:/bin/sh",
                                "nobody:x:65534:65534:nobody:/:/bin/false",
                                "/bin/busybox", "1"]


# --- /dev ---------------------------------------------------------------------------------------


def test_default_devices(runtime, bundle):
    names = ["null", "zero", "full", "random", "urandom", "tty"]
    out = runtime.sh(bundle, "stat -c '%n|%F|%t:%T' " + " ".join(f"/dev/{n}" for n in names))
    devices = {}
    for line in out.splitlines():
        name, kind, numbers = line.split("|")
        major, minor = (int(x, 16) for x in numbers.split(":"))
        devices[name] = (kind, major, minor)
    assert devices == {
        "/dev/null": ("character special file", 1, 3),
        "/dev/zero": ("character special file", 1, 5),
        "/dev/full": ("character special file", 1, 7),
        "/dev/random": ("character special file", 1, 8),
        "/dev/urandom": ("character special file", 1, 9),
        "/dev/tty": ("character special file", 5, 0),
    }


def test_default_devices_work(runtime, bundle):
    out = runtime.sh(bundle, "echo gone > /dev/null; head -c 4 /dev/zero | od -An -tx1; "
                             "head -c 16 /dev/urandom | wc -c; "
                             "echo x > /dev/full 2>/dev/null; echo full-rc=$?")
    assert out.split() == ["00", "00", "00", "00", "16", "full-rc=1"]


def test_dev_symlinks(runtime, bundle):
    out = runtime.sh(bundle, "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done")
    assert out.split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                           "/proc/self/fd/2", "pts/ptmx"]


# --- masked and read-only paths ---------------------------------------------------------------


def test_masked_paths(runtime, bundle):
    os.makedirs(os.path.join(bundle.rootfs, "var", "secret"))
    with open(os.path.join(bundle.rootfs, "var", "secret", "key"), "w") as f:
        f.write("hidden")
    with open(os.path.join(bundle.rootfs, "etc", "token"), "w") as f:
        f.write("hidden")
    bundle.linux["maskedPaths"] = ["/proc/kcore", "/var/secret", "/etc/token",
                                   "/does/not/exist"]
    out = runtime.sh(bundle, "echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); "
                             "echo token=$(cat /etc/token | wc -c); "
                             "echo dir=$(ls -A /var/secret | wc -l); "
                             "touch /var/secret/new 2>/dev/null; echo touch=$?; "
                             + MOUNTINFO)
    lines = out.splitlines()
    assert lines[:4] == ["kcore=0", "token=0", "dir=0", "touch=1"]
    secret = at(parse_mountinfo("\n".join(lines[4:])), "/var/secret")[-1]
    assert secret["fstype"] == "tmpfs" and "ro" in secret["options"], secret["line"]


def test_readonly_paths(runtime, bundle):
    bundle.config["root"]["readonly"] = False
    bundle.linux["readonlyPaths"] = ["/proc/sys", "/var", "/does/not/exist"]
    out = runtime.sh(bundle, "echo x 2>&1 > /proc/sys/kernel/hostname; echo sys=$?; "
                             "touch /var/new 2>&1; echo var=$?; "
                             "touch /tmp/new; echo tmp=$?")
    lines = out.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] == "sys=1", lines
    assert "Read-only file system" in lines[2] and lines[3] == "var=1", lines
    assert lines[4] == "tmp=0", lines


# --- symlinks and the host ------------------------------------------------------------------------


@pytest.mark.parametrize("target_in_rootfs", [True, False],
                         ids=["target-in-rootfs", "dangling-in-rootfs"])
def test_symlink_cannot_move_a_mount_onto_the_host(runtime, bundle, scratch,
                                                    target_in_rootfs):
    # a host directory whose path, taken inside the rootfs, is not under a default mount
    # (/dev, /proc, ...) so that it resolves to a plain directory of the image
    host_dir = tempfile.mkdtemp(prefix="pyrunc-it-host-dir-", dir="/tmp")
    scratch.add_finalizer(lambda: os.rmdir(host_dir))
    in_root = os.path.join(bundle.rootfs, host_dir.lstrip("/"))
    if target_in_rootfs:
        os.makedirs(in_root)
    os.symlink(host_dir, os.path.join(bundle.rootfs, "evil"))        # absolute
    os.symlink("../../../../../../../../.." + host_dir,
               os.path.join(bundle.rootfs, "evil2"))                  # relative, climbing
    bundle.mount("/evil/x", "tmpfs", "evil-tmpfs", ["size=64k"])
    bundle.mount("/evil2/y", "tmpfs", "evil2-tmpfs", ["size=64k"])
    bundle.sh(MOUNTINFO)
    result = runtime.run_container(bundle)
    assert os.listdir(host_dir) == [], "a mount point was made on the host"
    if target_in_rootfs:
        # the symlinks resolve inside the rootfs, and the mounts land there
        assert result.returncode == 0, result.stderr
        mounts = parse_mountinfo(result.stdout)
        assert at(mounts, host_dir + "/x")[-1]["source"] == "evil-tmpfs"
        assert at(mounts, host_dir + "/y")[-1]["source"] == "evil2-tmpfs"
        assert sorted(os.listdir(in_root)) == ["x", "y"]
    elif result.returncode == 0:
        # creating the missing directories inside the rootfs is fine too
        assert at(parse_mountinfo(result.stdout), host_dir + "/x")
    else:
        assert_error(result, "mounts[")
    assert_nothing_left(runtime, bundle, result.cid)


def test_proc_refuses_symlink_destination(runtime, bundle):
    os.mkdir(os.path.join(bundle.rootfs, "realproc"))
    os.symlink("realproc", os.path.join(bundle.rootfs, "linkproc"))
    bundle.config["mounts"].append({"destination": "/linkproc", "type": "proc",
                                    "source": "proc"})
    index = len(bundle.config["mounts"]) - 1
    result = runtime.run_container(bundle)
    assert_error(result, f"mounts[{index}]", "symlink")
    assert_nothing_left(runtime, bundle, result.cid)


def test_container_mounts_never_reach_the_host(runtime, bundle):
    bundle.mount("/extra", "tmpfs", "tmpfs", ["size=64k"])
    bundle.sh("echo ready; while :; do sleep 0.05; done")
    cid = runtime.create(bundle).cid
    bundle_path = os.path.realpath(bundle.path)

    def host_lines():
        return [m["line"] for m in read_mountinfo() if bundle_path in m["line"]]

    assert host_lines() == []
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    assert host_lines() == []
    # ...while the container does have them
    pid = runtime.state(cid)["pid"]
    inside = read_mountinfo(pid)
    assert at(inside, "/extra") and at(inside, "/proc")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)
