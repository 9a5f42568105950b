"""Device files swapped for symlinks: CVE-2025-31133 (/dev/null) and CVE-2025-52565
(/dev/console, /dev/pts).

- 2025-31133: runc masked paths by bind-mounting the container's /dev/null over them; an
  image whose /dev/null was a symlink to /proc/sys/kernel/core_pattern got that file bound
  instead (and writable).  Defences: rootfs.Rootfs.mask_paths binds the container's
  /dev/null as runc does, but opened inside the root without following any symlink and
  checked through that fd to be the 1:3 device, and create_default_devices refuses a
  default device path that is a symlink.
- 2025-52565: runc bind-mounted the pty onto /dev/console following a symlink the image
  planted there.  Defences: console.open_pty opens /dev/pts/ptmx with RESOLVE_NO_SYMLINKS
  and takes the peer with TIOCGPTPEER (no /dev/pts/N path), console.bind_console creates
  /dev/console itself without following symlinks and refuses anything but a regular file.
"""

import os
import select
import time

import pytest

import pyrunc_testlib as lib

CORE_PATTERN = "/proc/sys/kernel/core_pattern"


def read_host(path):
    with open(path) as f:
        return f.read()


def without_dev_tmpfs(bundle):
    """The config minus the tmpfs on /dev, so the image's own /dev is what the runtime
    works in (devpts and the other /dev submounts stay)."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]


def read_master(master, timeout=lib.TIMEOUT):
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last peer closed
            break
        if not data:
            break
        out += data
    return out.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.parametrize("target", [CORE_PATTERN, "../proc/sys/kernel/core_pattern"])
def test_dev_null_symlink_is_not_used_for_masking(runtime, bundle, target):
    """CVE-2025-31133.  Defence: create_default_devices refuses the planted symlink; were
    it kept, mask_paths would not follow it and refuse to mask.  Either way
    core_pattern stays masked/read-only and the host's value is untouched."""
    host_core = read_host(CORE_PATTERN)
    without_dev_tmpfs(bundle)
    os.symlink(target, os.path.join(bundle.rootfs, "dev", "null"))
    bundle.sh("stat -c '%F %t:%T' /proc/keys /dev/null; "
              "echo '|/tmp/pwn' > /proc/keys; "
              "echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern && echo WROTE; "
              "cat /proc/keys | wc -c")
    result = runtime.run_container(bundle)
    assert read_host(CORE_PATTERN) == host_core
    if result.returncode != 0:
        lib.assert_error(result, "/dev/null")
        return
    lines = result.stdout.splitlines()
    assert "WROTE" not in lines, result.stdout  # /proc/sys is read-only
    assert lines[0] == "character special file 1:3", result.stdout   # /proc/keys masked
    assert lines[1] == "character special file 1:3", result.stdout   # a real /dev/null
    assert lines[-1].strip() == "0", result.stdout


@pytest.mark.parametrize("how", ["file-in-the-image", "bind-of-a-host-file"])
def test_dev_null_that_is_no_device_is_not_used_for_masking(runtime, bundle, scratch, how):
    """CVE-2025-31133, the container's /dev/null a regular file (the image's, kept by
    mknod's EEXIST, or a volume bound there): mask_paths checks the 1:3 device through
    the fd it would bind, and refuses; the file is never bound over /proc/keys."""
    victim = os.path.join(scratch.path, "victim")
    with open(victim, "w") as f:
        f.write("host file\n")
    if how == "file-in-the-image":
        without_dev_tmpfs(bundle)
        with open(os.path.join(bundle.rootfs, "dev", "null"), "w") as f:
            f.write("image file\n")
    else:
        bundle.mount("/dev/null", "bind", victim, ["bind"])
    bundle.sh("cat /proc/keys")
    result = runtime.run_container(bundle)
    lib.assert_error(result, "maskedPaths", "/dev/null", "not the null device")
    lib.assert_nothing_left(runtime, bundle, result.cid)
    assert read_host(victim) == "host file\n"


def test_dev_null_symlink_in_a_user_namespace(runtime, bundle):
    """Defence: in a user namespace the default devices are bind mounts of the host's; a
    symlink planted at /dev/null is refused, not followed to bind over its target."""
    host_core = read_host(CORE_PATTERN)
    without_dev_tmpfs(bundle)
    dev = os.path.join(bundle.rootfs, "dev")
    os.symlink(CORE_PATTERN, os.path.join(dev, "null"))
    for name in ("pts", "shm", "mqueue"):
        os.mkdir(os.path.join(dev, name))
    os.chown(dev, 100000, 100000)  # the container's root may create the device files
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["type"] not in ("sysfs", "cgroup", "devpts", "mqueue")]
    bundle.linux.pop("resources", None)
    bundle.sh("stat -c '%F %t:%T' /dev/null /proc/keys")
    result = runtime.run_container(bundle)
    assert read_host(CORE_PATTERN) == host_core
    if result.returncode != 0:
        lib.assert_error(result, "/dev/null")
    else:
        assert result.stdout.splitlines() == ["character special file 1:3"] * 2, result.stdout


def _terminal_bundle(bundle, script):
    bundle.process["terminal"] = True
    bundle.sh(script)


CONSOLE_SCRIPT = ("readlink /proc/self/fd/0; stat -c '%F %t' /dev/console; "
                  "grep ' /dev/console ' /proc/self/mountinfo | cut -d' ' -f4,9-")


def _check_console(runtime, bundle, console_socket, victim=None):
    cs = console_socket()
    result = runtime.create(bundle, "--console-socket", cs.path, check=False)
    victim_before = read_host(victim) if victim else None
    if result.returncode != 0:
        lib.assert_error(result)
        assert "Traceback" not in result.stderr
        return None
    master = cs.wait()
    assert master is not None, cs.error
    runtime.start(result.cid)
    out = read_master(master)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1] == "character special file 88", out  # major 136: a pty peer
    # the one mount on /dev/console is the container's devpts, root /N: no host file
    root, fstype = lines[2].split()[:2]
    assert fstype == "devpts" and root.lstrip("/").isdigit(), out
    if victim:
        assert read_host(victim) == victim_before
    return lines


@pytest.mark.parametrize("target", [CORE_PATTERN, "/etc/passwd", "pts/0"])
def test_console_symlink_in_the_image(runtime, bundle, console_socket, target):
    """CVE-2025-52565.  Defence: console.bind_console opens /dev/console with
    RESOLVE_NO_SYMLINKS and requires a regular file: a planted symlink makes create fail
    with one line, or the console is a real pty; nothing the symlink names is bound."""
    without_dev_tmpfs(bundle)
    os.symlink(target, os.path.join(bundle.rootfs, "dev", "console"))
    _terminal_bundle(bundle, CONSOLE_SCRIPT)
    host_core = read_host(CORE_PATTERN)
    _check_console(runtime, bundle, console_socket)
    assert read_host(CORE_PATTERN) == host_core
    with open(os.path.join(bundle.rootfs, "etc", "passwd")) as f:
        assert "root:x:0:0" in f.read()


def test_console_symlink_in_a_bind_mounted_dev(runtime, bundle, console_socket, scratch):
    """CVE-2025-52565, volume variant: /dev is a host directory bind-mounted into the
    container whose console entry is a symlink to a host file.  Defence: as above; the
    host file is never the console and is untouched."""
    host_dev = os.path.join(scratch.path, "hostdev")
    os.makedirs(os.path.join(host_dev, "pts"))
    victim = os.path.join(scratch.path, "victim")
    with open(victim, "w") as f:
        f.write("host file\n")
    os.symlink(victim, os.path.join(host_dev, "console"))
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m.clear()
            m.update({"destination": "/dev", "type": "bind", "source": host_dev,
                      "options": ["rbind", "rw"]})
    _terminal_bundle(bundle, CONSOLE_SCRIPT)
    _check_console(runtime, bundle, console_socket, victim)
    assert read_host(victim) == "host file\n"
    assert os.path.islink(os.path.join(host_dev, "console"))


def test_ptmx_symlink_without_devpts(runtime, bundle, console_socket, scratch):
    """CVE-2025-52565, /dev/pts variant: no devpts mount, and the image's /dev/pts/ptmx is
    a symlink to a host-looking path.  Defence: console.open_pty opens ptmx with
    RESOLVE_NO_SYMLINKS and takes the peer by TIOCGPTPEER: create fails cleanly."""
    without_dev_tmpfs(bundle)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "devpts"]
    pts = os.path.join(bundle.rootfs, "dev", "pts")
    os.makedirs(pts)
    os.symlink("/dev/ptmx", os.path.join(pts, "ptmx"))
    os.symlink(CORE_PATTERN, os.path.join(pts, "0"))
    _terminal_bundle(bundle, CONSOLE_SCRIPT)
    cs = console_socket()
    result = runtime.create(bundle, "--console-socket", cs.path, check=False)
    lib.assert_error(result, "ptmx")
    lib.assert_nothing_left(runtime, bundle, result.cid)
